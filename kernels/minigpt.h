/* minigpt's C kernels: the declarations that minigpt/backends/c/__init__.py gives to cffi.
 *
 * Sizes use the names of docs/notation.md: B batch, T sequence length, C channels, OC output channels, V
 * vocabulary, nh heads; N = B * T rows (positions). Arrays are row-major and contiguous (a weight w is read
 * through its strides), token ids are int64, and every kernel writes into arrays its caller allocated. Each
 * kernel exists twice: for float (_f32) and for double (_f64, the same with double for float). */

void gemm_f32(int M, int N, int K, const float* A, long rsa, long csa, const float* B, long rsb, long csb,
              float* C, long ldc, const float* bias, int accumulate, int parallel);
void embedding_forward_f32(float* out, const int64_t* idx, const float* wte, const float* wpe, int B, int T, int C, int start);
void embedding_backward_f32(float* dwte, float* dwpe, const float* dout, const int64_t* idx, int B, int T, int C, int start);
void linear_forward_f32(float* out, const float* x, const float* w, long w_rs, long w_cs, const float* b, int N, int C, int OC);
void linear_backward_f32(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w, long w_rs,
                         long w_cs, int N, int C, int OC);
void layernorm_forward_f32(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                           int N, int C, double eps);
void layernorm_backward_f32(float* dx, float* dw, float* db, const float* dout, const float* x, const float* w,
                            const float* mean, const float* rstd, int N, int C);
void attention_forward_f32(float* y, float* lse, const float* q, const float* k, const float* v, const float* mask,
                           int B, int T, int S, int n_head, int n_kv_head, int hs, long q_row, long q_batch,
                           long kv_row, long kv_batch);
void attention_backward_f32(float* dq, float* dk, float* dv, const float* dy, const float* q, const float* k,
                            const float* v, const float* y, const float* lse, const float* mask, int B, int T,
                            int n_head, int n_kv_head, int hs, long q_row, long q_batch, long kv_row, long kv_batch,
                            long dq_row, long dq_batch, long dkv_row, long dkv_batch);
void gelu_forward_f32(float* out, const float* x, long n);
void gelu_backward_f32(float* dx, const float* dout, const float* x, long n);
void rmsnorm_forward_f32(float* out, float* rstd, const float* x, const float* w, int N, int C, double eps);
void rmsnorm_backward_f32(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                          int N, int C);
void rope_rotate_f32(float* out, const float* x, const float* cos_t, const float* sin_t, int B, int T, int nh, int hs,
                     int direction);
void swiglu_forward_f32(float* out, const float* gate, const float* up, long n);
void swiglu_backward_f32(float* dgate, float* dup, const float* dout, const float* gate, const float* up, long n);
void cross_entropy_forward_f32(float* nll, float* lse, const float* logits, const int64_t* targets, int N, int V);
void cross_entropy_backward_f32(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                                const float* weight, int N, int V);
void dropout_f32(float* out, const float* x, const float* mask, long n);
void residual_add_f32(float* a, const float* x, long n);
void adamw_update_f32(float* p, const float* g, float* m, float* v, long n, double lr, double beta1, double beta2,
                      double bias_correction1, double bias_correction2_sqrt, double eps, double decay);
void q8_0_linear_forward_f32(float* out, const float* x, const uint8_t* blocks, const float* b, int N, int C, int OC);

const char* minigpt_init(const char* microkernel);
void minigpt_set_threads(int n);
int minigpt_get_threads(void);
long minigpt_set_pack_a_min_step(long bytes);
double minigpt_microkernel_seconds(long repeats);
