/* Linear layer: out = inp @ weight + bias, with weight (C, OC) as in GPT-2's checkpoint.
 * The reference is minigpt/ops/linear.py; the math is docs/ops/linear.md.
 *
 * Included twice by minigpt.c, with `real` = float and double; FN(name) appends _f32 or _f64.
 * No fast-math, and no implicit fused multiply-adds (-ffp-contract=off): every operation rounds as
 * NumPy's do, except the explicit FMA(a, b, c) = a * b + c rounded once, which BLAS uses as well, and
 * the `omp simd reduction`, which lets the compiler keep several partial sums in one vector register.
 */

/* --8<-- [start:forward] */
/* Forward, blocked: a tile of TILE_R rows of out by TILE_O columns is accumulated over all C in a
 * small local array, while the matching slice of each row of weight streams past. The innermost loop
 * runs along contiguous memory of both weight and the accumulator, so it compiles to vector FMAs. */
void FN(matmul_forward)(real* out, const real* inp, const real* weight, const real* bias, int BT, int C, int OC) {
    #pragma omp parallel for collapse(2) schedule(static) if ((long)BT * OC >= PARALLEL_MIN)
    for (int r0 = 0; r0 < BT; r0 += TILE_R) {
        for (int o0 = 0; o0 < OC; o0 += TILE_O) {
            int nr = BT - r0 < TILE_R ? BT - r0 : TILE_R;
            int no = OC - o0 < TILE_O ? OC - o0 : TILE_O;
            real acc[TILE_R][TILE_O];  /* out[r0:r0+nr, o0:o0+no] */
            for (int r = 0; r < nr; r++)
                for (int o = 0; o < no; o++)
                    acc[r][o] = bias != NULL ? bias[o0 + o] : 0;
            for (int c = 0; c < C; c++) {
                const real* w_row = weight + (long)c * OC + o0;  /* weight[c, o0:o0+no] */
                for (int r = 0; r < nr; r++) {
                    real a = inp[(long)(r0 + r) * C + c];
                    for (int o = 0; o < no; o++)
                        acc[r][o] = FMA(a, w_row[o], acc[r][o]);
                }
            }
            for (int r = 0; r < nr; r++)
                for (int o = 0; o < no; o++)
                    out[(long)(r0 + r) * OC + o0 + o] = acc[r][o];
        }
    }
}
/* --8<-- [end:forward] */

/* Backward: the three gradients of docs/ops/linear.md.
 *   dinp = dout @ weight^T   (BT, C): each entry a dot product of a row of dout and a row of weight
 *   dweight = inp^T @ dout   (C, OC): each thread owns whole rows c of dweight, so no two threads write
 *                                     to the same place
 *   dbias = sum of dout over the rows (OC)
 * dweight and dbias are overwritten, not accumulated into. dbias may be NULL (no bias). */
void FN(matmul_backward)(real* dinp, real* dweight, real* dbias, const real* dout, const real* inp,
                         const real* weight, int BT, int C, int OC) {
    #pragma omp parallel for collapse(2) schedule(static) if ((long)BT * OC >= PARALLEL_MIN)
    for (int r = 0; r < BT; r++) {
        for (int c = 0; c < C; c++) {
            const real* dout_row = dout + (long)r * OC;
            const real* w_row = weight + (long)c * OC;
            real sum = 0;
            #pragma omp simd reduction(+:sum)
            for (int o = 0; o < OC; o++)
                sum = FMA(dout_row[o], w_row[o], sum);
            dinp[(long)r * C + c] = sum;
        }
    }
    #pragma omp parallel for schedule(static) if ((long)BT * OC >= PARALLEL_MIN)
    for (int c = 0; c < C; c++) {
        real* dw_row = dweight + (long)c * OC;  /* dweight[c, :] */
        for (int o = 0; o < OC; o++)
            dw_row[o] = 0;
        for (int r = 0; r < BT; r++) {
            real a = inp[(long)r * C + c];
            const real* dout_row = dout + (long)r * OC;
            for (int o = 0; o < OC; o++)
                dw_row[o] = FMA(a, dout_row[o], dw_row[o]);
        }
    }
    if (dbias != NULL) {
        #pragma omp parallel for schedule(static) if ((long)BT * OC >= PARALLEL_MIN)
        for (int o0 = 0; o0 < OC; o0 += TILE_O) {  /* each thread owns a block of columns */
            int no = OC - o0 < TILE_O ? OC - o0 : TILE_O;
            for (int o = 0; o < no; o++)
                dbias[o0 + o] = 0;
            for (int r = 0; r < BT; r++)
                for (int o = 0; o < no; o++)
                    dbias[o0 + o] += dout[(long)r * OC + o0 + o];
        }
    }
}
