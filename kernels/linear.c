/* Linear layer: out = x @ w + b, with w (C, OC) as in GPT-2's checkpoint, and its backward, all three products on
 * the matmul of gemm.c. w is read through its strides (w[c, o] = w[c * w_rs + o * w_cs]): the tied LM head's
 * weight is wte^T, a transposed view, and is read as it lies. Reference: minigpt/ops/linear.py; the math is
 * docs/ops/linear.md. Included twice by minigpt.c (real = float, double). */

/* out[i] = the sum over c of partial[c, i] (chunks, C), in the order of c, rounded once: the last step of a sum over
 * rows taken ROW_CHUNK rows at a time, in parallel, whose result does not depend on the number of threads. */
static void FN(sum_row_chunks)(real* out, const double* partial, int chunks, int C) {
    for (int i = 0; i < C; i++) {
        double total = 0;
        for (int c = 0; c < chunks; c++)
            total += partial[(long)c * C + i];
        out[i] = (real)total;
    }
}

/* --8<-- [start:linear] */
void FN(linear_forward)(real* out, const real* x, const real* w, long w_rs, long w_cs, const real* b, int N, int C, int OC) {
    FN(gemm)(N, OC, C, x, C, 1, w, w_rs, w_cs, out, OC, b, 0, 1);  /* (N, OC) = (N, C) @ (C, OC), + b */
}

/* dx = dout @ w^T (N, C); dw = x^T @ dout (C, OC), written in w's layout (transposed for the tied head, where it is
 * dout^T @ x (OC, C)); db = dout summed over the rows (OC), or db NULL. All overwritten. */
void FN(linear_backward)(real* dx, real* dw, real* db, const real* dout, const real* x, const real* w, long w_rs,
                         long w_cs, int N, int C, int OC) {
    FN(gemm)(N, C, OC, dout, OC, 1, w, w_cs, w_rs, dx, C, NULL, 0, 1);  /* w^T[o, c] = w[c, o] */
    /* dw = x^T @ dout (C rows) or dw^T = dout^T @ x (OC rows), the one w's layout holds. The transposed operand (x^T,
     * dout^T) is read in place when its step is short (gemm.c, pack_a): then the product with fewer rows reads it
     * fewer times, and it is computed instead, into a scratch array transposed into dw: 0.59 against 1.14 ms for
     * the recipe's c_proj (C = 512, OC = 128, 768 rows) on an AVX-512 Xeon (docs/kernels.md). */
    int rows_dw = w_cs == 1 ? C : OC, rows_other = w_cs == 1 ? OC : C;
    if (rows_other < rows_dw && (long)rows_dw * (long)sizeof(real) <= pack_a_min_step) {
        real* t = malloc(sizeof(real) * C * OC);  /* (rows_other, rows_dw): the other product */
        if (w_cs == 1)
            FN(gemm)(OC, C, N, dout, 1, OC, x, C, 1, t, C, NULL, 0, 1);  /* dw^T = dout^T @ x, (OC, C) */
        else
            FN(gemm)(C, OC, N, x, 1, C, dout, OC, 1, t, OC, NULL, 0, 1);  /* dw = x^T @ dout, (C, OC) */
        #pragma omp parallel for schedule(static) if ((long)C * OC >= PARALLEL_MIN_WORK)
        for (int i = 0; i < rows_dw; i++)
            for (int j = 0; j < rows_other; j++)
                dw[(long)i * rows_other + j] = t[(long)j * rows_dw + i];
        free(t);
    } else if (w_cs == 1)
        FN(gemm)(C, OC, N, x, 1, C, dout, OC, 1, dw, OC, NULL, 0, 1);  /* x^T[c, n] = x[n, c] */
    else
        FN(gemm)(OC, C, N, dout, 1, OC, x, C, 1, dw, C, NULL, 0, 1);  /* dw^T = dout^T @ x */
    if (db == NULL)
        return;
    /* db: each chunk of ROW_CHUNK rows summed along its rows (contiguous), then the chunks' sums in order */
    int chunks = (N + ROW_CHUNK - 1) / ROW_CHUNK;
    double* partial = malloc(sizeof(double) * chunks * OC);  /* (chunks, OC) */
    #pragma omp parallel for schedule(static) if ((long)N * OC >= PARALLEL_MIN_WORK)
    for (int c = 0; c < chunks; c++) {
        double* restrict sum = partial + (long)c * OC;
        for (int o = 0; o < OC; o++)
            sum[o] = 0;
        for (long n = (long)c * ROW_CHUNK; n < N && n < (long)(c + 1) * ROW_CHUNK; n++) {
            const real* restrict d = dout + n * OC;
            #pragma omp simd
            for (int o = 0; o < OC; o++)
                sum[o] += d[o];
        }
    }
    FN(sum_row_chunks)(db, partial, chunks, OC);
    free(partial);
}
/* --8<-- [end:linear] */
