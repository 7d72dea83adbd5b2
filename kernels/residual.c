/* Residual connection, forward and backward: a = x + a, in place, a the branch's new array (minigpt/ops/residual.py;
 * docs/ops/residual.md). The threads take contiguous blocks of the rows (static schedule), as the layer norm after it
 * and the projection before it do, so each adds rows already in its own core's cache: NumPy's addition, on one thread,
 * was 0.6 ms of the recipe's step (16 of them). Included twice by minigpt.c (real = float, double). */

void FN(residual_add)(real* a, const real* x, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++)
        a[i] = x[i] + a[i];
}
