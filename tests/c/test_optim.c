/* test_optim.c: SGD, Adam and AdamW steps against plain scalar loops (contiguous, on a
   strided slice of a larger weight, on a large tensor split between threads), against
   PyTorch 1.13 (tests/ref/optim_*.bin from tests/torch/gen_optim.py), and their errors. */
#include "check.h"
#include <criterion/criterion.h>
#include <stdlib.h>

enum { MAXN = 4096 };

/* ---- scalar references in double precision, over elements in row-major order ---- */

typedef struct {
    double p[MAXN], b[MAXN], m[MAXN], v[MAXN];
    int64_t n;
} ref_state;

static void ref_load(ref_state *s, const nad_tensor *param)
{
    s->n = nad_tensor_numel(param);
    cr_assert(s->n <= MAXN);
    for (int64_t i = 0; i < s->n; i++) {
        s->p[i] = *tc_at(param, i);
        s->b[i] = s->m[i] = s->v[i] = 0;
    }
}

static void ref_sgd(ref_state *s, const nad_sgd_params *q, int first, const nad_tensor *grad)
{
    for (int64_t i = 0; i < s->n; i++) {
        double d = *tc_at(grad, i) + (double)q->weight_decay * s->p[i];
        if (q->momentum != 0) {
            s->b[i] = first ? d : q->momentum * s->b[i] + (1.0 - q->dampening) * d;
            d = q->nesterov ? d + q->momentum * s->b[i] : s->b[i];
        }
        s->p[i] -= q->lr * d;
    }
}

static void ref_adam(ref_state *s, const nad_adam_params *q, const nad_tensor *grad)
{
    double bc1 = 1 - pow(q->beta1, (double)q->step), bc2 = 1 - pow(q->beta2, (double)q->step);
    for (int64_t i = 0; i < s->n; i++) {
        double g = *tc_at(grad, i);
        if (q->decoupled) s->p[i] *= 1 - (double)q->lr * q->weight_decay;
        else g += q->weight_decay * s->p[i];
        s->m[i] = q->beta1 * s->m[i] + (1 - q->beta1) * g;
        s->v[i] = q->beta2 * s->v[i] + (1 - q->beta2) * g * g;
        s->p[i] -= q->lr / bc1 * s->m[i] / (sqrt(s->v[i]) / sqrt(bc2) + q->eps);
    }
}

static void expect_close(const nad_tensor *t, const double *want, const char *what, int step)
{
    for (int64_t i = 0; i < nad_tensor_numel(t); i++) {
        double got = *tc_at(t, i);
        cr_assert(fabs(got - want[i]) <= 1e-5 * fabs(want[i]) + 1e-6,
                  "%s, step %d, element %lld: %.8g, expected %.8g", what, step, (long long)i, got,
                  want[i]);
    }
}

/* ---- contiguous tensors, several steps ---- */

static void check_sgd(nad_sgd_params q, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_tensor *p = tc_rand(&rng, TC_SIZES(3, 4, 5)), *b = tc_zeros(TC_SIZES(3, 4, 5));
    ref_state *s = calloc(1, sizeof *s);
    ref_load(s, p);
    for (int step = 1; step <= 4; step++) {
        nad_tensor *g = tc_rand(&rng, TC_SIZES(3, 4, 5));
        ref_sgd(s, &q, step == 1, g);
        cr_assert_eq(nad_sgd_step(&q, step == 1, g, p, b), 0, "%s", nad_last_error());
        expect_close(p, s->p, "sgd param", step);
        if (q.momentum != 0) expect_close(b, s->b, "sgd momentum_buf", step);
        nad_tensor_free(g);
    }
    free(s);
    nad_tensor_free(p);
    nad_tensor_free(b);
}

Test(optim, sgd_plain_matches_loop)
{
    check_sgd((nad_sgd_params){.lr = 0.1f, .weight_decay = 0.01f}, 1);
}

Test(optim, sgd_momentum_dampening_matches_loop)
{
    check_sgd((nad_sgd_params){.lr = 0.05f, .momentum = 0.9f, .dampening = 0.2f,
                               .weight_decay = 0.001f}, 2);
}

Test(optim, sgd_nesterov_matches_loop)
{
    check_sgd((nad_sgd_params){.lr = 0.05f, .momentum = 0.8f, .weight_decay = 0.01f,
                               .nesterov = 1}, 3);
}

static void check_adam(int decoupled, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_tensor *p = tc_rand(&rng, TC_SIZES(4, 7)), *m = tc_zeros(TC_SIZES(4, 7));
    nad_tensor *v = tc_zeros(TC_SIZES(4, 7));
    ref_state *s = calloc(1, sizeof *s);
    ref_load(s, p);
    nad_adam_params q = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f,
                         .weight_decay = decoupled ? 0.05f : 0.01f, .decoupled = decoupled};
    for (int step = 1; step <= 5; step++) {
        nad_tensor *g = tc_rand(&rng, TC_SIZES(4, 7));
        q.step = step;
        q.lr = 0.01f * (float)step; /* a schedule changes lr between steps */
        ref_adam(s, &q, g);
        cr_assert_eq(nad_adam_step(&q, g, p, m, v), 0, "%s", nad_last_error());
        expect_close(p, s->p, "adam param", step);
        expect_close(m, s->m, "adam exp_avg", step);
        expect_close(v, s->v, "adam exp_avg_sq", step);
        nad_tensor_free(g);
    }
    free(s);
    nad_tensor_free(p);
    nad_tensor_free(m);
    nad_tensor_free(v);
}

Test(optim, adam_matches_loop) { check_adam(0, 4); }
Test(optim, adamw_matches_loop) { check_adam(1, 5); }

/* ---- a leading slice W[:4,:5] of a [6,7] weight: only the slice moves ---- */

/* Copies of every element of t (row-major), to check later that some stayed untouched. */
static float *snapshot(const nad_tensor *t)
{
    int64_t n = nad_tensor_numel(t);
    float *c = malloc((size_t)n * sizeof *c);
    for (int64_t i = 0; i < n; i++) c[i] = *tc_at(t, i);
    return c;
}

/* Elements of full [6,7] outside [:4,:5] equal their snapshot. */
static void expect_outside_untouched(const nad_tensor *full, const float *snap, const char *what)
{
    for (int64_t r = 0; r < 6; r++)
        for (int64_t c = 0; c < 7; c++)
            if (r >= 4 || c >= 5)
                cr_assert_eq(*tc_at(full, r * 7 + c), snap[r * 7 + c],
                             "%s: element (%lld,%lld) outside the slice changed", what,
                             (long long)r, (long long)c);
}

static nad_tensor *slice45(const nad_tensor *full)
{
    nad_tensor *a = nad_tensor_narrow(full, 0, 0, 4);
    nad_tensor *b = nad_tensor_narrow(a, 1, 0, 5);
    nad_tensor_free(a);
    return b;
}

Test(optim, sgd_on_slice_leaves_the_rest)
{
    nad_rng rng;
    nad_rng_init(&rng, 6);
    nad_tensor *P = tc_rand(&rng, TC_SIZES(6, 7)), *B = tc_rand(&rng, TC_SIZES(6, 7));
    nad_tensor *G = tc_rand(&rng, TC_SIZES(6, 7));
    float *ps = snapshot(P), *bs = snapshot(B);
    nad_tensor *p = slice45(P), *b = slice45(B), *g = slice45(G);
    cr_assert(!nad_tensor_is_contiguous(p));
    nad_sgd_params q = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .nesterov = 1};
    ref_state *s = calloc(1, sizeof *s);
    ref_load(s, p);
    for (int step = 1; step <= 3; step++) {
        ref_sgd(s, &q, step == 1, g);
        cr_assert_eq(nad_sgd_step(&q, step == 1, g, p, b), 0, "%s", nad_last_error());
        expect_close(p, s->p, "sgd slice param", step);
        expect_close(b, s->b, "sgd slice momentum_buf", step);
    }
    expect_outside_untouched(P, ps, "param");
    expect_outside_untouched(B, bs, "momentum_buf");
    free(s), free(ps), free(bs);
    nad_tensor_free(p), nad_tensor_free(b), nad_tensor_free(g);
    nad_tensor_free(P), nad_tensor_free(B), nad_tensor_free(G);
}

Test(optim, adamw_on_slice_leaves_the_rest)
{
    nad_rng rng;
    nad_rng_init(&rng, 7);
    nad_tensor *P = tc_rand(&rng, TC_SIZES(6, 7)), *G = tc_rand(&rng, TC_SIZES(6, 7));
    nad_tensor *M = tc_zeros(TC_SIZES(6, 7)), *V = tc_zeros(TC_SIZES(6, 7));
    nad_tensor_fill(M, 0.25f); /* outside values that a stray write would change */
    nad_tensor_fill(V, 0.5f);
    nad_tensor *p = slice45(P), *g = slice45(G), *m = slice45(M), *v = slice45(V);
    nad_tensor_fill(m, 0);
    nad_tensor_fill(v, 0);
    float *ps = snapshot(P), *ms = snapshot(M), *vs = snapshot(V), *gs = snapshot(G);
    nad_adam_params q = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                         .weight_decay = 0.05f, .decoupled = 1};
    ref_state *s = calloc(1, sizeof *s);
    ref_load(s, p);
    for (int step = 1; step <= 4; step++) {
        q.step = step;
        ref_adam(s, &q, g);
        cr_assert_eq(nad_adam_step(&q, g, p, m, v), 0, "%s", nad_last_error());
        expect_close(p, s->p, "adamw slice param", step);
        expect_close(m, s->m, "adamw slice exp_avg", step);
    }
    expect_outside_untouched(P, ps, "param");
    expect_outside_untouched(M, ms, "exp_avg");
    expect_outside_untouched(V, vs, "exp_avg_sq");
    for (int64_t i = 0; i < 42; i++) cr_assert_eq(*tc_at(G, i), gs[i], "grad changed");
    free(s), free(ps), free(ms), free(vs), free(gs);
    nad_tensor_free(p), nad_tensor_free(g), nad_tensor_free(m), nad_tensor_free(v);
    nad_tensor_free(P), nad_tensor_free(G), nad_tensor_free(M), nad_tensor_free(V);
}

/* Views without a unit-stride last dim (a transposed slice) and a contiguous grad. */
Test(optim, adam_on_transposed_views)
{
    nad_rng rng;
    nad_rng_init(&rng, 8);
    nad_tensor *P = tc_rand(&rng, TC_SIZES(6, 7)), *M = tc_zeros(TC_SIZES(6, 7));
    nad_tensor *V = tc_zeros(TC_SIZES(6, 7));
    int32_t perm[2] = {1, 0};
    nad_tensor *ps = slice45(P), *ms = slice45(M), *vs = slice45(V);
    nad_tensor *p = nad_tensor_permute(ps, perm), *m = nad_tensor_permute(ms, perm);
    nad_tensor *v = nad_tensor_permute(vs, perm);
    nad_tensor *g = tc_rand(&rng, TC_SIZES(5, 4));
    nad_adam_params q = {.lr = 0.02f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f,
                         .weight_decay = 0.1f, .decoupled = 0};
    ref_state *s = calloc(1, sizeof *s);
    ref_load(s, p);
    for (int step = 1; step <= 3; step++) {
        q.step = step;
        ref_adam(s, &q, g);
        cr_assert_eq(nad_adam_step(&q, g, p, m, v), 0, "%s", nad_last_error());
        expect_close(p, s->p, "adam transposed param", step);
        expect_close(v, s->v, "adam transposed exp_avg_sq", step);
    }
    free(s);
    nad_tensor_free(p), nad_tensor_free(m), nad_tensor_free(v), nad_tensor_free(g);
    nad_tensor_free(ps), nad_tensor_free(ms), nad_tensor_free(vs);
    nad_tensor_free(P), nad_tensor_free(M), nad_tensor_free(V);
}

/* ---- large tensors: the threaded path, bit-identical for 1 and 2 threads ---- */

static void large_run(int threads, int sliced, nad_tensor **out_p, nad_tensor **out_b)
{
    nad_rng rng;
    nad_rng_init(&rng, 9);
    nad_set_num_threads(threads);
    nad_tensor *P = tc_rand(&rng, TC_SIZES(300, 260)), *G = tc_rand(&rng, TC_SIZES(300, 260));
    nad_tensor *M = tc_zeros(TC_SIZES(300, 260)), *V = tc_zeros(TC_SIZES(300, 260));
    nad_tensor *B = tc_zeros(TC_SIZES(300, 260));
    nad_tensor *p = P, *g = G, *m = M, *v = V, *b = B;
    if (sliced) {
        nad_tensor *t[5] = {P, G, M, V, B}, **o[5] = {&p, &g, &m, &v, &b};
        for (int i = 0; i < 5; i++) {
            nad_tensor *a = nad_tensor_narrow(t[i], 0, 0, 290);
            *o[i] = nad_tensor_narrow(a, 1, 0, 250);
            nad_tensor_free(a);
        }
    }
    nad_adam_params q = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                         .weight_decay = 0.05f, .decoupled = 1};
    nad_sgd_params sq = {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f};
    for (int step = 1; step <= 2; step++) {
        q.step = step;
        cr_assert_eq(nad_adam_step(&q, g, p, m, v), 0, "%s", nad_last_error());
        cr_assert_eq(nad_sgd_step(&sq, step == 1, g, p, b), 0, "%s", nad_last_error());
    }
    if (sliced) nad_tensor_free(p), nad_tensor_free(g), nad_tensor_free(m), nad_tensor_free(v),
                nad_tensor_free(b);
    nad_tensor_free(G), nad_tensor_free(M), nad_tensor_free(V);
    *out_p = P;
    *out_b = B;
    nad_set_num_threads(1);
}

static void check_large(int sliced)
{
    nad_tensor *p1, *b1, *p2, *b2;
    large_run(1, sliced, &p1, &b1);
    large_run(2, sliced, &p2, &b2);
    int64_t n = nad_tensor_numel(p1);
    cr_assert(memcmp(nad_tensor_data(p1), nad_tensor_data(p2), (size_t)n * sizeof(float)) == 0,
              "param differs between 1 and 2 threads");
    cr_assert(memcmp(nad_tensor_data(b1), nad_tensor_data(b2), (size_t)n * sizeof(float)) == 0,
              "momentum_buf differs between 1 and 2 threads");
    /* and the values are the scalar loop's, spot-checked on a few elements */
    nad_rng rng;
    nad_rng_init(&rng, 9);
    nad_tensor *P = tc_rand(&rng, TC_SIZES(300, 260)), *G = tc_rand(&rng, TC_SIZES(300, 260));
    int64_t idx[4] = {0, 259 * 1 + 100, 289 * 260 + 249, 299 * 260 + 259};
    for (int k = 0; k < 4; k++) {
        int64_t i = idx[k], r = i / 260, c = i % 260;
        int inside = !sliced || (r < 290 && c < 250);
        double p = *tc_at(P, i), g = *tc_at(G, i), m = 0, v = 0, b = 0;
        for (int step = 1; step <= 2 && inside; step++) {
            p *= 1 - 0.01 * 0.05;
            m = 0.9 * m + 0.1 * g;
            v = 0.999 * v + 0.001 * g * g;
            p -= 0.01 / (1 - pow(0.9, step)) * m / (sqrt(v) / sqrt(1 - pow(0.999, step)) + 1e-8);
            double d = g + 0.01 * p;
            b = step == 1 ? d : 0.9 * b + d;
            p -= 0.1 * b;
        }
        cr_assert(fabs(*tc_at(p1, i) - p) <= 1e-5 * fabs(p) + 1e-6, "element %lld: %g vs %g",
                  (long long)i, *tc_at(p1, i), p);
    }
    nad_tensor_free(P), nad_tensor_free(G);
    nad_tensor_free(p1), nad_tensor_free(b1), nad_tensor_free(p2), nad_tensor_free(b2);
}

Test(optim, large_contiguous_is_thread_count_independent) { check_large(0); }
Test(optim, large_slice_is_thread_count_independent) { check_large(1); }

/* ---- PyTorch 1.13 references ---- */

static void replay_torch(const char *name, int kind /* 0 sgd, 1 adam, 2 adamw */)
{
    nad_tensor *r[16] = {0};
    int n = tc_load_ref(name, r, 16);
    cr_assert_eq(n, 12, "%s: %d records, expected 12 (run tests/torch/gen_optim.py)", name, n);
    const float *h = nad_tensor_data(r[0]);
    nad_tensor *p = nad_tensor_new(2, (int64_t[]){3, 5}), *b = nad_tensor_new(2, (int64_t[]){3, 5});
    nad_tensor *m = nad_tensor_new(2, (int64_t[]){3, 5});
    nad_tensor_copy(p, r[1]);
    nad_sgd_params sq = {.lr = h[0], .momentum = h[1], .dampening = h[2], .weight_decay = h[3],
                         .nesterov = h[4] != 0};
    nad_adam_params aq = {.lr = h[0], .beta1 = h[1], .beta2 = h[2], .weight_decay = h[3],
                          .eps = h[4], .decoupled = kind == 2};
    for (int step = 1; step <= 5; step++) {
        const nad_tensor *g = r[1 + step];
        aq.step = step;
        int rc = kind == 0 ? nad_sgd_step(&sq, step == 1, g, p, b) : nad_adam_step(&aq, g, p, m, b);
        cr_assert_eq(rc, 0, "%s", nad_last_error());
        cr_assert(tc_close(p, r[6 + step], 1e-5, 1e-7), "%s: step %d differs from PyTorch", name,
                  step);
    }
    for (int i = 0; i < n; i++) nad_tensor_free(r[i]);
    nad_tensor_free(p), nad_tensor_free(b), nad_tensor_free(m);
}

Test(optim, sgd_momentum_matches_torch) { replay_torch("optim_sgd_momentum", 0); }
Test(optim, sgd_nesterov_matches_torch) { replay_torch("optim_sgd_nesterov", 0); }
Test(optim, adam_matches_torch) { replay_torch("optim_adam", 1); }
Test(optim, adamw_matches_torch) { replay_torch("optim_adamw", 2); }

/* ---- errors: exact messages, and nothing written on failure ---- */

Test(optim, errors_name_the_problem)
{
    nad_rng rng;
    nad_rng_init(&rng, 10);
    nad_tensor *p = tc_rand(&rng, TC_SIZES(3, 4)), *g = tc_rand(&rng, TC_SIZES(4, 3));
    nad_tensor *ok = tc_rand(&rng, TC_SIZES(3, 4)), *m = tc_zeros(TC_SIZES(3, 4));
    nad_tensor *short_v = tc_zeros(TC_SIZES(3, 3));
    float *keep = snapshot(p);

    nad_sgd_params sq = {.lr = 0.1f, .momentum = 0.9f};
    cr_assert_eq(nad_sgd_step(&sq, 1, g, p, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "sgd_step: grad is [4,3] but param is [3,4]");
    cr_assert_eq(nad_sgd_step(&sq, 1, ok, p, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "sgd_step: momentum_buf is NULL but momentum = 0.9");
    cr_assert_eq(nad_sgd_step(&sq, 1, ok, p, short_v), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "sgd_step: momentum_buf is [3,3] but param is [3,4]");
    sq.nesterov = 1;
    sq.dampening = 0.1f;
    cr_assert_eq(nad_sgd_step(&sq, 1, ok, p, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "sgd_step: nesterov needs momentum > 0 and dampening = 0");
    sq = (nad_sgd_params){.lr = -1};
    cr_assert_eq(nad_sgd_step(&sq, 1, ok, p, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "sgd_step: lr = -1, expected >= 0");

    nad_adam_params aq = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 1};
    cr_assert_eq(nad_adam_step(&aq, ok, p, m, short_v), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "adam_step: exp_avg_sq is [3,3] but param is [3,4]");
    cr_assert_eq(nad_adam_step(&aq, ok, p, short_v, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "adam_step: exp_avg is [3,3] but param is [3,4]");
    cr_assert_eq(nad_adam_step(&aq, NULL, p, m, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "adam_step: grad is NULL");
    aq.step = 0;
    cr_assert_eq(nad_adam_step(&aq, ok, p, m, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "adam_step: step = 0, expected >= 1 (1 on the first step)");
    aq.step = 1;
    aq.beta2 = 1.0f;
    cr_assert_eq(nad_adam_step(&aq, ok, p, m, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "adam_step: beta2 = 1, expected in [0, 1)");

    for (int64_t i = 0; i < 12; i++) cr_assert_eq(*tc_at(p, i), keep[i], "param written on failure");
    for (int64_t i = 0; i < 12; i++) cr_assert_eq(*tc_at(m, i), 0.0f, "state written on failure");
    free(keep);
    nad_tensor_free(p), nad_tensor_free(g), nad_tensor_free(ok), nad_tensor_free(m);
    nad_tensor_free(short_v);
}
