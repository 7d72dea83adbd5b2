/* Dropout, forward and backward: out = x * mask, with the mask of 0s and 1 / (1 - p) that the op drew
 * (minigpt/ops/dropout.py; docs/ops/dropout.md). Included twice by minigpt.c (real = float, double). */

void FN(dropout)(real* out, const real* x, const real* mask, long n) {
    #pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_WORK)
    for (long i = 0; i < n; i++)
        out[i] = x[i] * mask[i];
}
