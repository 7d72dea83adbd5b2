/* Layer norm over the C channels of each of the N rows: out = (x - mean) / sqrt(var + eps) * w + b, biased
 * variance. The forward keeps mean and rstd, two numbers per row; the backward recomputes norm from them, as llm.c
 * does. Reference: minigpt/ops/layernorm.py; the math, with the backward's three terms, docs/ops/layernorm.md.
 * Included twice by minigpt.c (real = float, double). Row statistics and the parameters' gradients are summed in
 * double; `omp simd reduction` lets the compiler keep several partial sums of one row in a vector register. */

void FN(layernorm_forward)(real* out, real* mean, real* rstd, const real* x, const real* w, const real* b,
                           int N, int C, double eps) {
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const real* x_n = x + (long)n * C;
        real* out_n = out + (long)n * C;
        double m = 0, v = 0;
        #pragma omp simd reduction(+:m)
        for (int i = 0; i < C; i++)
            m += x_n[i];
        m /= C;
        #pragma omp simd reduction(+:v)
        for (int i = 0; i < C; i++)
            v += (x_n[i] - m) * (x_n[i] - m);
        v /= C;  /* biased: divide by C, not C - 1 */
        mean[n] = (real)m;
        rstd[n] = (real)(1.0 / sqrt(v + eps));  /* eps inside the root keeps a constant row finite */
        real m_n = mean[n], s_n = rstd[n];
        for (int i = 0; i < C; i++)
            out_n[i] = (x_n[i] - m_n) * s_n * w[i] + (b != NULL ? b[i] : 0);
    }
}

/* dx = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * w   eq. (LN-dx)
 * dw = sum over rows of dout * norm, db = sum over rows of dout (db may be NULL).
 * One pass over the rows, in chunks of ROW_CHUNK in parallel: each row's dx, and each chunk's own sums for dw and db,
 * which are then added in chunk order (linear.c, sum_row_chunks), so that the result does not depend on the number
 * of threads. dw and db are overwritten. */
void FN(layernorm_backward)(real* dx, real* dw, real* db, const real* dout, const real* x, const real* w,
                            const real* mean, const real* rstd, int N, int C) {
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double* partial = malloc(sizeof(double) * 2 * chunks * C);  /* (chunks, C) for dw, then for db */
    #pragma omp parallel for schedule(static) if ((long)N * C >= PARALLEL_MIN_WORK)
    for (int c = 0; c < chunks; c++) {
        double* restrict dw_sum = partial + (long)c * C;
        double* restrict db_sum = partial + (long)(chunks + c) * C;
        for (int i = 0; i < C; i++)
            dw_sum[i] = db_sum[i] = 0;
        for (int n = c * ROW_CHUNK; n < N && n < (c + 1) * ROW_CHUNK; n++) {
            const real *x_n = x + (long)n * C, *dout_n = dout + (long)n * C;
            real* dx_n = dx + (long)n * C;
            real m_n = mean[n], s_n = rstd[n];
            double dnorm_mean = 0, dnorm_norm_mean = 0;  /* terms 2 and 3 */
            #pragma omp simd reduction(+:dnorm_mean, dnorm_norm_mean)
            for (int i = 0; i < C; i++) {
                real dnorm = dout_n[i] * w[i];
                dnorm_mean += dnorm;
                dnorm_norm_mean += dnorm * ((x_n[i] - m_n) * s_n);
            }
            real term2 = (real)(dnorm_mean / C), term3 = (real)(dnorm_norm_mean / C);
            #pragma omp simd
            for (int i = 0; i < C; i++) {
                dx_n[i] = s_n * (dout_n[i] * w[i] - term2 - (x_n[i] - m_n) * s_n * term3);
                dw_sum[i] += dout_n[i] * ((x_n[i] - m_n) * s_n);
                db_sum[i] += dout_n[i];
            }
        }
    }
    FN(sum_row_chunks)(dw, partial, chunks, C);
    if (db != NULL)
        FN(sum_row_chunks)(db, partial + (long)chunks * C, chunks, C);
    free(partial);
}
