"""The residual connection's addition (minigpt/ops/residual.py): into the branch's array, and its refusals. Its
gradient is the whole models' (tests/test_model.py): the stream's gradient passes the addition unchanged."""

import numpy as np
import pytest

from minigpt.ops import residual


def test_adds_into_the_branchs_array_and_leaves_the_stream():
    x, a = np.arange(6.0).reshape(1, 2, 3), np.full((1, 2, 3), 0.5)
    stream = x.copy()
    out = residual.add(x, a)
    assert out is a and np.array_equal(out, stream + 0.5) and np.array_equal(x, stream)


def test_refuses_other_shapes_and_mixed_dtypes():
    with pytest.raises(ValueError, match=r"residual: x has shape \(2, 3\) and a \(3, 2\); they must be the same"):
        residual.add(np.ones((2, 3)), np.ones((3, 2)))
    with pytest.raises(ValueError, match="residual: a is float32 but x is float64"):
        residual.add(np.ones((2, 3)), np.ones((2, 3), dtype=np.float32))
