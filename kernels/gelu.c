/* GELU, the tanh approximation GPT-2 uses: out = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), one pass
 * forward and one backward (which recomputes u, as the reference does). Written with the logistic function:
 * 0.5 (1 + tanh(u)) = 1 / (1 + exp(-2u)) = sig, so out = x sig and, from 1 - tanh^2 = 4 sig (1 - sig), the
 * derivative sig + 2 x sig (1 - sig) du/dx: the same numbers as the reference's within a few ulp, in fewer operations
 * (one exp, one division: vecmath.h's sigmoid), and without the cancellation in 1 + tanh(u) for negative x.
 * Reference: minigpt/ops/gelu.py; the derivative is eq. (GELU-dx) of docs/ops/gelu.md. Included twice by minigpt.c
 * (real = float, double). */

static inline real FN(gelu_sigmoid)(real x) {  /* 0.5 (1 + tanh(u)) = sig(2u) */
    return SIGMOID((real)(2 * GELU_SCALE) * (x + (real)GELU_CUBIC * x * x * x));
}

WIDEST void FN(gelu_forward)(real* out, const real* x, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++)
        out[i] = x[i] * FN(gelu_sigmoid)(x[i]);
}

WIDEST void FN(gelu_backward)(real* dx, const real* dout, const real* x, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++) {
        real sig = FN(gelu_sigmoid)(x[i]);
        real du_dx = (real)GELU_SCALE * (1 + 3 * (real)GELU_CUBIC * x[i] * x[i]);
        dx[i] = dout[i] * (sig + 2 * x[i] * sig * (1 - sig) * du_dx);
    }
}
