/* The one translation unit the build compiles: every kernel, once for float and once for double (ops.h, which
 * includes each op's file, is included twice, with `real` and FN(name) -> name_f32, name_f64). Built by minigpt/backends/c/__init__.py, on
 * first use, into a shared library cached outside the source tree: cc -O3 -march=native -fopenmp
 * -ffp-contract=off -fno-math-errno -fno-trapping-math, no fast-math, so every operation rounds as NumPy's do
 * except where a kernel asks for a fused multiply-add (the matmul's micro-kernels, as BLAS). The matmul's micro-kernel is chosen at run time from the
 * CPU's features (minigpt_init), each compiled for its own instruction set: the library would run on any x86-64
 * CPU, and the tests run every kernel the machine has. */

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <stdint.h>

#include "minigpt.h"
#include "vecmath.h"

/* Work below which a kernel runs on the calling thread: the other threads' share would cost less than
 * handing it to them (a few microseconds while they wait spinning). Multiply-adds, or elements. */
#define PARALLEL_MIN_WORK 65536

/* The matmul's blocks (gemm.c), from the caches of the CPUs it runs on (32 KB L1 data cache, 512 KB to 2 MB L2
 * per core, several MB of L3): a sliver of packed B, KC x NR = 256 x 16 floats (16 KB, or 32 KB for AVX-512's
 * 32 columns), and one of packed A, KC x MR = 256 x 6 floats (6 KB), stay in L1 while a tile is computed; the
 * packed block of A, MC x KC = 144 x 256 floats (144 KB), stays in L2 while it is swept by every sliver of B; the
 * packed panel of B, KC x NC = 256 x 2048 floats (2 MB), in L3. MC is a multiple of 6 and 12 and 4, NC of 16
 * and 32 and 8: every micro-kernel tiles them whole. Doubles take twice the bytes, still within each cache. */
#define KC 256
#define MC 144
#define NC 2048
#define ROWS_PER_THREAD_MIN 8  /* slivers of A (gemm.c, gemm_team) */
#define PREFETCH_A_STEPS 8  /* steps along k ahead the AVX-512 micro-kernel asks for a transposed A read in place */
#define PACK_A_MIN_STEP 2048  /* bytes: half a 4 KB page (gemm.c, pack_a_sliver) */
static long pack_a_min_step = PACK_A_MIN_STEP;  /* what gemm.c uses: minigpt_set_pack_a_min_step changes it */
#define FEW_ROWS 8  /* a product of at most this many rows skips the packing (gemm.c, gemm_few_rows): measured faster
                     * up to 8 rows (a short prompt) in both layouts of a SmolLM2-135M-shaped weight (docs/inference.md) */
#define FEW_ROWS_PARALLEL_MIN (1L << 18)  /* ... and is threaded from this many numbers of B (1 MB in float32) */

typedef void (*MicroFn_f32)(int, const float*, long, long, const float*, float*, long, int, int, const float*, int);
typedef void (*MicroFn_f64)(int, const double*, long, long, const double*, double*, long, int, int, const double*, int);
typedef struct { int mr, nr; MicroFn_f32 fn; const char* name; } Microkernel_f32;
typedef struct { int mr, nr; MicroFn_f64 fn; const char* name; } Microkernel_f64;

#include "microkernels.c"

/* A float16 (IEEE binary16, as GGUF stores Q8_0's scales) as a float: every float16 is exactly a float. */
static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff, bits;
    if (exponent == 0) {  /* zero and the subnormals: mantissa 2^-24 */
        float magnitude = (float)mantissa * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31)  /* infinity and NaN */
        bits = sign | 0x7f800000u | mantissa << 13;
    else  /* normal: the exponent's bias 15 -> 127 */
        bits = sign | (exponent + 112) << 23 | mantissa << 13;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
#define Q8_PARALLEL_MIN_BYTES (1L << 17)  /* a Q8_0 product of a few rows is threaded from this many bytes of W */

#define VECTOR_SPAN (64 / (int)sizeof(real))  /* numbers in the widest vector (AVX-512's 64 bytes): attention.c */
#define ATTENTION_ROWS 32  /* queries per block of attention's tile (attention.c): a causal tile's blocks skip the
                            * keys none of their queries sees, a quarter of the products at 64 positions */
#define SPLIT_K_MIN 64  /* rows per thread from which a weight's gradient splits its sum among the threads (linear.c) */
#define SPLIT_K_MAX_OUTPUT (1L << 17)  /* ... when it has at most this many numbers (512 KB in float32) */
#define ADAMW_PARALLEL_MIN 8192  /* parameters from which AdamW's update is threaded: ten operations and 28 bytes each
                                  * (adamw.c) */
#define TRANSPOSE_ROWS 64  /* rows of a weight's gradient each thread's block of its transposition holds (linear.c) */
#define ROW_CHUNK 32  /* rows per chunk where a sum over rows is split into chunks summed in parallel (linear.c,
                       * layernorm.c, rmsnorm.c) */
#define CHANNEL_BLOCK 16  /* channels per thread's block where threads split a sum over rows by columns (embedding.c) */
/* An elementwise kernel at the widest vectors: GCC's -march=native keeps to 256-bit vectors on AVX-512 CPUs unless
 * told otherwise (its tuning for them); a compiler without the attribute (clang) gets its own default. */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define WIDEST __attribute__((target("prefer-vector-width=512")))
#else
#define WIDEST
#endif
/* Vector shuffles by constant indices (gemm.c, transpose8): Clang's __builtin_shufflevector, which GCC has from version
 * 12; with an older GCC, gemm.c's transpose moves one number at a time. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define HAVE_SHUFFLEVECTOR 1
#endif
#define GELU_SCALE 0.7978845608028654  /* sqrt(2 / pi) */
#define GELU_CUBIC 0.044715

#define real float
#define FN(name) name##_f32
#define EXP exp_f32
#define SIGMOID sigmoid_f32
#define LOG logf
#define SQRT sqrtf
static void micro_portable_f32(int, const float*, long, long, const float*, float*, long, int, int, const float*, int);
static Microkernel_f32 microkernel_f32 = {4, 8, micro_portable_f32, "portable"};
#include "ops.h"

#define real double
#define FN(name) name##_f64
#define EXP exp_f64
#define SIGMOID sigmoid_f64
#define LOG log
#define SQRT sqrt
static void micro_portable_f64(int, const double*, long, long, const double*, double*, long, int, int, const double*, int);
static Microkernel_f64 microkernel_f64 = {4, 8, micro_portable_f64, "portable"};
#include "ops.h"

/* Choose the float32 micro-kernel from the CPU's features, or the one named (the tests try each that runs). */
const char* minigpt_init(const char* name) {
#ifdef HAVE_X86
    __builtin_cpu_init();
    int avx512 = __builtin_cpu_supports("avx512f"), avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    q8_0_avx512 = 0;
    if ((name == NULL && avx512) || (name != NULL && strcmp(name, "avx512") == 0 && avx512)) {
        microkernel_f32 = (Microkernel_f32){12, 32, micro_avx512_f32, "avx512"};
        q8_0_avx512 = __builtin_cpu_supports("f16c");  /* (kernels/q8_0.c) */
    }
    else if ((name == NULL && avx2) || (name != NULL && strcmp(name, "avx2") == 0 && avx2))
        microkernel_f32 = (Microkernel_f32){6, 16, micro_avx2_f32, "avx2"};
    else
#endif
        microkernel_f32 = (Microkernel_f32){4, 8, micro_portable_f32, "portable"};
    return microkernel_f32.name;
}

void minigpt_set_threads(int n) { omp_set_num_threads(n); }
int minigpt_get_threads(void) { return omp_get_max_threads(); }

/* For benchmarks/bench_matmul.py, which measures what packing a transposed A buys: pack it from this step along k
 * (bytes; 0: always, a huge value: never; negative: back to PACK_A_MIN_STEP). Returns the previous value. */
long minigpt_set_pack_a_min_step(long bytes) {
    long previous = pack_a_min_step;
    pack_a_min_step = bytes < 0 ? PACK_A_MIN_STEP : bytes;
    return previous;
}

/* For benchmarks/bench_matmul.py: the float32 micro-kernel alone, `repeats` times over one MR x NR tile of C with
 * kc = KC, its slivers of A and B packed and in the L1 cache, on the calling thread. The roof of the roofline: what
 * the FMA units reach when nothing has to come from farther away. Returns the seconds. */
double minigpt_microkernel_seconds(long repeats) {
    const Microkernel_f32* uk = &microkernel_f32;
    float* a = aligned_alloc(64, sizeof(float) * uk->mr * KC);  /* packed: a[k * mr + i] */
    float* b = aligned_alloc(64, sizeof(float) * uk->nr * KC);
    float* c = aligned_alloc(64, sizeof(float) * uk->mr * uk->nr);
    for (long i = 0; i < (long)uk->mr * KC; i++)
        a[i] = 1e-3f * (float)(i % 7);
    for (long i = 0; i < (long)uk->nr * KC; i++)
        b[i] = 1e-3f * (float)(i % 5);
    for (int i = 0; i < uk->mr * uk->nr; i++)
        c[i] = 0;
    double t0 = omp_get_wtime();
    for (long r = 0; r < repeats; r++)
        uk->fn(KC, a, 1, uk->mr, b, c, uk->nr, uk->mr, uk->nr, NULL, 1);  /* C += A B: every result is used */
    double seconds = omp_get_wtime() - t0;
    free(a);
    free(b);
    free(c);
    return seconds;
}
