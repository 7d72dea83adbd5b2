"""Named tolerances shared by the tests."""

# Analytic vs central-difference gradients in float64 (max relative error per tensor, minigpt.gradcheck).
GRAD_RTOL = 1e-6
# A wrong backward must be reported with at least this relative error (the negative controls).
WRONG_GRAD_MIN_ERROR = 1e-3
# minigpt vs PyTorch autograd on the same weights: relative to each tensor's largest entry.
TORCH_RTOL_FLOAT64 = 1e-9
TORCH_RTOL_FLOAT32 = 1e-4
# Two float64 computations of the same quantity by different formulas (e.g. a loop reference).
FLOAT64_RTOL = 1e-12
# A backend's kernels against the float64 reference (tests/test_backends.py), relative to each tensor's
# largest entry: float64 within a few thousand ulp of float64; float32 within a few hundred ulp of float32
# (sums of up to a few hundred terms in another order); ill-conditioned problems up to SLACK times the
# reference's own float32 error.
BACKEND_RTOL_FLOAT64 = 1e-12
BACKEND_RTOL_FLOAT32 = 2e-5
BACKEND_SLACK = 10
# float64 results that pass through a square root, a division and a mean of many terms (the variance of
# layer norm's output, the row sums of its dx, softmax's invariance to a shift): a few million ulp.
FLOAT64_ROUNDED_RTOL = 1e-9
# A textbook definition in Python loops against the vectorised op: sums of the same terms in another order.
FLOAT64_LOOP_RTOL = 1e-10
# Gradient accumulation against one big batch: float64, partial sums weighted and added in another order;
# the absolute floor covers gradients that are zero up to rounding.
ACCUMULATION_RTOL = 1e-10
ACCUMULATION_ATOL = 1e-14
# float32 results of a few operations (a KV cache's logits against the full forward's, AdamW's first step).
FLOAT32_RTOL = 1e-5
# Distributed training against one process: float32 partial gradients summed in another order.
DISTRIBUTED_RTOL = {"float32": 1e-5, "float64": 1e-12}
# The default recipe trained by minigpt and by PyTorch from the same weights on the same batches: 2000 float32
# steps amplify rounding differences (measured: 1e-7 in the final loss).
TRAINING_LOSS_ATOL = 1e-3
# Statistics of a random initialisation: its standard deviation within 5% (each tensor has thousands of
# entries), its mean within 4 standard errors.
INIT_STD_RTOL = 0.05
INIT_MEAN_SIGMAS = 4
# The untrained model's loss against ln V: its logits are small (std ~ 0.02 sqrt(C)), not zero.
UNTRAINED_LOSS_RTOL = 0.02
# AdamW's first step is lr g / (|g| + eps), not exactly lr: eps / |g| of the step (1e-5 of it for |g| = 1e-3).
ADAMW_FIRST_STEP_RTOL = 1e-6
# A whole model's gradient that is 0 in exact arithmetic (the queries', when every key a query sees comes with the same
# value vector: a repeated token, in a model without a table of positions) comes out as rounding noise: such a
# tensor passes if it is within this many of the model's largest gradient entry (8 ulp of it) instead. (T = 1 is such
# a case for every query and key: one key, whose score the softmax cannot tell from anything.)
ZERO_GRADIENT_ATOL = {"float64": 2e-15, "float32": 1e-6}
# Muon against torch.optim.Muon, both in float64, several steps: five Newton-Schulz iterations of matrix products,
# relative to each matrix's largest entry (measured: 2e-16).
MUON_RTOL_FLOAT64 = 1e-13
# minigpt's float64 Newton-Schulz against torch's as shipped, which iterates in bfloat16 (8 bits of mantissa):
# measured up to 6e-2 of the largest entry over random shapes.
MUON_BFLOAT16_ATOL = 0.15
