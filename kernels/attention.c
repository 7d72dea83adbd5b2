/* Causal self-attention, fused: for each (batch, head), in parallel, the (T, T) tile of scores, its causal softmax
 * and the products with the values, in one pass per head through a tile that stays in the cache; nothing
 * (B, nh, T, T) is written, and the forward keeps only the log-sum-exp of each row (lse), from which the backward
 * recomputes the probabilities, as FlashAttention does. The tile products are the matmul of gemm.c, on this
 * thread (its micro-kernel, its packing), reading each head straight from the rows of q (B, T, nh, hs) and of k and v
 * (B, S, nkv, hs) through strides: a row holds a position's heads side by side, and the rows and batches of q, k and v
 * may lie further apart than that (q_row, q_batch, kv_row, kv_batch, in elements: GPT-2's q, k and v are views of its
 * c_attn output, (B, T, 3C), and a decoding step's k and v views of its key/value cache), so none is copied. Query head h reads key/value head
 * h / (nh / nkv) (grouped-query attention; GPT-2's is nkv = nh).
 * A row's max and sums run as `omp simd` reductions: in several partial results, the only reordering of a sum
 * these kernels allow besides the matmul's. Reference: minigpt/ops/attention.py; math: docs/ops/attention.md
 * (eq. (AT-datt), (AT-dv), (AT-dq), (AT-dk)).
 * Included twice by minigpt.c (real = float, double). */

/* --8<-- [start:forward] */
/* q (B, T, nh, hs), the queries of T new positions; k and v (B, S, nkv, hs), the keys and values of P cached positions
 * and then of the T new ones (S = P + T) -> y (B, T, nh hs), lse (B, nh, T). mask (B, nh, T, S) is dropout's mask on
 * the probabilities, or NULL. */
void FN(attention_forward)(real* y, real* lse, const real* q, const real* k, const real* v, const real* mask, int B,
                           int T, int S, int n_head, int n_kv_head, int hs, long q_row, long q_batch, long kv_row,
                           long kv_batch) {
    int P = S - T, group = n_head / n_kv_head;
    long D = (long)n_head * hs;  /* a row of y */
    real scale = (real)(1.0 / sqrt((double)hs));
    #pragma omp parallel if ((long)B * n_head * T * S * hs >= PARALLEL_MIN_WORK)
    {
        real* att = malloc(sizeof(real) * (long)T * S);  /* (T, S): this thread's tile */
        #pragma omp for schedule(static)
        for (int bh = 0; bh < B * n_head; bh++) {
            int b = bh / n_head, h = bh % n_head, j = h / group;  /* j: the key/value head of h's group */
            const real* q_h = q + b * q_batch + (long)h * hs;  /* (T, hs), rows q_row apart */
            const real* k_j = k + b * kv_batch + (long)j * hs;  /* (S, hs), rows kv_row apart */
            const real* v_j = v + b * kv_batch + (long)j * hs;  /* (S, hs), rows kv_row apart */
            FN(gemm)(T, S, hs, q_h, q_row, 1, k_j, 1, kv_row, att, S, NULL, 0, 0);  /* q k^T: k^T[d, s] = k[s, d] */
            for (int t = 0; t < T; t++) {
                real* row = att + (long)t * S;
                int n = P + t + 1;  /* query t sees keys 0 .. P + t */
                real maxval = row[0];
                #pragma omp simd reduction(max:maxval)
                for (int s = 1; s < n; s++)
                    maxval = row[s] > maxval ? row[s] : maxval;
                for (int s = 0; s < n; s++)  /* softmax of scale * row, the max subtracted (docs/ops/softmax.md) */
                    row[s] = EXP((row[s] - maxval) * scale);
                real total = 0;
                #pragma omp simd reduction(+:total)
                for (int s = 0; s < n; s++)
                    total += row[s];
                lse[(long)bh * T + t] = maxval * scale + LOG(total);
                real inv_total = 1 / total;
                const real* mask_t = mask != NULL ? mask + ((long)bh * T + t) * S : NULL;
                for (int s = 0; s < n; s++)
                    row[s] *= mask_t != NULL ? inv_total * mask_t[s] : inv_total;  /* att[t, s], dropout */
                for (int s = n; s < S; s++)
                    row[s] = 0;  /* the future */
            }
            real* y_h = y + (long)b * T * D + (long)h * hs;  /* (T, hs), rows D apart */
            FN(gemm)(T, hs, S, att, S, 1, v_j, kv_row, 1, y_h, D, NULL, 0, 0);  /* y = att v */
        }
        free(att);
    }
}
/* --8<-- [end:forward] */

/* --8<-- [start:backward] */
/* dy (B, T, nh hs) -> dq (B, T, nh, hs), dk and dv (B, T, nkv, hs), from q, k, v, the forward's y and lse, and
 * dropout's mask (or NULL); dq, dk and dv written through strides too (GPT-2's lie side by side in one array, the
 * gradient of its c_attn output: (AT-dv) and (AT-dk) are the eqs. of the dv and dk products below). The threads share out the (batch, key/value head) pairs: the query heads of one group run
 * on one thread, one after the other, each adding its part of the group's dk and dv (eq. (GQA-dk)), so no two threads
 * write the same rows. */
void FN(attention_backward)(real* dq, real* dk, real* dv, const real* dy, const real* q, const real* k, const real* v,
                            const real* y, const real* lse, const real* mask, int B, int T, int n_head, int n_kv_head,
                            int hs, long q_row, long q_batch, long kv_row, long kv_batch, long dq_row, long dq_batch,
                            long dkv_row, long dkv_batch) {
    int group = n_head / n_kv_head;
    long D = (long)n_head * hs;  /* a row of y and dy */
    real scale = (real)(1.0 / sqrt((double)hs));
    #pragma omp parallel if ((long)B * n_head * T * T * hs >= PARALLEL_MIN_WORK)
    {
        real* att = malloc(sizeof(real) * 2L * T * T);  /* (T, T) att (with dropout), then (T, T) datt */
        real* datt = att + (long)T * T;
        #pragma omp for schedule(static)
        for (int bj = 0; bj < B * n_kv_head; bj++) {
            int b = bj / n_kv_head, j = bj % n_kv_head;
            const real* k_j = k + b * kv_batch + (long)j * hs;  /* (T, hs) each, rows kv_row apart */
            const real* v_j = v + b * kv_batch + (long)j * hs;
            real* dk_j = dk + b * dkv_batch + (long)j * hs;  /* (T, hs) each, rows dkv_row apart */
            real* dv_j = dv + b * dkv_batch + (long)j * hs;
            for (int g = 0; g < group; g++) {
                int h = j * group + g, bh = b * n_head + h;
                const real* q_h = q + b * q_batch + (long)h * hs;  /* (T, hs), rows q_row apart */
                const real* dy_h = dy + (long)b * T * D + (long)h * hs;
                const real* y_h = y + (long)b * T * D + (long)h * hs;
                real* dq_h = dq + b * dq_batch + (long)h * hs;  /* (T, hs), rows dq_row apart */
                FN(gemm)(T, T, hs, q_h, q_row, 1, k_j, 1, kv_row, att, T, NULL, 0, 0);  /* q k^T: the scores, again */
                FN(gemm)(T, T, hs, dy_h, D, 1, v_j, 1, kv_row, datt, T, NULL, 0, 0);  /* datt = dy v^T, eq. (AT-datt) */
                for (int t = 0; t < T; t++) {
                    real *att_t = att + (long)t * T, *datt_t = datt + (long)t * T;
                    real lse_t = lse[(long)bh * T + t];
                    /* sum_s datt[t, s] att[t, s] = dy_t . y_t: the softmax backward's row sum, eq. (SM-dx) */
                    real rowsum = 0;
                    #pragma omp simd reduction(+:rowsum)
                    for (int d = 0; d < hs; d++)
                        rowsum += dy_h[(long)t * D + d] * y_h[(long)t * D + d];
                    const real* mask_t = mask != NULL ? mask + ((long)bh * T + t) * T : NULL;
                    for (int s = 0; s <= t; s++) {
                        real a = EXP(att_t[s] * scale - lse_t);  /* att[t, s] from the saved log-sum-exp */
                        real m = mask_t != NULL ? mask_t[s] : 1;
                        datt_t[s] = a * (datt_t[s] * m - rowsum) * scale;  /* dpreatt, times the scores' 1/sqrt(hs) */
                        att_t[s] = a * m;  /* att after dropout, for dv */
                    }
                    for (int s = t + 1; s < T; s++)
                        att_t[s] = datt_t[s] = 0;  /* the future */
                }
                int first = g == 0;  /* the group's first query head writes dk and dv; the others add to them */
                FN(gemm)(T, hs, T, att, 1, T, dy_h, D, 1, dv_j, dkv_row, NULL, !first, 0);  /* dv (+)= att^T dy */
                FN(gemm)(T, hs, T, datt, T, 1, k_j, kv_row, 1, dq_h, dq_row, NULL, 0, 0);  /* dq = dpreatt k (AT-dq) */
                FN(gemm)(T, hs, T, datt, 1, T, q_h, q_row, 1, dk_j, dkv_row, NULL, !first, 0);  /* dk (+)= dpreatt^T q */
            }
        }
        free(att);
    }
}
/* --8<-- [end:backward] */
