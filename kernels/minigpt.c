/* The one translation unit the build compiles: every kernel, once for float and once for double.
 * Built by minigpt/backends/c/__init__.py (gcc -O3 -march=native -fopenmp -ffp-contract=off, no fast-math) into a
 * shared library cached outside the source tree. */

#include <math.h>
#include <stddef.h>
#include <omp.h>

#include "minigpt.h"

#define PARALLEL_MIN 32768  /* elements: smaller work runs on one thread (waking the others costs more) */
#define TILE_R 4     /* matmul forward: rows of out per tile */
#define TILE_O 64    /* matmul: columns of out per tile (a few vector registers wide) */
#define CHANNEL_BLOCK 16  /* layer norm backward: channels per thread's block for dweight, dbias */
#define GELU_SCALE 0.7978845608028654  /* sqrt(2 / pi) */
#define GELU_CUBIC 0.044715

#define real float
#define FN(name) name##_f32
#define TANH tanhf
#define FMA fmaf
#include "matmul.c"
#include "layernorm.c"
#include "gelu.c"
#undef real
#undef FN
#undef TANH
#undef FMA

#define real double
#define FN(name) name##_f64
#define TANH tanh
#define FMA fma
#include "matmul.c"
#include "layernorm.c"
#include "gelu.c"
#undef real
#undef FN
#undef TANH
#undef FMA

void minigpt_set_threads(int n) { omp_set_num_threads(n); }
int minigpt_get_threads(void) { return omp_get_max_threads(); }
