/* GELU, the tanh approximation GPT-2 uses: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), one pass forward
 * and one backward (which recomputes tanh, as the reference does). Reference: minigpt/ops/gelu.py; the
 * derivative is eq. (GELU-dx) of docs/ops/gelu.md. Included twice by minigpt.c (real = float, double). */

void FN(gelu_forward)(real* out, const real* x, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++) {
        real u = (real)GELU_SCALE * (x[i] + (real)GELU_CUBIC * x[i] * x[i] * x[i]);
        out[i] = (real)0.5 * x[i] * (1 + TANH(u));
    }
}

void FN(gelu_backward)(real* dx, const real* dout, const real* x, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++) {
        real u = (real)GELU_SCALE * (x[i] + (real)GELU_CUBIC * x[i] * x[i] * x[i]);
        real th = TANH(u);
        real du_dx = (real)GELU_SCALE * (1 + 3 * (real)GELU_CUBIC * x[i] * x[i]);
        dx[i] = dout[i] * ((real)0.5 * (1 + th) + (real)0.5 * x[i] * (1 - th * th) * du_dx);
    }
}
