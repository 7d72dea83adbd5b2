/* GELU, the tanh approximation GPT-2 uses: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
 * The reference is minigpt/ops/gelu.py; the derivative is eq. (GELU-dx) of docs/ops/gelu.md.
 * Included twice by minigpt.c (real = float, double). */

void FN(gelu_forward)(real* out, const real* inp, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        real x = inp[i];
        real u = (real)GELU_SCALE * (x + (real)GELU_CUBIC * x * x * x);
        out[i] = (real)0.5 * x * (1 + TANH(u));
    }
}

void FN(gelu_backward)(real* dinp, const real* inp, const real* dout, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        real x = inp[i];
        real u = (real)GELU_SCALE * (x + (real)GELU_CUBIC * x * x * x);
        real th = TANH(u);
        real du_dx = (real)GELU_SCALE * (1 + 3 * (real)GELU_CUBIC * x * x);
        dinp[i] = dout[i] * ((real)0.5 * (1 + th) + (real)0.5 * x * (1 - th * th) * du_dx);
    }
}
