"""Run by tests/test_distributed.py under mpiexec: trains through the Python API and reports, or
misbehaves on purpose (a rank that drifts, a rank that dies), or says its process id (to be signalled alone)."""

import hashlib
import json
import os
import signal
import sys

from minigpt.cli import main
from minigpt.optim import AdamW

mode, args = sys.argv[1], sys.argv[2:]
rank = int(os.environ.get("PMI_RANK", "0"))

if mode == "drift" and rank == 1:  # rank 1's optimizer nudges one weight: the ranks' parameters differ
    original_step = AdamW.step

    def drifting_step(self, grads, lr):
        original_step(self, grads, lr)
        next(iter(self.params.values())).flat[0] += 1e-3

    AdamW.step = drifting_step

if mode == "die" and rank == 1:  # rank 1 is killed in its fifth step
    original_step, steps = AdamW.step, []

    def dying_step(self, grads, lr):
        steps.append(1)
        if len(steps) == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        original_step(self, grads, lr)

    AdamW.step = dying_step

if mode == "pid":  # train, with this rank's process id in OUT_DIR.rank<r>.pid (for a test to signal one rank)
    out_dir = args[args.index("--out-dir") + 1]
    with open(f"{out_dir}.rank{rank}.pid", "w") as f:
        f.write(str(os.getpid()))

if mode == "hash":  # train, then print the hash of this rank's parameters
    from minigpt.model import GPT

    models, real_init = [], GPT.__init__

    def remember(self, *a, **k):
        real_init(self, *a, **k)
        models.append(self)

    GPT.__init__ = remember
    code = main(["train", *args])
    digest = hashlib.sha256(b"".join(p.tobytes() for p in models[-1].params.values())).hexdigest()
    print(json.dumps({"rank": rank, "sha256": digest}), flush=True)
    sys.exit(code)

sys.exit(main(["train", *args]))
