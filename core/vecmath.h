/* vecmath.h: exp and erf written so that loops over them vectorise (no libm calls, no
   branches): the softmax, the losses and GELU spend most of their time here. Accuracy: a few
   ulp for exp over its range (clamped below at e^-87), about 1.5e-7 absolute for erf. */
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

/* erf(x), Abramowitz & Stegun 7.1.26 with the sign restored: |error| <= 1.5e-7. */
static inline float nad_erff(float x)
{
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.0f - t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
              t * (-1.453152027f + t * 1.061405429f)))) * nad_expf(-ax * ax);
    return copysignf(y, x);
}

#endif
