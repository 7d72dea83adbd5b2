/* Softmax cross-entropy: per row, one pass for the max and one for the sum of exponentials (in double); nothing
 * (N, V) is kept: the backward recomputes the probabilities from the logits and lse, writing weight * (p - y)
 * in one pass. Reference: minigpt/ops/cross_entropy.py; math: docs/ops/cross_entropy.md (eq. (CE-dlogits)).
 * Included twice by minigpt.c (real = float, double). */

void FN(cross_entropy_forward)(real* nll, real* lse, const real* logits, const int64_t* targets, int N, int V) {
    #pragma omp parallel for schedule(static) if ((long)N * V >= PARALLEL_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const real* logits_n = logits + (long)n * V;
        real maxval = logits_n[0];
        #pragma omp simd reduction(max:maxval)
        for (int v = 1; v < V; v++)
            maxval = logits_n[v] > maxval ? logits_n[v] : maxval;
        double total = 0;  /* a sum of V terms keeps its digits in double */
        #pragma omp simd reduction(+:total)
        for (int v = 0; v < V; v++)
            total += EXP(logits_n[v] - maxval);
        lse[n] = (real)(maxval + log(total));
        nll[n] = lse[n] - logits_n[targets[n]];
    }
}

void FN(cross_entropy_backward)(real* dlogits, const real* logits, const real* lse, const int64_t* targets,
                                const real* weight, int N, int V) {
    #pragma omp parallel for schedule(static) if ((long)N * V >= PARALLEL_MIN_WORK)
    for (int n = 0; n < N; n++) {
        const real* logits_n = logits + (long)n * V;
        real* dlogits_n = dlogits + (long)n * V;
        for (int v = 0; v < V; v++)
            dlogits_n[v] = weight[n] * EXP(logits_n[v] - lse[n]);
        dlogits_n[targets[n]] -= weight[n];
    }
}
