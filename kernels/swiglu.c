/* SwiGLU, between the projections of Llama's MLP: out = silu(g) u = g sigmoid(g) u, one pass forward and one
 * backward, which recomputes the sigmoid from exp(-|g|) (it never overflows), as the reference does.
 * Reference: minigpt/ops/swiglu.py; the derivative, eq. (SiLU-dg) of docs/ops/swiglu.md. Included twice by minigpt.c
 * (real = float, double). */

void FN(swiglu_forward)(real* out, const real* gate, const real* up, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++) {
        real g = gate[i], e = EXP(g < 0 ? g : -g);  /* exp(-|g|), in (0, 1] */
        real s = (g >= 0 ? 1 : e) / (1 + e);
        out[i] = g * s * up[i];
    }
}

void FN(swiglu_backward)(real* dgate, real* dup, const real* dout, const real* gate, const real* up, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++) {
        real g = gate[i], e = EXP(g < 0 ? g : -g);
        real s = (g >= 0 ? 1 : e) / (1 + e);
        dgate[i] = dout[i] * up[i] * (s * (1 + g * (1 - s)));
        dup[i] = dout[i] * (g * s);
    }
}
