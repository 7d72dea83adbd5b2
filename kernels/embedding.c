/* Token + position embedding: out[b, t] = wte[idx[b, t]] + wpe[start + t] (wte's row alone for wpe NULL: no table of
 * positions); its backward adds each row of dout into the rows of dwte and dwpe it came from (a scatter-add: a token
 * that appears k times receives the sum of its k rows). Reference: minigpt/ops/embedding.py; math:
 * docs/ops/embedding.md. Included twice by minigpt.c. */

void FN(embedding_forward)(real* out, const int64_t* idx, const real* wte, const real* wpe, int B, int T, int C, int start) {
    #pragma omp parallel for schedule(static) if ((long)B * T * C >= PARALLEL_MIN_WORK)
    for (long bt = 0; bt < (long)B * T; bt++) {
        const real* wte_row = wte + idx[bt] * C;
        real* out_bt = out + bt * C;
        if (wpe == NULL) {
            memcpy(out_bt, wte_row, sizeof(real) * C);
            continue;
        }
        const real* wpe_row = wpe + (long)(start + bt % T) * C;
        for (int i = 0; i < C; i++)
            out_bt[i] = wte_row[i] + wpe_row[i];
    }
}

/* Adds into dwte (V, C) and dwpe (block_size, C) (or NULL), which hold zeros or another gradient of the parameter.
 * In parallel over blocks of channels: each thread owns its columns, so repeated tokens need no atomics, and
 * each entry's sum is taken in the same order (b, t) as on one thread. */
void FN(embedding_backward)(real* dwte, real* dwpe, const real* dout, const int64_t* idx, int B, int T, int C, int start) {
    #pragma omp parallel for schedule(static) if ((long)B * T * C >= PARALLEL_MIN_WORK)
    for (int i0 = 0; i0 < C; i0 += CHANNEL_BLOCK) {
        int i1 = C - i0 < CHANNEL_BLOCK ? C : i0 + CHANNEL_BLOCK;
        for (long bt = 0; bt < (long)B * T; bt++) {
            const real* dout_bt = dout + bt * C;
            real* dwte_row = dwte + idx[bt] * C;
            for (int i = i0; i < i1; i++)
                dwte_row[i] += dout_bt[i];
            if (dwpe == NULL)
                continue;
            real* dwpe_row = dwpe + (long)(start + bt % T) * C;
            for (int i = i0; i < i1; i++)
                dwpe_row[i] += dout_bt[i];
        }
    }
}
