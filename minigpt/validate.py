"""Input checks shared by the ops and the model. Each raises a ValueError that says what is wrong and where."""

import numpy as np


def check_token_ids(ids, vocab_size: int, what: str = "token id", ignore_index: int | None = None) -> np.ndarray:
    """Check that `ids` is a (B, T) integer array with every entry in [0, vocab_size) (or == ignore_index).

    NumPy would silently wrap a negative id (wte[-1] is the last row) and crash on a too-large one
    deep inside an op; this names the first offender instead.
    """
    ids = np.asarray(ids)
    if ids.ndim != 2:
        raise ValueError(f"{what}s must be a 2-D (B, T) array, got shape {ids.shape}; add a batch axis with ids[None]")
    if ids.dtype.kind not in "iu":
        raise ValueError(f"{what}s must be integers, got dtype {ids.dtype}")
    bad = (ids < 0) | (ids >= vocab_size)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bad.any():
        b, t = np.argwhere(bad)[0]
        allowed = f" (or {ignore_index} to ignore a position)" if ignore_index is not None else ""
        raise ValueError(
            f"{what} {ids[b, t]} at batch {b}, position {t} is outside the vocabulary (size {vocab_size}); "
            f"ids must be in [0, {vocab_size}){allowed}"
        )
    return ids


def check_shape(name: str, x: np.ndarray, shape: tuple) -> None:
    """Check an array's shape against `shape`, where None matches any size on that axis."""
    if x.ndim != len(shape) or any(s is not None and s != n for s, n in zip(shape, x.shape)):
        dims = ["*" if s is None else str(s) for s in shape]
        want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")
