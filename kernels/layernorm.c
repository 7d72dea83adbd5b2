/* Layer norm over the C channels of each of the BT rows; eps inside the square root, biased variance.
 * The reference is minigpt/ops/layernorm.py; the math, with the backward's three terms, is
 * docs/ops/layernorm.md. Included twice by minigpt.c (real = float, double).
 * Like llm.c, the forward saves mean and rstd per row, and the backward recomputes norm from them. */

void FN(layernorm_forward)(real* out, real* mean, real* rstd, const real* inp, const real* weight,
                           const real* bias, int BT, int C, double eps) {
    #pragma omp parallel for schedule(static) if ((long)BT * C >= PARALLEL_MIN)
    for (int r = 0; r < BT; r++) {
        const real* x = inp + (long)r * C;
        double m = 0;  /* the row's statistics accumulate in double, as the numba kernel's do */
        for (int i = 0; i < C; i++)
            m += x[i];
        m /= C;
        double var = 0;
        for (int i = 0; i < C; i++)
            var += (x[i] - m) * (x[i] - m);
        var /= C;
        double s = 1.0 / sqrt(var + eps);
        real* y = out + (long)r * C;
        for (int i = 0; i < C; i++) {
            real norm = (real)((x[i] - m) * s);
            y[i] = norm * weight[i] + (bias != NULL ? bias[i] : 0);
        }
        mean[r] = (real)m;
        rstd[r] = (real)s;
    }
}

/* dinp = rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)), dnorm = dout * weight   eq. (LN-dx)
 * dweight = sum over rows of dout * norm, dbias = sum over rows of dout (dbias may be NULL).
 * Two loops: rows in parallel for dinp; then blocks of channels in parallel for dweight and dbias, each
 * thread summing its own channels over all rows in row order, so no two threads write to the same
 * place and the result does not depend on the number of threads. dweight, dbias are overwritten. */
void FN(layernorm_backward)(real* dinp, real* dweight, real* dbias, const real* dout, const real* inp,
                            const real* weight, const real* mean, const real* rstd, int BT, int C) {
    #pragma omp parallel for schedule(static) if ((long)BT * C >= PARALLEL_MIN)
    for (int r = 0; r < BT; r++) {
        const real* x = inp + (long)r * C;
        const real* dy = dout + (long)r * C;
        double dnorm_mean = 0, dnorm_norm_mean = 0;  /* terms 2 and 3 */
        for (int i = 0; i < C; i++) {
            real norm = (x[i] - mean[r]) * rstd[r];
            real dnorm = dy[i] * weight[i];
            dnorm_mean += dnorm;
            dnorm_norm_mean += dnorm * norm;
        }
        dnorm_mean /= C;
        dnorm_norm_mean /= C;
        real* dx = dinp + (long)r * C;
        for (int i = 0; i < C; i++) {
            real norm = (x[i] - mean[r]) * rstd[r];
            real dnorm = dy[i] * weight[i];
            dx[i] = (real)(rstd[r] * (dnorm - dnorm_mean - norm * dnorm_norm_mean));
        }
    }
    #pragma omp parallel for schedule(static) if ((long)BT * C >= PARALLEL_MIN)
    for (int i0 = 0; i0 < C; i0 += CHANNEL_BLOCK) {
        int ni = C - i0 < CHANNEL_BLOCK ? C - i0 : CHANNEL_BLOCK;
        double dw[CHANNEL_BLOCK] = {0}, db[CHANNEL_BLOCK] = {0};  /* sums over many rows keep their digits */
        for (int r = 0; r < BT; r++) {
            for (int i = 0; i < ni; i++) {
                real norm = (inp[(long)r * C + i0 + i] - mean[r]) * rstd[r];
                dw[i] += dout[(long)r * C + i0 + i] * norm;
                db[i] += dout[(long)r * C + i0 + i];
            }
        }
        for (int i = 0; i < ni; i++) {
            dweight[i0 + i] = (real)dw[i];
            if (dbias != NULL)
                dbias[i0 + i] = (real)db[i];
        }
    }
}
