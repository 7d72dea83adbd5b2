/* Causal self-attention, fused: for each (batch, head), in parallel, the (T, S) tile of scores, its causal softmax
 * and the products with the values, in one pass per head through a tile that stays in the cache, ATTENTION_ROWS
 * queries at a time: a block of queries is multiplied only by the keys its last query sees, so the products skip most
 * of the masked upper right (a quarter of them at T = 64, nearly half for long T); nothing (B, nh, T, T) is written,
 * and the forward keeps only the log-sum-exp of each row (lse), from which the backward recomputes the
 * probabilities, as FlashAttention does. The tile products are the matmul of gemm.c, on this
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
/* A row's length in a tile: W rounded up to whole vectors of VECTOR_SPAN numbers (the widest vector's), so that every
 * loop over a row runs whole vectors, none finished one number at a time (exp's dozens of instructions each), and
 * every row starts on a vector's boundary. */
static int FN(padded)(int W) {
    return (W + VECTOR_SPAN - 1) / VECTOR_SPAN * VECTOR_SPAN;
}

/* The numbers in a tile of (rows, padded(S)), rows the largest block of queries (one, when decoding a token). */
static long FN(tile_size)(int T, int S) {
    return (long)(T < ATTENTION_ROWS ? T : ATTENTION_ROWS) * FN(padded)(S);
}

/* n numbers for a thread's tiles, on a cache line's boundary (as are their rows), zeros: the padding a row's loops
 * read past its keys is never anything but a number. The caller frees it. */
static real* FN(zeroed_tiles)(long n) {
    long size = sizeof(real) * n;
    real* tiles = aligned_alloc(64, (size + 63) / 64 * 64);
    memset(tiles, 0, size);
    return tiles;
}

/* One block of queries, `rows` of them from position p (p = P + t0), which see the keys 0 .. p + rows - 1 (W of them),
 * and no later ones: their scores, softmax and weighted sum of the values, in att (rows, padded(W)), without the
 * products with the keys none of them sees (a causal tile's upper right). q (rows, hs), rows q_row apart; y (rows, hs),
 * rows y_row apart; lse (rows); mask (rows, S) or NULL. */
static void FN(attention_rows)(real* y, long y_row, real* lse, const real* q, long q_row, const real* k, const real* v,
                               long kv_row, const real* mask, int S, int p, int rows, int hs, real scale, real* att) {
    int W = p + rows, Wp = FN(padded)(W);
    FN(gemm)(rows, W, hs, q, q_row, 1, k, 1, kv_row, att, Wp, NULL, 0, 0);  /* q k^T: k^T[d, s] = k[s, d] */
    for (int i = 0; i < rows; i++) {
        real* row = att + (long)i * Wp;
        int n = p + i + 1;  /* query p + i sees keys 0 .. p + i */
        int wn = FN(padded)(n);  /* the loops stop at the first vector's boundary past them, the future selected away */
        real lane_max[VECTOR_SPAN], lane_sum[VECTOR_SPAN];  /* a vector's lanes, reduced after the loop */
        for (int j = 0; j < VECTOR_SPAN; j++)
            lane_max[j] = row[0];
        for (int s0 = 0; s0 < wn; s0 += VECTOR_SPAN) {
            #pragma omp simd
            for (int j = 0; j < VECTOR_SPAN; j++)
                lane_max[j] = s0 + j < n && row[s0 + j] > lane_max[j] ? row[s0 + j] : lane_max[j];
        }
        real maxval = lane_max[0];
        for (int j = 1; j < VECTOR_SPAN; j++)
            maxval = lane_max[j] > maxval ? lane_max[j] : maxval;
        for (int j = 0; j < VECTOR_SPAN; j++)
            lane_sum[j] = 0;
        for (int s0 = 0; s0 < wn; s0 += VECTOR_SPAN) {
            #pragma omp simd
            for (int j = 0; j < VECTOR_SPAN; j++) {  /* softmax of scale * row, the max subtracted (docs/ops/softmax.md) */
                real e = EXP((row[s0 + j] - maxval) * scale);
                row[s0 + j] = s0 + j < n ? e : 0;  /* the future: 0 */
                lane_sum[j] += row[s0 + j];
            }
        }
        real total = 0;
        for (int j = 0; j < VECTOR_SPAN; j++)
            total += lane_sum[j];
        lse[i] = maxval * scale + LOG(total);
        real inv_total = 1 / total;
        if (mask != NULL) {
            const real* mask_i = mask + (long)i * S;  /* (S,): read no further than the row's W keys */
            #pragma omp simd
            for (int s = 0; s < (wn < W ? wn : W); s++)
                row[s] *= inv_total * mask_i[s];  /* att[t, s], dropout */
        } else {
            for (int s0 = 0; s0 < wn; s0 += VECTOR_SPAN) {
                #pragma omp simd
                for (int j = 0; j < VECTOR_SPAN; j++)
                    row[s0 + j] *= inv_total;  /* att[t, s] */
            }
        }
        for (int s = wn; s < Wp; s++)
            row[s] = 0;  /* the rest of the future */
    }
    FN(gemm)(rows, hs, W, att, Wp, 1, v, kv_row, 1, y, y_row, NULL, 0, 0);  /* y = att v */
}

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
        real* att = FN(zeroed_tiles)(FN(tile_size)(T, S));  /* this thread's tile */
        #pragma omp for schedule(static)
        for (int bh = 0; bh < B * n_head; bh++) {
            int b = bh / n_head, h = bh % n_head, j = h / group;  /* j: the key/value head of h's group */
            const real* k_j = k + b * kv_batch + (long)j * hs;  /* (S, hs), rows kv_row apart */
            const real* v_j = v + b * kv_batch + (long)j * hs;  /* (S, hs), rows kv_row apart */
            for (int t0 = 0; t0 < T; t0 += ATTENTION_ROWS)
                FN(attention_rows)(y + ((long)b * T + t0) * D + (long)h * hs, D, lse + (long)bh * T + t0,
                                   q + b * q_batch + (long)t0 * q_row + (long)h * hs, q_row, k_j, v_j, kv_row,
                                   mask != NULL ? mask + ((long)bh * T + t0) * S : NULL, S, P + t0,
                                   T - t0 < ATTENTION_ROWS ? T - t0 : ATTENTION_ROWS, hs, scale, att);
        }
        free(att);
    }
}
/* --8<-- [end:forward] */

/* --8<-- [start:backward] */
/* One entry of a row of the backward's tile: att[t, s] recomputed from the log-sum-exp (0 for the future, s > t), and
 * dpreatt[t, s] = att (datt m - rowsum) / sqrt(hs), eq. (SM-dx) times the scores' scale, in place of datt; att after
 * dropout's mask m (NULL: 1) in place of the scores, for dv. */
static inline void FN(dpreatt)(real* att_t, real* datt_t, const real* mask_t, int s, int t, real lse_t, real rowsum,
                               real scale) {
    real a = s <= t ? EXP(att_t[s] * scale - lse_t) : 0;
    real m = mask_t != NULL ? mask_t[s] : 1;
    datt_t[s] = a * (datt_t[s] * m - rowsum) * scale;
    att_t[s] = a * m;
}


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
    int last = (T - 1) / ATTENTION_ROWS * ATTENTION_ROWS;  /* the last block of queries, which sees every key */
    #pragma omp parallel if ((long)B * n_head * T * T * hs >= PARALLEL_MIN_WORK)
    {
        long tile = FN(tile_size)(T, T);
        real* att = FN(zeroed_tiles)(2 * tile);  /* att (with dropout), then datt */
        real* datt = att + tile;
        #pragma omp for schedule(static)
        for (int bj = 0; bj < B * n_kv_head; bj++) {
            int b = bj / n_kv_head, j = bj % n_kv_head;
            const real* k_j = k + b * kv_batch + (long)j * hs;  /* (T, hs) each, rows kv_row apart */
            const real* v_j = v + b * kv_batch + (long)j * hs;
            real* dk_j = dk + b * dkv_batch + (long)j * hs;  /* (T, hs) each, rows dkv_row apart */
            real* dv_j = dv + b * dkv_batch + (long)j * hs;
            for (int g = 0; g < group; g++) {
                int h = j * group + g, bh = b * n_head + h;
                /* blocks of queries from the last: it writes all of dk and dv (the group's first head), the others
                 * add to the rows of the keys they see */
                for (int t0 = last; t0 >= 0; t0 -= ATTENTION_ROWS) {
                    int rows = T - t0 < ATTENTION_ROWS ? T - t0 : ATTENTION_ROWS, W = t0 + rows;  /* keys 0 .. W - 1 */
                    int Wp = FN(padded)(W);
                    const real* q_h = q + b * q_batch + (long)t0 * q_row + (long)h * hs;  /* (rows, hs) */
                    const real* dy_h = dy + ((long)b * T + t0) * D + (long)h * hs;  /* rows D apart */
                    const real* y_h = y + ((long)b * T + t0) * D + (long)h * hs;
                    real* dq_h = dq + b * dq_batch + (long)t0 * dq_row + (long)h * hs;  /* rows dq_row apart */
                    FN(gemm)(rows, W, hs, q_h, q_row, 1, k_j, 1, kv_row, att, Wp, NULL, 0, 0);  /* q k^T, again */
                    FN(gemm)(rows, W, hs, dy_h, D, 1, v_j, 1, kv_row, datt, Wp, NULL, 0, 0);  /* dy v^T, (AT-datt) */
                    for (int i = 0; i < rows; i++) {
                        int t = t0 + i;
                        real *att_t = att + (long)i * Wp, *datt_t = datt + (long)i * Wp;
                        real lse_t = lse[(long)bh * T + t];
                        /* sum_s datt[t, s] att[t, s] = dy_t . y_t: the softmax backward's row sum, eq. (SM-dx) */
                        real rowsum = 0;
                        #pragma omp simd reduction(+:rowsum)
                        for (int d = 0; d < hs; d++)
                            rowsum += dy_h[(long)i * D + d] * y_h[(long)i * D + d];
                        int wn = FN(padded)(t + 1);  /* as in attention_rows: whole vectors, the future selected away */
                        if (mask == NULL) {
                            for (int s0 = 0; s0 < wn; s0 += VECTOR_SPAN) {
                                #pragma omp simd
                                for (int j = 0; j < VECTOR_SPAN; j++)
                                    FN(dpreatt)(att_t, datt_t, NULL, s0 + j, t, lse_t, rowsum, scale);
                            }
                        } else {  /* (the mask's row is T long: read no further) */
                            const real* mask_t = mask + ((long)bh * T + t) * T;
                            #pragma omp simd
                            for (int s = 0; s < (wn < W ? wn : W); s++)
                                FN(dpreatt)(att_t, datt_t, mask_t, s, t, lse_t, rowsum, scale);
                        }
                        for (int s = wn; s < Wp; s++)
                            att_t[s] = datt_t[s] = 0;  /* the rest of the future */
                    }
                    int first = g == 0 && t0 == last;  /* the first block writes dk and dv; the others add */
                    FN(gemm)(W, hs, rows, att, 1, Wp, dy_h, D, 1, dv_j, dkv_row, NULL, !first, 0);  /* dv (+)= a^T dy */
                    FN(gemm)(rows, hs, W, datt, Wp, 1, k_j, kv_row, 1, dq_h, dq_row, NULL, 0, 0);  /* dq = dpreatt k */
                    FN(gemm)(W, hs, rows, datt, 1, Wp, q_h, q_row, 1, dk_j, dkv_row, NULL, !first, 0);  /* dk (+)= */
                }
            }
        }
        free(att);
    }
}
/* --8<-- [end:backward] */
