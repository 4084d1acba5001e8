/* rng.c: the counter-based random generator. Value i of a draw is splitmix64 of (seed, i), so
   fills are identical whatever the thread count and the state is just (seed, counter). */
#include "internal.h"
#include <math.h>

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline uint64_t draw(uint64_t key, uint64_t index)
{
    return mix64(key + index * 0x9e3779b97f4a7c15ULL);
}

/* 24 random bits -> [0, 1) exactly representable in float */
static inline float to_unit_float(uint64_t r) { return (float)(r >> 40) * (1.0f / 16777216.0f); }

void nad_rng_init(nad_rng *rng, uint64_t seed)
{
    rng->seed = seed;
    rng->counter = 0;
}

uint64_t nad_rng_next_u64(nad_rng *rng) { return draw(mix64(rng->seed), rng->counter++); }

double nad_rng_next_double(nad_rng *rng)
{
    return (double)(nad_rng_next_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

int nad_rng_uniform(nad_rng *rng, float lo, float hi, nad_tensor *t)
{
    int rc = nad_check_tensor("rng_uniform", "t", t);
    if (rc) return rc;
    if (!(hi >= lo)) return nad_fail(NAD_EINVAL, "rng_uniform: hi %g < lo %g", hi, lo);
    nad_rowiter it;
    nad_rowiter_init(&it, t);
    float *d = nad_data(t);
    const uint64_t key = mix64(rng->seed), base = rng->counter;
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < it.rows; r++) {
        float *dr = d + nad_rowiter_offset(&it, r);
        for (int64_t j = 0; j < it.len; j++)
            dr[j * it.inner] = lo + (hi - lo) * to_unit_float(draw(key, base + r * it.len + j));
    }
    rng->counter += (uint64_t)(it.rows * it.len);
    return 0;
}

int nad_rng_normal(nad_rng *rng, float mean, float std, nad_tensor *t)
{
    int rc = nad_check_tensor("rng_normal", "t", t);
    if (rc) return rc;
    nad_rowiter it;
    nad_rowiter_init(&it, t);
    float *d = nad_data(t);
    const uint64_t key = mix64(rng->seed), base = rng->counter;
    /* Box-Muller on the pair of draws (2i, 2i+1) of element i */
    #pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < it.rows; r++) {
        float *dr = d + nad_rowiter_offset(&it, r);
        for (int64_t j = 0; j < it.len; j++) {
            uint64_t i = (uint64_t)(r * it.len + j);
            double u1 = ((double)(draw(key, base + 2 * i) >> 11) + 1.0) / 9007199254740993.0;
            double u2 = (double)(draw(key, base + 2 * i + 1) >> 11) / 9007199254740992.0;
            double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
            dr[j * it.inner] = mean + std * (float)z;
        }
    }
    rng->counter += 2 * (uint64_t)(it.rows * it.len);
    return 0;
}
