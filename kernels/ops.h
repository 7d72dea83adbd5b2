/* Every op's kernels for one precision: included twice by minigpt.c, after it defines `real` (float, then double),
 * FN(name) (name_f32, name_f64) and the math it calls (EXP, SIGMOID, LOG, SQRT); the names are undefined at the end. */

#include "gemm.c"
#include "embedding.c"
#include "linear.c"
#include "layernorm.c"
#include "attention.c"
#include "gelu.c"
#include "rmsnorm.c"
#include "rope.c"
#include "swiglu.c"
#include "cross_entropy.c"
#include "dropout.c"
#include "residual.c"
#include "adamw.c"
#include "q8_0.c"

#undef real
#undef FN
#undef EXP
#undef SIGMOID
#undef LOG
#undef SQRT
