/* exp and the logistic function as plain arithmetic, which the compiler turns into vector instructions inside the
 * kernels' loops (the C library's expf is a call, one element at a time). The same algorithm as the numba backend's
 * (minigpt/backends/numba/__init__.py): exp(x) = 2^n exp(r), n the integer nearest x / ln 2, |r| <= ln 2 / 2,
 * exp(r) a polynomial, 2^n written into the exponent bits of a float (2^n = 2^(n-1) * 2 for the largest n).
 * Results below the smallest normal number are flushed to 0; NaN stays NaN. Within 2 ulp (tests/test_backends.py). */

#include <stdint.h>

/* exp(r) for the reduced argument, |r| <= ln 2 / 2, as a polynomial: the part exp and sigmoid below share. */
static inline float exp_reduced_f32(float r) {
    float p = 1.9875691500e-4f;  /* Cephes' expf polynomial */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    return (p * r) * r + r + 1.0f;
}

static inline double exp_reduced_f64(double r) {
    double p = 1.0 / 6227020800.0;  /* Taylor to r^13 / 13!: the next term is below 1e-17 for |r| <= ln 2 / 2 */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    return (p * r) * r + r + 1.0;
}

static inline float exp_f32(float x) {
    float xc = x < -87.33654f ? -87.33654f : (x > 88.72283f ? 88.72283f : x);  /* ln of the smallest normal, largest float */
    float t = xc * 1.4426950408889634f + 12582912.0f;  /* adding 1.5 * 2^23 rounds x / ln 2 to n */
    float n = t - 12582912.0f;
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;  /* x - n ln 2, ln 2 in two parts */
    float p = exp_reduced_f32(r);
    int32_t t_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    int32_t n_int = t_bits - 0x4B400000;  /* n, from the low bits of t */
    int32_t top = n_int > 127;
    int32_t bits = (n_int - top + 127) << 23;  /* the bits of the float 2^n (or 2^(n-1)) */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    float result = p * two_n * (top ? 2.0f : 1.0f);
    return x < -87.33654f ? 0.0f : (x > 88.72283f ? INFINITY : result);
}

static inline double exp_f64(double x) {
    double xc = x < -708.3964185322641 ? -708.3964185322641 : (x > 709.782712893384 ? 709.782712893384 : x);
    double t = xc * 1.4426950408889634 + 6755399441055744.0;  /* adding 1.5 * 2^52 rounds x / ln 2 to n */
    double n = t - 6755399441055744.0;
    double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = exp_reduced_f64(r);
    int64_t t_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    int64_t n_int = t_bits - 0x4338000000000000LL;
    int64_t top = n_int > 1023;
    int64_t bits = (n_int - top + 1023) << 52;
    double two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    double result = p * two_n * (top ? 2.0 : 1.0);
    return x < -708.3964185322641 ? 0.0 : (x > 709.782712893384 ? INFINITY : result);
}

/* The logistic function, 1 / (1 + exp(-z)): exp's accuracy. Beyond z = +-40 (+-80 in double) it is 1 to the last bit,
 * or taken as 0 (exp(-40) is 4e-18, and 2e-35 in double: less than an ulp of any x GELU multiplies it by, where the
 * reference's 1 + tanh(u) is exactly 0 too); so exp runs on the clamped z without checks of its own for overflow or
 * underflow, a third fewer instructions (kernels/gelu.c). NaN stays NaN. */
static inline float sigmoid_f32(float z) {
    float xc = z < -40.0f ? 40.0f : (z > 40.0f ? -40.0f : -z);  /* -z, clamped */
    float t = xc * 1.4426950408889634f + 12582912.0f;
    float n = t - 12582912.0f;
    float r = (xc - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = exp_reduced_f32(r);
    int32_t t_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    int32_t bits = (t_bits - 0x4B400000 + 127) << 23;  /* 2^n, n within [-58, 58] */
    float two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return z < -40.0f ? 0.0f : 1.0f / (p * two_n + 1.0f);
}

static inline double sigmoid_f64(double z) {
    double xc = z < -80.0 ? 80.0 : (z > 80.0 ? -80.0 : -z);
    double t = xc * 1.4426950408889634 + 6755399441055744.0;
    double n = t - 6755399441055744.0;
    double r = (xc - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
    double p = exp_reduced_f64(r);
    int64_t t_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    int64_t bits = (t_bits - 0x4338000000000000LL + 1023) << 52;  /* 2^n, n within [-116, 116] */
    double two_n;
    memcpy(&two_n, &bits, sizeof two_n);
    return z < -80.0 ? 0.0 : 1.0 / (p * two_n + 1.0);
}
