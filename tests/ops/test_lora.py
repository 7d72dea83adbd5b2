"""LoRA's branch (minigpt/ops/lora.py): its gradients against finite differences, dropout included, merging, and a
mutant."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.gradcheck import check_op
from minigpt.ops import lora
from tolerances import GRAD_RTOL, WRONG_GRAD_MIN_ERROR


@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.integers(1, 3),
       st.sampled_from([0.0, 0.3]), st.integers(0, 2**16))
@settings(max_examples=50)
def test_gradients_match_finite_differences(B, T, fan_in, fan_out, r, p_drop, seed):
    rng = np.random.default_rng(seed)
    inputs = {"x": rng.normal(size=(B, T, fan_in)), "A": rng.normal(size=(r, fan_in)), "B": rng.normal(size=(fan_out, r))}
    state = np.random.default_rng(seed + 1).bit_generator.state

    def forward(x, A, B):  # the same dropout mask every call
        drop_rng = np.random.default_rng(0)
        drop_rng.bit_generator.state = state
        return lora.forward(x, A, B, 2.5, p_drop, drop_rng)

    report = check_op(forward, lora.backward, inputs)
    assert report.max_rel_error < GRAD_RTOL, report


def test_the_branch_is_the_merged_weights_difference_and_unmerging_undoes_merging():
    rng = np.random.default_rng(0)
    x, A, B = rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 5)), rng.normal(size=(4, 2))
    w = rng.normal(size=(5, 4))  # (in, out), GPT-2's layout
    out, _ = lora.forward(x, A, B, 0.5)
    np.testing.assert_allclose(x @ w + out, x @ lora.merge(w, A, B, 0.5, transposed=True), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x @ w.T.T + out, x @ lora.merge(w.T, A, B, 0.5, transposed=False).T, rtol=1e-12, atol=1e-12)
    w32 = w.astype(np.float32)
    back = lora.unmerge(lora.merge(w32, A, B, 0.5, True), A, B, 0.5, True)
    assert np.abs(back - w32).max() <= 4 * np.finfo(np.float32).eps * np.abs(w32).max()  # rounding, no more


def test_a_backward_that_forgets_the_scale_in_dB_is_caught():
    def wrong_backward(dout, cache):
        dx, dA, dB = lora.backward(dout, cache)
        return dx, dA, dB / cache.scale

    rng = np.random.default_rng(1)
    inputs = {"x": rng.normal(size=(2, 3, 4)), "A": rng.normal(size=(2, 4)), "B": rng.normal(size=(3, 2))}
    forward = lambda x, A, B: lora.forward(x, A, B, 4.0)  # noqa: E731
    assert check_op(forward, wrong_backward, inputs).max_rel_error > WRONG_GRAD_MIN_ERROR
