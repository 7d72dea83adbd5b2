"""Data-parallel training over MPI (mpi4py): `mpiexec -n N minigpt train ...`.

Every rank holds the whole model and draws the whole global batch of gradient_accumulation_steps
micro-batches from the same seeded sampler, but computes the gradients of its own share only: rank r
takes micro-batches r k/N ... (r+1) k/N - 1. Each micro-batch's gradient is weighted by its share of
all the targets of the global batch, so that one all-reduce (a sum) of all gradients, done in place on
one contiguous buffer, leaves on every rank exactly the gradient that one process would compute for
the global batch. The optimizer step is then the same on every rank. Math: docs/distributed.md.
"""

import hashlib
import os
import sys
import time

import numpy as np

# environment variables through which MPI launchers tell a process it is one of several
ABORT_GRACE = 0.3  # seconds a rank waits, its output flushed, before it ends the job (abort_job)
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS")


def launched_ranks() -> int:
    """How many processes the MPI launcher started (1 when not under mpiexec)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


class Distributed:
    """The MPI communicator and what training does with it. For one process (no MPI), rank 0 of size 1
    whose operations do nothing."""

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.flat = None  # the contiguous buffer the gradients are summed in

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes logs, progress and checkpoints."""
        return self.rank == 0

    def share(self, k: int) -> range:
        """The micro-batches (of k per step) this rank computes."""
        if k % self.size != 0:
            raise ValueError(
                f"gradient_accumulation_steps ({k}) must be divisible by the number of ranks ({self.size}): "
                f"each rank runs gradient_accumulation_steps / ranks micro-batches of every step"
            )
        per_rank = k // self.size
        return range(self.rank * per_rank, (self.rank + 1) * per_rank)

    def sum_gradients(self, grads: dict, scalars: list) -> list:
        """Sum `grads` (in place, in their dtype, with one all-reduce of one contiguous buffer) and
        `scalars` (in float64) over all ranks; return the summed scalars."""
        if self.comm is None:
            return scalars
        from mpi4py import MPI

        n = sum(g.size for g in grads.values())
        if self.flat is None or self.flat.size != n:
            self.flat = np.empty(n, dtype=next(iter(grads.values())).dtype)
        offset = 0
        for g in grads.values():
            self.flat[offset:offset + g.size] = g.reshape(-1)
            offset += g.size
        self.comm.Allreduce(MPI.IN_PLACE, self.flat, op=MPI.SUM)
        offset = 0
        for g in grads.values():
            g.reshape(-1)[:] = self.flat[offset:offset + g.size]
            offset += g.size
        totals = np.array(scalars, dtype=np.float64)
        self.comm.Allreduce(MPI.IN_PLACE, totals, op=MPI.SUM)
        return [float(t) for t in totals]

    def sum(self, value: float) -> float:
        if self.comm is None:
            return value
        return self.comm.allreduce(float(value))

    def broadcast_params(self, params: dict, frozen: frozenset) -> None:
        """Every rank starts from rank 0's weights. frozen: the names of those that do not train (LoRA's base, the
        model's `frozen`), whose arrays are read-only but for this one write."""
        if self.comm is None:
            return
        for name, p in params.items():
            p.setflags(write=True)
            self.comm.Bcast(p, root=0)
            p.setflags(write=name not in frozen)

    def check_same_params(self, params: dict, step: int) -> None:
        """Stop, on every rank, if the ranks' parameters have drifted apart."""
        if self.comm is None:
            return
        digest = hashlib.sha256()
        for p in params.values():
            digest.update(p.tobytes())
        digests = self.comm.allgather(digest.hexdigest())
        if len(set(digests)) != 1:
            different = [r for r, d in enumerate(digests) if d != digests[0]]
            raise RuntimeError(f"at iter {step} the parameters of rank(s) {different} differ from rank 0's; "
                               f"the ranks have diverged (a bug, or a rank that computed differently): stopping")


def abort_job(code: int) -> None:
    """Under mpiexec, end every rank now: one that stopped on an error would leave the others waiting in
    an all-reduce forever. Does nothing for a single process."""
    if launched_ranks() > 1:
        try:
            from mpi4py import MPI
        except ImportError:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        # mpiexec forwards what a rank writes through its proxies, which drop what is still in flight when a rank
        # aborts: an error every rank found at once (a setting refused) left no line at all in 2 of 8 runs under
        # load. A moment first lets the lines through.
        time.sleep(ABORT_GRACE)
        MPI.COMM_WORLD.Abort(code)


def init() -> Distributed:
    """A Distributed for this process: MPI's world communicator under mpiexec, else a single process."""
    if launched_ranks() <= 1:
        return Distributed()
    try:
        from mpi4py import MPI
    except ImportError:
        raise ImportError(
            "this process was started by mpiexec but mpi4py is not installed: pip install -e '.[mpi]'"
        ) from None
    return Distributed(MPI.COMM_WORLD)
