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
