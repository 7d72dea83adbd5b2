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

/* out (M, N) = A^T @ B, A (K, M) and B (K, N) row-major: a weight's gradient, summed over the K rows of a batch. With
 * several threads the rows are split among them, each thread taking about the rows it had in the product just before
 * (dx = dout @ w^T, whose rows gemm_team shares out the same way), which are still in its own cache: each multiplies
 * its part on its own, with no waiting for the other threads until the partial products are added, in thread order.
 * Measured on the AVX-512 Xeon (docs/kernels.md): 4% off the recipe's step, against sharing out the tiles of the one
 * product of all K rows, whose every thread reads all of A. Only for a product that stays in the cache
 * (SPLIT_K_MAX_OUTPUT): a larger one (GPT-2 small's, 768 x 3072) would write and read its partial products through
 * memory, 17% slower there. */
static void FN(gemm_tn_split)(real* out, int M, int N, int K, const real* A, const real* B) {
    int threads = (long)M * N * K >= PARALLEL_MIN_WORK ? omp_get_max_threads() : 1;
    if (threads == 1 || K < SPLIT_K_MIN * threads || (long)M * N > SPLIT_K_MAX_OUTPUT) {
        FN(gemm)(M, N, K, A, 1, M, B, N, 1, out, N, NULL, 0, 1);
        return;
    }
    real* part = malloc(sizeof(real) * (threads - 1) * M * N);  /* (threads - 1, M, N): the other threads' */
    #pragma omp parallel num_threads(threads)
    {
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        int k0 = (int)((long)K * id / nt), k1 = (int)((long)K * (id + 1) / nt);
        real* dst = id == 0 ? out : part + (long)(id - 1) * M * N;
        FN(gemm)(M, N, k1 - k0, A + (long)k0 * M, 1, M, B + (long)k0 * N, N, 1, dst, N, NULL, 0, 0);
        #pragma omp barrier
        #pragma omp for schedule(static)
        for (long i = 0; i < (long)M * N; i++) {
            real v = out[i];
            for (int t = 1; t < nt; t++)
                v += part[(long)(t - 1) * M * N + i];
            out[i] = v;
        }
    }
    free(part);
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
     * dout^T) is read in place when its step is short (gemm.c, pack_a_sliver): then the product with fewer rows reads
     * it fewer times, and it is computed instead, into a scratch array transposed into dw: 0.59 against 1.14 ms for
     * the recipe's c_proj (C = 512, OC = 128, 768 rows) on an AVX-512 Xeon (docs/kernels.md). */
    int rows_dw = w_cs == 1 ? C : OC, rows_other = w_cs == 1 ? OC : C;
    if (rows_other < rows_dw && (long)rows_dw * (long)sizeof(real) <= pack_a_min_step) {
        real* t = malloc(sizeof(real) * C * OC);  /* (rows_other, rows_dw): the other product */
        if (w_cs == 1)
            FN(gemm_tn_split)(t, OC, C, N, dout, x);  /* dw^T = dout^T @ x, (OC, C) */
        else
            FN(gemm_tn_split)(t, C, OC, N, x, dout);  /* dw = x^T @ dout, (C, OC) */
        #pragma omp parallel for schedule(static) if ((long)C * OC >= PARALLEL_MIN_WORK)
        for (int i = 0; i < rows_dw; i += TRANSPOSE_ROWS)  /* dw[i, j] = t[j, i], by blocks of rows */
            FN(transpose)(dw + (long)i * rows_other, rows_other, t + i, rows_dw,
                          rows_dw - i < TRANSPOSE_ROWS ? rows_dw - i : TRANSPOSE_ROWS, rows_other);
        free(t);
    } else if (w_cs == 1)
        FN(gemm_tn_split)(dw, C, OC, N, x, dout);  /* x^T[c, n] = x[n, c] */
    else
        FN(gemm_tn_split)(dw, OC, C, N, dout, x);  /* dw^T = dout^T @ x */
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
