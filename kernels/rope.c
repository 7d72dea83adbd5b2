/* Rotary position embeddings: each pair of channels (i, i + hs/2) of each of the nh heads of each of the N positions
 * turned by the angle of its position, (a, b) -> (a cos - b sin, b cos + a sin); the backward turns the other way
 * (direction -1, the transposed rotation, eq. (RoPE-dx)). cos and sin are (T, hs), the angles of the T positions of
 * each of the B sequences. Reference: minigpt/ops/rope.py; the math, docs/ops/rope.md. Included twice by minigpt.c
 * (real = float, double). */

void FN(rope_rotate)(real* out, const real* x, const real* cos_t, const real* sin_t, int B, int T, int nh, int hs,
                     int direction) {
    int h = hs / 2;
    #pragma omp parallel for schedule(static) if ((long)B * T * nh * hs >= PARALLEL_MIN_WORK)
    for (long bt = 0; bt < (long)B * T; bt++) {
        const real *c = cos_t + (bt % T) * hs, *s = sin_t + (bt % T) * hs;
        for (int head = 0; head < nh; head++) {
            const real* x_h = x + (bt * nh + head) * hs;
            real* out_h = out + (bt * nh + head) * hs;
            for (int i = 0; i < h; i++) {
                real a = x_h[i], b = x_h[i + h], s_i = direction * s[i];
                out_h[i] = a * c[i] - b * s_i;
                out_h[i + h] = b * c[i] + a * s_i;
            }
        }
    }
}
