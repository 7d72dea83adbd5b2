/* minigpt's C kernels: the declarations that minigpt/backends/c/__init__.py gives to cffi.
 *
 * Sizes use the names of docs/notation.md: B batch, T sequence length, C channels, OC output channels;
 * BT = B * T rows (positions). Arrays are row-major and contiguous, and every kernel writes into
 * buffers its caller allocated. Each kernel exists twice, for float (_f32) and double (_f64).
 */

void matmul_forward_f32(float* out, const float* inp, const float* weight, const float* bias, int BT, int C, int OC);
void matmul_backward_f32(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, int BT, int C, int OC);
void layernorm_forward_f32(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                           const float* bias, int BT, int C, double eps);
void layernorm_backward_f32(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                            const float* weight, const float* mean, const float* rstd, int BT, int C);
void gelu_forward_f32(float* out, const float* inp, long n);
void gelu_backward_f32(float* dinp, const float* inp, const float* dout, long n);

void matmul_forward_f64(double* out, const double* inp, const double* weight, const double* bias, int BT, int C, int OC);
void matmul_backward_f64(double* dinp, double* dweight, double* dbias, const double* dout, const double* inp,
                         const double* weight, int BT, int C, int OC);
void layernorm_forward_f64(double* out, double* mean, double* rstd, const double* inp, const double* weight,
                           const double* bias, int BT, int C, double eps);
void layernorm_backward_f64(double* dinp, double* dweight, double* dbias, const double* dout, const double* inp,
                            const double* weight, const double* mean, const double* rstd, int BT, int C);
void gelu_forward_f64(double* out, const double* inp, long n);
void gelu_backward_f64(double* dinp, const double* inp, const double* dout, long n);

void minigpt_set_threads(int n);
int minigpt_get_threads(void);
