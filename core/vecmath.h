/* vecmath.h: exp and erf written so that loops over them vectorise (no libm calls, no
   branches): the softmax, the losses and GELU spend most of their time here. Accuracy: a few
   ulp for exp over its range (clamped below at e^-87), about 1.5e-7 absolute for erf. */
#ifndef AUTONAD_VECMATH_H
#define AUTONAD_VECMATH_H
#include <stdint.h>
#include <string.h>

/* e^x: x = n ln2 + r with |r| <= ln2/2 (Cody-Waite), e^r by a degree-6 polynomial, 2^n by
   building the float's exponent bits. Inputs below -87 give e^-87 (not 0): callers use it on
   x - max, where the difference is far below a float's resolution of the sum. */
static inline float nad_expf(float x)
{
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float t = x * 1.44269504088896341f;
    int32_t n = (int32_t)(t + (t >= 0 ? 0.5f : -0.5f));
    float fn = (float)n;
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
    float ax = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = 1.0f - t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
              t * (-1.453152027f + t * 1.061405429f)))) * nad_expf(-ax * ax);
    return x < 0 ? -y : y;
}

#endif
