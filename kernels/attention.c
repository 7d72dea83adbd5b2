/* Causal self-attention, fused: for each (batch, head), in parallel, the (T, T) tile of scores, its causal softmax
 * and the products with the values, in one pass per head through a tile that stays in the cache; nothing
 * (B, nh, T, T) is written, and the forward keeps only the log-sum-exp of each row (lse), from which the backward
 * recomputes the probabilities, as FlashAttention does. The tile products are the matmul of gemm.c, on this
 * thread (its micro-kernel, its packing), reading the heads straight from qkv's (B, T, (nh + 2 nkv) hs) rows through
 * strides: the nh query heads, then the nkv key heads and the nkv value heads. Query head h reads key/value head
 * h / (nh / nkv) (grouped-query attention; GPT-2's is nkv = nh).
 * A row's max and sums run as `omp simd` reductions: in several partial results, the only reordering of a sum
 * these kernels allow besides the matmul's. Reference: minigpt/ops/attention.py; math: docs/ops/attention.md
 * (eq. (AT-datt), (AT-dv), (AT-dq), (AT-dk)).
 * Included twice by minigpt.c (real = float, double). */

/* --8<-- [start:forward] */
/* qkv (B, S, (nh + 2 nkv) hs), the rows of P cached positions and then T new ones -> y (B, T, nh hs),
 * lse (B, nh, T). mask (B, nh, T, S) is dropout's mask on the probabilities, or NULL. */
void FN(attention_forward)(real* y, real* lse, const real* qkv, const real* mask, int B, int S, int n_head,
                           int n_kv_head, int hs, int P) {
    int T = S - P, group = n_head / n_kv_head;
    long W = (long)(n_head + 2 * n_kv_head) * hs, D = (long)n_head * hs;  /* a row of qkv, a row of y */
    real scale = (real)(1.0 / sqrt((double)hs));
    #pragma omp parallel if ((long)B * n_head * T * S * hs >= PARALLEL_MIN_WORK)
    {
        real* att = malloc(sizeof(real) * (long)T * S);  /* (T, S): this thread's tile */
        #pragma omp for schedule(static)
        for (int bh = 0; bh < B * n_head; bh++) {
            int b = bh / n_head, h = bh % n_head, j = h / group;  /* j: the key/value head of h's group */
            const real* q = qkv + ((long)b * S + P) * W + (long)h * hs;  /* (T, hs), rows W apart */
            const real* k = qkv + (long)b * S * W + (long)(n_head + j) * hs;  /* (S, hs) */
            const real* v = k + (long)n_kv_head * hs;  /* (S, hs) */
            FN(gemm)(T, S, hs, q, W, 1, k, 1, W, att, S, NULL, 0, 0);  /* q k^T: k^T[d, s] = k[s, d] */
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
            FN(gemm)(T, hs, S, att, S, 1, v, W, 1, y + (long)b * T * D + (long)h * hs, D, NULL, 0, 0);  /* y = att v */
        }
        free(att);
    }
}
/* --8<-- [end:forward] */

/* --8<-- [start:backward] */
/* dy (B, T, nh hs) -> dqkv (B, T, (nh + 2 nkv) hs), from qkv, the forward's y and lse, and dropout's mask (or NULL).
 * The threads share out the (batch, key/value head) pairs: the query heads of one group run on one thread, one after
 * the other, each adding its part of the group's dk and dv (eq. (GQA-dk)), so no two threads write the same rows. */
void FN(attention_backward)(real* dqkv, const real* dy, const real* qkv, const real* y, const real* lse,
                            const real* mask, int B, int T, int n_head, int n_kv_head, int hs) {
    int group = n_head / n_kv_head;
    long W = (long)(n_head + 2 * n_kv_head) * hs, D = (long)n_head * hs;
    real scale = (real)(1.0 / sqrt((double)hs));
    #pragma omp parallel if ((long)B * n_head * T * T * hs >= PARALLEL_MIN_WORK)
    {
        real* att = malloc(sizeof(real) * 2L * T * T);  /* (T, T) att (with dropout), then (T, T) datt */
        real* datt = att + (long)T * T;
        #pragma omp for schedule(static)
        for (int bj = 0; bj < B * n_kv_head; bj++) {
            int b = bj / n_kv_head, j = bj % n_kv_head;
            const real* k = qkv + (long)b * T * W + (long)(n_head + j) * hs;  /* (T, hs), rows W apart */
            const real* v = k + (long)n_kv_head * hs;
            real* dk = dqkv + (long)b * T * W + (long)(n_head + j) * hs;  /* (T, hs) each, rows W apart */
            real* dv = dk + (long)n_kv_head * hs;
            for (int g = 0; g < group; g++) {
                int h = j * group + g, bh = b * n_head + h;
                const real* q = qkv + (long)b * T * W + (long)h * hs;  /* (T, hs), rows W apart */
                const real* dy_h = dy + (long)b * T * D + (long)h * hs;  /* (T, hs), rows D apart */
                const real* y_h = y + (long)b * T * D + (long)h * hs;
                real* dq = dqkv + (long)b * T * W + (long)h * hs;
                FN(gemm)(T, T, hs, q, W, 1, k, 1, W, att, T, NULL, 0, 0);  /* q k^T: the scores, recomputed */
                FN(gemm)(T, T, hs, dy_h, D, 1, v, 1, W, datt, T, NULL, 0, 0);  /* datt = dy v^T, eq. (AT-datt) */
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
                FN(gemm)(T, hs, T, att, 1, T, dy_h, D, 1, dv, W, NULL, !first, 0);  /* dv (+)= att^T dy, eq. (AT-dv) */
                FN(gemm)(T, hs, T, datt, T, 1, k, W, 1, dq, W, NULL, 0, 0);  /* dq = dpreatt k, eq. (AT-dq) */
                FN(gemm)(T, hs, T, datt, 1, T, q, W, 1, dk, W, NULL, !first, 0);  /* dk (+)= dpreatt^T q, eq. (AT-dk) */
            }
        }
        free(att);
    }
}
/* --8<-- [end:backward] */
