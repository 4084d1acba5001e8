/* vecmath.h: exp and erf written so that loops over them vectorise (no libm calls, no
   branches): the softmax, the losses and GELU spend most of their time here. Accuracy: a few
   ulp for exp over its range (clamped below at e^-87), 4e-7 absolute for erf. */
#ifndef AUTONAD_VECMATH_H
#define AUTONAD_VECMATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite), e^r by a degree-6 polynomial, 2^n by
   building the float's exponent bits. Inputs below -87 give e^-87 (not 0): callers use it on
   x - max, where the difference is far below a float's resolution of the sum.
   Written for GCC's vectoriser, which gives up on a loop with any branch left in it: a float
   select for the clamp gets threaded into a branch (its clamped side folds to a constant, the
   other side's float ops "could trap" and cannot be if-converted), and so does a float-to-int
   conversion after it; hence the clamp as an integer select and the rounding by adding
   1.5 * 2^23, which leaves round(x / ln2) in the sum's low mantissa bits. */
static inline float nad_expf(float x)
{
    int32_t xb, mlo = -(int32_t)(x < -87.0f), mhi = -(int32_t)(x > 88.0f);
    memcpy(&xb, &x, sizeof xb);
    xb = (xb & ~(mlo | mhi)) | ((int32_t)0xC2AE0000 & mlo) | (0x42B00000 & mhi); /* -87, 88 */
    memcpy(&x, &xb, sizeof x);
    float t = x * 1.44269504088896341f + 12582912.0f;
    int32_t tb;
    memcpy(&tb, &t, sizeof tb);
    int32_t n = tb - 0x4B400000; /* the bits of 1.5 * 2^23 */
    float fn = t - 12582912.0f;
    float r = x - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666567e-2f +
              r * (8.33338592e-3f + r * 1.38865842e-3f)))));
    int32_t bits = (n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* erf(x) as x P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf is 1 in float beyond), the
   rational minimax form Eigen and TensorFlow use: one division and no exp (Abramowitz & Stegun
   7.1.26, used before, needs both and is 1.5x slower in GELU). |error| <= 4e-7 over the
   line, relative error <= 2.3e-7 below 0.5. The clamp is a pair of integer selects on the
   bits for the same reason as nad_expf's. */
static inline float nad_erff(float x)
{
    int32_t xb, mlo = -(int32_t)(x < -4.0f), mhi = -(int32_t)(x > 4.0f);
    memcpy(&xb, &x, sizeof xb);
    xb = (xb & ~(mlo | mhi)) | ((int32_t)0xC0800000 & mlo) | (0x40800000 & mhi); /* -4, 4 */
    memcpy(&x, &xb, sizeof x);
    float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 - 2.10102402082508e-06f;
    p = p * x2 - 5.69250639462346e-05f;
    p = p * x2 - 7.34990630326855e-04f;
    p = p * x2 - 2.95459980854025e-03f;
    p = p * x2 - 1.60960333262415e-02f;
    float q = -1.45660718464996e-05f;
    q = q * x2 - 2.13374055278905e-04f;
    q = q * x2 - 1.68282697438203e-03f;
    q = q * x2 - 7.37332916720468e-03f;
    q = q * x2 - 1.42647390514189e-02f;
    return x * p / q;
}

#endif
