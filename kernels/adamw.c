/* The AdamW update of one parameter, in place, in one pass (docs/training.md): the arithmetic in the order of
 * adamw_update in minigpt/optim.py, in the parameter's precision. Included twice by minigpt.c. */

void FN(adamw_update)(real* p, const real* g, real* m, real* v, long n, double lr, double beta1, double beta2,
                      double bias_correction1, double bias_correction2_sqrt, double eps, double decay) {
    real b1 = (real)beta1, b2 = (real)beta2, e = (real)eps;
    real keep = (real)(1.0 - lr * decay);  /* decoupled weight decay (decay = 0: none) */
    real step = (real)(lr / bias_correction1), correction2 = (real)bias_correction2_sqrt;
    #pragma omp parallel for schedule(static) if (n >= ADAMW_PARALLEL_MIN)
    for (long i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * g[i];  /* first moment */
        v[i] = b2 * v[i] + (1 - b2) * (g[i] * g[i]);  /* second moment */
        p[i] = p[i] * keep - step * m[i] / (SQRT(v[i]) / correction2 + e);
    }
}
