/* A linear layer on Q8_0 weights: out = x @ W^T + b, W (OC, C) held as GGUF lays it out, each row a run of blocks of
 * 34 bytes: a float16 scale d (little-endian), then 32 int8 weights q; each weight is d q, exact in float and
 * double. Reference: minigpt/ops/q8_0.py (x @ dequantize(W)^T); the format and its cost: docs/inference.md.
 * Included twice by minigpt.c (real = float, double).
 *
 * Up to 32 rows of x (decoding: one per sequence; a short prompt) are made straight from the bytes as they lie:
 * each thread owns a contiguous range of W's rows, a stream of 8.5 bits a weight that it prefetches ahead; each
 * block's 32 weights are dequantized into a vector, d q (exact), and multiplied into 32 running sums for each of
 * 4 rows of x at a time, added up once per output. More rows (a long prompt, an evaluation) reuse each weight many
 * times: panels of W are dequantized into a float buffer and multiplied on the matmul of gemm.c. */

#ifndef Q8_0_DECLARED  /* once, before the float and double kernels */
#define Q8_0_DECLARED
#define Q8_BLOCK 32
#define Q8_BLOCK_BYTES 34
#define Q8_FEW_ROWS 4  /* rows of x multiplied by a row of W at once */
#define Q8_DIRECT_ROWS 32  /* rows of x made straight from the bytes; more through panels and gemm (measured even
                            * at 32 rows of a SmolLM2-135M-shaped 1536 x 576 weight, docs/inference.md) */
#define Q8_PANEL 256  /* rows of W dequantized at a time for gemm */
/* bytes ahead that the AVX-512 kernel asks the memory for: the hardware's prefetcher alone kept 10.5 GB/s in flight
 * for a matrix-vector product out of DRAM, 28 GB/s with this (Intel Xeon, 2 threads; docs/inference.md) */
#define Q8_PREFETCH 4096
static void q8_0_rows_f32(float* result, const uint8_t* row, int nb, const float* x, int C, int n);
static void q8_0_rows_portable_f64(double* result, const uint8_t* row, int nb, const double* x, int C, int n);
/* whether the float kernel uses AVX-512: set with the matmul's micro-kernel (minigpt_init), so that the tests that run
 * each micro-kernel the CPU has run the portable loop too */
static int q8_0_avx512 = 0;
#endif

/* result[i] = x_i . (row of W), for the n <= Q8_FEW_ROWS rows x_i of x (C apart), one weight row's nb blocks: each
 * block's 32 weights dequantized (d q, exact) and multiplied into 32 running sums per row, added up at the end.
 * The float kernel uses AVX-512 where the CPU has it (q8_0_rows_f32, below). */
/* a block's 32 weights, d q each (exact): its first two bytes are d, a float16 (little-endian), the next 32 the q */
static inline void FN(q8_0_block)(real* w, const uint8_t* block) {
    real d = (real)half_to_float((uint16_t)(block[0] | block[1] << 8));
    const int8_t* q = (const int8_t*)(block + 2);
    #pragma omp simd
    for (int j = 0; j < Q8_BLOCK; j++)
        w[j] = d * (real)q[j];
}

static void FN(q8_0_rows_portable)(real* result, const uint8_t* row, int nb, const real* x, int C, int n) {
    for (int i = 0; i < n; i++) {
        const real* xi = x + (long)i * C;
        real sum[Q8_BLOCK] = {0}, w[Q8_BLOCK];
        for (int blk = 0; blk < nb; blk++) {
            FN(q8_0_block)(w, row + (long)blk * Q8_BLOCK_BYTES);
            #pragma omp simd
            for (int j = 0; j < Q8_BLOCK; j++)
                sum[j] += w[j] * xi[blk * Q8_BLOCK + j];
        }
        real total = 0;
        for (int j = 0; j < Q8_BLOCK; j++)
            total += sum[j];
        result[i] = total;
    }
}

/* rows [o0, o1) of W dequantized into w (o1 - o0, C) */
static void FN(q8_0_dequantize_rows)(real* w, const uint8_t* blocks, int o0, int o1, int C) {
    int nb = C / Q8_BLOCK;
    #pragma omp parallel for schedule(static) if ((long)(o1 - o0) * C >= PARALLEL_MIN_WORK)
    for (int o = o0; o < o1; o++)
        for (int blk = 0; blk < nb; blk++)
            FN(q8_0_block)(w + (long)(o - o0) * C + blk * Q8_BLOCK, blocks + ((long)o * nb + blk) * Q8_BLOCK_BYTES);
}

void FN(q8_0_linear_forward)(real* out, const real* x, const uint8_t* blocks, const real* b, int N, int C, int OC) {
    if (N > Q8_DIRECT_ROWS) {
        real* w = malloc(sizeof(real) * Q8_PANEL * C);  /* (Q8_PANEL, C) */
        for (int o0 = 0; o0 < OC; o0 += Q8_PANEL) {
            int o1 = OC - o0 < Q8_PANEL ? OC : o0 + Q8_PANEL;
            FN(q8_0_dequantize_rows)(w, blocks, o0, o1, C);
            /* out[:, o0:o1] = x @ w^T + b[o0:o1]: B[k, j] = w[j, k], rows 1 apart, columns C */
            FN(gemm)(N, o1 - o0, C, x, C, 1, w, 1, C, out + o0, OC, b == NULL ? NULL : b + o0, 0, 1);
        }
        free(w);
        return;
    }
    int nb = C / Q8_BLOCK;
    long row_bytes = (long)nb * Q8_BLOCK_BYTES;
    #pragma omp parallel for schedule(static) if ((long)OC * row_bytes >= Q8_PARALLEL_MIN_BYTES)
    for (int o = 0; o < OC; o++) {
        for (int i0 = 0; i0 < N; i0 += Q8_FEW_ROWS) {  /* the row of W stays in L1 from one group of x's to the next */
            int n = N - i0 < Q8_FEW_ROWS ? N - i0 : Q8_FEW_ROWS;
            real result[Q8_FEW_ROWS];
            _Generic((real)0, float: q8_0_rows_f32, double: q8_0_rows_portable_f64)(
                result, blocks + (long)o * row_bytes, nb, x + (long)i0 * C, C, n);
            for (int i = 0; i < n; i++)
                out[(long)(i0 + i) * OC + o] = result[i] + (b == NULL ? 0 : b[o]);
        }
    }
}

#ifndef Q8_0_DEFINED  /* once, after the float kernels */
#define Q8_0_DEFINED
#ifdef HAVE_X86
/* --8<-- [start:avx512] */
/* q8_0_rows for n rows of x, n a constant once inlined: 16 weights a vector, int8 -> int32 -> float, times d */
__attribute__((target("avx512f,f16c"), always_inline))
static inline void q8_0_rows_avx512_n(float* result, const uint8_t* row, int nb, const float* x, int C, int n) {
    __m512 acc[Q8_FEW_ROWS][2];
    for (int i = 0; i < n; i++)
        acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int blk = 0; blk < nb; blk++) {
        const uint8_t* block = row + (long)blk * Q8_BLOCK_BYTES;
        _mm_prefetch((const char*)block + Q8_PREFETCH, _MM_HINT_T0);
        uint16_t h;
        memcpy(&h, block, sizeof h);
        __m512 d = _mm512_set1_ps(_cvtsh_ss(h));
        __m128i q0 = _mm_loadu_si128((const __m128i*)(block + 2)), q1 = _mm_loadu_si128((const __m128i*)(block + 18));
        __m512 w0 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)));  /* 16 bytes -> int32 -> float */
        __m512 w1 = _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)));
        for (int i = 0; i < n; i++) {
            const float* xi = x + (long)i * C + (long)blk * Q8_BLOCK;
            acc[i][0] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(xi), acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(xi + 16), acc[i][1]);
        }
    }
    for (int i = 0; i < n; i++)
        result[i] = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]));
}

__attribute__((target("avx512f,f16c")))
static void q8_0_rows_avx512(float* result, const uint8_t* row, int nb, const float* x, int C, int n) {
    switch (n) {  /* each case inlined with its constant n: the accumulators stay in registers */
        case 1: q8_0_rows_avx512_n(result, row, nb, x, C, 1); break;
        case 2: q8_0_rows_avx512_n(result, row, nb, x, C, 2); break;
        case 3: q8_0_rows_avx512_n(result, row, nb, x, C, 3); break;
        default: q8_0_rows_avx512_n(result, row, nb, x, C, 4); break;
    }
}
/* --8<-- [end:avx512] */
#endif

static void q8_0_rows_f32(float* result, const uint8_t* row, int nb, const float* x, int C, int n) {
#ifdef HAVE_X86
    if (q8_0_avx512) {
        q8_0_rows_avx512(result, row, nb, x, C, n);
        return;
    }
#endif
    q8_0_rows_portable_f32(result, row, nb, x, C, n);
}
#endif
