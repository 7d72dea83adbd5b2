/* RMSNorm over the C channels of each of the N rows: out = x / sqrt(mean(x^2) + eps) * w, as Llama and Qwen
 * normalise (and Qwen 3's QK-norm, over each head's hs channels). The forward keeps rstd, one number per row; the
 * backward recomputes norm from it. Reference: minigpt/ops/rmsnorm.py; the math, docs/ops/rmsnorm.md. Included twice
 * by minigpt.c (real = float, double). The mean square and the gain's gradient are summed in double. */

void FN(rmsnorm_forward)(real* out, real* rstd, const real* x, const real* w, int N, int C, double eps) {
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const real* x_n = x + (long)n * C;
        real* out_n = out + (long)n * C;
        double ms = 0;
        #pragma omp simd reduction(+:ms)
        for (int i = 0; i < C; i++)
            ms += (double)x_n[i] * x_n[i];
        ms /= C;
        rstd[n] = (real)(1.0 / sqrt(ms + eps));  /* eps inside the root keeps a row of zeros finite */
        real s_n = rstd[n];
        for (int i = 0; i < C; i++)
            out_n[i] = x_n[i] * s_n * w[i];
    }
}

/* dx = rstd * (dnorm - norm * mean(dnorm * norm)), dnorm = dout * w   eq. (RMS-dx)
 * dw = sum over rows of dout * norm, overwritten; in one pass with dx, by chunks of rows, as layer norm's (the result
 * does not depend on the number of threads). */
void FN(rmsnorm_backward)(real* dx, real* dw, const real* dout, const real* x, const real* w, const real* rstd,
                          int N, int C) {
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double* partial = malloc(sizeof(double) * chunks * C);  /* (chunks, C) */
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_WORK)
    for (int c = 0; c < chunks; c++) {
        double* restrict dw_sum = partial + (long)c * C;
        for (int i = 0; i < C; i++)
            dw_sum[i] = 0;
        for (int n = c * ROW_CHUNK; n < N && n < (c + 1) * ROW_CHUNK; n++) {
            const real *x_n = x + (long)n * C, *dout_n = dout + (long)n * C;
            real* dx_n = dx + (long)n * C;
            real s_n = rstd[n];
            double dnorm_norm_mean = 0;
            #pragma omp simd reduction(+:dnorm_norm_mean)
            for (int i = 0; i < C; i++)
                dnorm_norm_mean += (dout_n[i] * w[i]) * (x_n[i] * s_n);
            real term = (real)(dnorm_norm_mean / C);
            #pragma omp simd
            for (int i = 0; i < C; i++) {
                dx_n[i] = s_n * (dout_n[i] * w[i] - x_n[i] * s_n * term);
                dw_sum[i] += dout_n[i] * (x_n[i] * rstd[n]);
            }
        }
    }
    FN(sum_row_chunks)(dw, partial, chunks, C);
    free(partial);
}
