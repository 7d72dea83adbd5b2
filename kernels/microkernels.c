/* The micro-kernels of the matmul (gemm.c): each computes one MR x NR tile of C from MR rows of A, read in place
 * through their strides (a[i, k] = a[i * rsa + k * csa]), and a sliver of packed B (NR columns, KC long),
 * accumulating all KC products in registers:
 *
 *     for k < kc:   acc[i][:] += a[i, k] * b[k, :]     (i < MR; b[k, :] is NR numbers: NR / width vectors)
 *
 * Rows past mr (the bottom edge of A) repeat row mr - 1, whose results are not written.
 * then writes the tile: C = acc (+ bias) for the first panel of K, C += acc for the others. Each k loads one row
 * of b (NR / width vectors) and broadcasts MR numbers of a, for MR * NR / width fused multiply-adds: the
 * accumulators fill most of the vector registers, so the loads are few per FMA and the FMA units stay busy.
 *
 *   AVX2 + FMA (16 registers of 8 floats): 6 x 16, 12 accumulators, 2 for b, 1 for a broadcast;
 *   AVX-512 (32 registers of 16 floats):  12 x 32, 24 accumulators;
 *   portable (any C compiler): 4 x 8, in arrays the compiler may keep in registers and vectorise.
 * The vector ones are compiled for their instruction set alone (target attributes) and chosen at run time from
 * the CPU's features (minigpt_init), so the library runs on any x86-64. The portable one is also the float64
 * kernel. A vector kernel's FMA rounds once per multiply-add, as BLAS does; the reference (NumPy's BLAS) does too.
 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* Write an MR x NR tile held in `tile` (row stride ld) into C: C = tile + bias, or C += tile (beta = 1). */
static void write_tile_f32(const float* tile, int ld, float* c, long ldc, int mr, int nr, const float* bias, int beta) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float v = tile[i * ld + j];
            if (beta)
                v += c[(long)i * ldc + j];
            else if (bias != NULL)
                v += bias[j];
            c[(long)i * ldc + j] = v;
        }
}

#ifdef HAVE_X86
/* --8<-- [start:avx2] */
#define AVX2_ROW(i) {                                        \
        __m256 a_i = _mm256_broadcast_ss(a##i + o);          \
        c##i##0 = _mm256_fmadd_ps(a_i, b0, c##i##0);         \
        c##i##1 = _mm256_fmadd_ps(a_i, b1, c##i##1); }
#define AVX2_STORE(i) {                                                      \
        float* c_i = c + (long)i * ldc;                                     \
        if (beta) {                                                          \
            c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(c_i));         \
            c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(c_i + 8));     \
        } else if (bias != NULL) {                                           \
            c##i##0 = _mm256_add_ps(c##i##0, _mm256_loadu_ps(bias));        \
            c##i##1 = _mm256_add_ps(c##i##1, _mm256_loadu_ps(bias + 8));    \
        }                                                                    \
        _mm256_storeu_ps(c_i, c##i##0);                                      \
        _mm256_storeu_ps(c_i + 8, c##i##1); }

__attribute__((target("avx2,fma")))
static void micro_avx2_f32(int kc, const float* a, long rsa, long csa, const float* b, float* c, long ldc, int mr,
                           int nr, const float* bias, int beta) {
    const float *a0 = a, *a1 = a + (mr > 1) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;  /* the 6 rows of A */
    const float *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa;
    const float *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (long k = 0, o = 0; k < kc; k++, o += csa) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);  /* row k of the sliver of B */
        AVX2_ROW(0) AVX2_ROW(1) AVX2_ROW(2) AVX2_ROW(3) AVX2_ROW(4) AVX2_ROW(5)
        b += 16;
    }
    if (mr == 6 && nr == 16) {  /* a whole tile: straight from the registers */
        AVX2_STORE(0) AVX2_STORE(1) AVX2_STORE(2) AVX2_STORE(3) AVX2_STORE(4) AVX2_STORE(5)
        return;
    }
    float tile[6 * 16] __attribute__((aligned(32)));  /* the edge of C: through memory */
    _mm256_store_ps(tile, c00); _mm256_store_ps(tile + 8, c01); _mm256_store_ps(tile + 16, c10);
    _mm256_store_ps(tile + 24, c11); _mm256_store_ps(tile + 32, c20); _mm256_store_ps(tile + 40, c21);
    _mm256_store_ps(tile + 48, c30); _mm256_store_ps(tile + 56, c31); _mm256_store_ps(tile + 64, c40);
    _mm256_store_ps(tile + 72, c41); _mm256_store_ps(tile + 80, c50); _mm256_store_ps(tile + 88, c51);
    write_tile_f32(tile, 16, c, ldc, mr, nr, bias, beta);
}
/* --8<-- [end:avx2] */

/* --8<-- [start:avx512] */
#define AVX512_ROW(i) {                                      \
        __m512 a_i = _mm512_set1_ps(a##i[o]);                \
        c##i##0 = _mm512_fmadd_ps(a_i, b0, c##i##0);         \
        c##i##1 = _mm512_fmadd_ps(a_i, b1, c##i##1); }
#define AVX512_STORE(i) {                                                    \
        float* c_i = c + (long)i * ldc;                                     \
        if (beta) {                                                          \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(c_i));         \
            c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(c_i + 16));    \
        } else if (bias != NULL) {                                           \
            c##i##0 = _mm512_add_ps(c##i##0, _mm512_loadu_ps(bias));        \
            c##i##1 = _mm512_add_ps(c##i##1, _mm512_loadu_ps(bias + 16));   \
        }                                                                    \
        _mm512_storeu_ps(c_i, c##i##0);                                      \
        _mm512_storeu_ps(c_i + 16, c##i##1); }
#define AVX512_SPILL(i) { _mm512_store_ps(tile + i * 32, c##i##0); _mm512_store_ps(tile + i * 32 + 16, c##i##1); }

/* The accumulators are 24 named variables, not an array: the compiler keeps each in its register from the first
 * multiply-add to the store into C (an array of them went through the stack before and after the loop). */
__attribute__((target("avx512f")))
static void micro_avx512_f32(int kc, const float* a, long rsa, long csa, const float* b, float* c, long ldc, int mr,
                             int nr, const float* bias, int beta) {
    for (int i = 0; i < mr; i++) {  /* the tile of C, written (or read and written) at the end */
        _mm_prefetch((const char*)(c + (long)i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char*)(c + (long)i * ldc + 16), _MM_HINT_T0);
    }
    const float *a0 = a, *a1 = a + (mr > 1 ? 1 : mr - 1) * rsa, *a2 = a + (mr > 2 ? 2 : mr - 1) * rsa;  /* 12 rows */
    const float *a3 = a + (mr > 3 ? 3 : mr - 1) * rsa, *a4 = a + (mr > 4 ? 4 : mr - 1) * rsa;
    const float *a5 = a + (mr > 5 ? 5 : mr - 1) * rsa, *a6 = a + (mr > 6 ? 6 : mr - 1) * rsa;
    const float *a7 = a + (mr > 7 ? 7 : mr - 1) * rsa, *a8 = a + (mr > 8 ? 8 : mr - 1) * rsa;
    const float *a9 = a + (mr > 9 ? 9 : mr - 1) * rsa, *a10 = a + (mr > 10 ? 10 : mr - 1) * rsa;
    const float *a11 = a + (mr > 11 ? 11 : mr - 1) * rsa;
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
    __m512 c80 = c00, c81 = c00, c90 = c00, c91 = c00, c100 = c00, c101 = c00, c110 = c00, c111 = c00;
#define AVX512_STEP {                                                                                \
        __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);  /* row k of the sliver of B */    \
        AVX512_ROW(0) AVX512_ROW(1) AVX512_ROW(2) AVX512_ROW(3) AVX512_ROW(4) AVX512_ROW(5)             \
        AVX512_ROW(6) AVX512_ROW(7) AVX512_ROW(8) AVX512_ROW(9) AVX512_ROW(10) AVX512_ROW(11)           \
        b += 32; }
    if (rsa == 1 && csa > 16) {  /* A^T read in place: a new line of A at every step, a new page every few, where
                                  * the hardware's prefetcher stops; the 12 numbers' lines (two, if they straddle) */
        for (long k = 0, o = 0; k < kc; k++, o += csa) {
            _mm_prefetch((const char*)(a0 + o + PREFETCH_A_STEPS * csa), _MM_HINT_T0);
            _mm_prefetch((const char*)(a11 + o + PREFETCH_A_STEPS * csa), _MM_HINT_T0);
            AVX512_STEP
        }
    } else
        for (long k = 0, o = 0; k < kc; k++, o += csa)
            AVX512_STEP
    if (mr == 12 && nr == 32) {  /* a whole tile: straight from the registers */
        AVX512_STORE(0) AVX512_STORE(1) AVX512_STORE(2) AVX512_STORE(3) AVX512_STORE(4) AVX512_STORE(5)
        AVX512_STORE(6) AVX512_STORE(7) AVX512_STORE(8) AVX512_STORE(9) AVX512_STORE(10) AVX512_STORE(11)
        return;
    }
    float tile[12 * 32] __attribute__((aligned(64)));  /* the edge of C: through memory */
    AVX512_SPILL(0) AVX512_SPILL(1) AVX512_SPILL(2) AVX512_SPILL(3) AVX512_SPILL(4) AVX512_SPILL(5)
    AVX512_SPILL(6) AVX512_SPILL(7) AVX512_SPILL(8) AVX512_SPILL(9) AVX512_SPILL(10) AVX512_SPILL(11)
    write_tile_f32(tile, 32, c, ldc, mr, nr, bias, beta);
}
/* --8<-- [end:avx512] */
#endif
