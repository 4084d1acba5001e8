/* test_layernorm.c: layer norm against a plain loop with gamma, beta (and their gradients)
   leading slices of longer vectors, the backward against finite differences, errors. */
#include "check.h"
#include "internal.h" /* only to build a 1-D view with a non-unit stride */
#include <criterion/criterion.h>

/* A 1-D view of every second element of a new [2n] tensor, filled uniform in [-1, 1). */
static nad_tensor *strided_vec(nad_rng *rng, int64_t n)
{
    nad_tensor *t = tc_rand(rng, TC_SIZES(2 * n));
    t->size[0] = n;
    t->stride[0] = 2;
    return t;
}

static void ref_layernorm(float eps, const nad_tensor *x, const nad_tensor *g,
                          const nad_tensor *b, nad_tensor *y, nad_tensor *mean, nad_tensor *rstd)
{
    int64_t c = nad_tensor_size(g, 0), rows = nad_tensor_numel(x) / c;
    for (int64_t r = 0; r < rows; r++) {
        double m = 0, v = 0;
        for (int64_t j = 0; j < c; j++) m += *tc_at(x, r * c + j);
        m /= c;
        for (int64_t j = 0; j < c; j++) v += pow(*tc_at(x, r * c + j) - m, 2);
        double s = 1 / sqrt(v / c + eps);
        for (int64_t j = 0; j < c; j++)
            *tc_at(y, r * c + j) = (float)((*tc_at(x, r * c + j) - m) * s * *tc_at(g, j) +
                                           *tc_at(b, j));
        *tc_at(mean, r) = (float)m;
        *tc_at(rstd, r) = (float)s;
    }
}

Test(layernorm, forward_matches_loop_with_sliced_and_strided_params)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 3, 6)), *G = tc_rand(&rng, TC_SIZES(10));
    nad_tensor *B = tc_rand(&rng, TC_SIZES(10));
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) *tc_at(x, i) = *tc_at(x, i) * 2 + 3;
    nad_tensor *g = nad_tensor_narrow(G, 0, 0, 6), *b = nad_tensor_narrow(B, 0, 0, 6);
    nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty();
    nad_tensor *want = tc_zeros(TC_SIZES(2, 3, 6)), *wm = tc_zeros(TC_SIZES(6));
    nad_tensor *wr = tc_zeros(TC_SIZES(6));
    cr_assert_eq(nad_layernorm_forward(1e-5f, x, g, b, y, mean, rstd), 0, "%s", nad_last_error());
    ref_layernorm(1e-5f, x, g, b, want, wm, wr);
    cr_assert_eq(nad_tensor_ndim(mean), 1);
    cr_assert_eq(nad_tensor_size(mean, 0), 6);
    cr_assert(tc_close(y, want, 1e-5, 1e-5));
    cr_assert(tc_close(mean, wm, 1e-6, 1e-6));
    cr_assert(tc_close(rstd, wr, 1e-5, 1e-6));

    nad_tensor *gs = strided_vec(&rng, 6), *bs = strided_vec(&rng, 6);
    cr_assert_eq(nad_layernorm_forward(1e-5f, x, gs, bs, y, mean, rstd), 0, "%s",
                 nad_last_error());
    ref_layernorm(1e-5f, x, gs, bs, want, wm, wr);
    cr_assert(tc_close(y, want, 1e-5, 1e-5));
    nad_tensor *all[] = {x, G, B, g, b, y, mean, rstd, want, wm, wr, gs, bs};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

typedef struct {
    nad_tensor *x, *g, *b, *y, *mean, *rstd, *r;
} ln_ctx;

static double ln_loss(void *p)
{
    ln_ctx *c = p;
    nad_layernorm_forward(1e-5f, c->x, c->g, c->b, c->y, c->mean, c->rstd);
    return tc_dot(c->y, c->r);
}

Test(layernorm, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_tensor *G = tc_rand(&rng, TC_SIZES(9)), *B = tc_rand(&rng, TC_SIZES(9));
    ln_ctx c = {tc_rand(&rng, TC_SIZES(2, 2, 5)), nad_tensor_narrow(G, 0, 0, 5),
                nad_tensor_narrow(B, 0, 0, 5), tc_empty(), tc_empty(), tc_empty(),
                tc_rand(&rng, TC_SIZES(2, 2, 5))};
    nad_tensor *dG = tc_zeros(TC_SIZES(9)), *dB = tc_zeros(TC_SIZES(9)), *dx = tc_empty();
    nad_tensor *dg = nad_tensor_narrow(dG, 0, 0, 5), *db = nad_tensor_narrow(dB, 0, 0, 5);
    ln_loss(&c);
    cr_assert_eq(nad_layernorm_backward(c.x, c.g, c.mean, c.rstd, c.r, dx, dg, db), 0, "%s",
                 nad_last_error());
    cr_assert(tc_gradcheck(ln_loss, &c, c.x, dx, 1e-2, 1e-2, 1e-3));
    cr_assert(tc_gradcheck(ln_loss, &c, c.g, dg, 1e-2, 1e-2, 1e-3));
    cr_assert(tc_gradcheck(ln_loss, &c, c.b, db, 1e-2, 1e-2, 1e-3));
    cr_assert_float_eq(nad_tensor_sum(dG), nad_tensor_sum(dg), 1e-6); /* rest untouched */

    /* accumulation, and dx in place of dy */
    ln_loss(&c);
    double before = nad_tensor_sum(dg);
    nad_tensor *g2 = tc_zeros(TC_SIZES(2, 2, 5));
    nad_tensor_copy(g2, c.r);
    cr_assert_eq(nad_layernorm_backward(c.x, c.g, c.mean, c.rstd, g2, g2, dg, NULL), 0, "%s",
                 nad_last_error());
    cr_assert_float_eq(nad_tensor_sum(dg), 2 * before, 1e-5);
    cr_assert(tc_close(g2, dx, 1e-6, 1e-7));
    nad_tensor *all[] = {G, B, c.x, c.g, c.b, c.y, c.mean, c.rstd, c.r, dG, dB, dx, dg, db, g2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* The kernels sum rows in 8-float lanes with a scalar tail: widths below, at and past a
   lane multiple, contiguous and strided gamma; forward and backward against double loops. */
Test(layernorm, widths_across_the_lanes_match_double_loops)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    const int64_t widths[] = { 5, 8, 13, 32, 40, 64 }, rows = 7;
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
        for (int strided = 0; strided < 2; strided++) {
            int64_t c = widths[w];
            nad_tensor *x = tc_rand(&rng, TC_SIZES(rows, c)), *dy = tc_rand(&rng, TC_SIZES(rows, c));
            for (int64_t i = 0; i < rows * c; i++) *tc_at(x, i) = *tc_at(x, i) * 2 + 3;
            nad_tensor *g = strided ? strided_vec(&rng, c) : tc_rand(&rng, TC_SIZES(c));
            nad_tensor *b = strided ? strided_vec(&rng, c) : tc_rand(&rng, TC_SIZES(c));
            nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty(), *dx = tc_empty();
            nad_tensor *want = tc_zeros(TC_SIZES(rows, c)), *wm = tc_zeros(TC_SIZES(rows));
            nad_tensor *wr = tc_zeros(TC_SIZES(rows)), *dg = tc_zeros(TC_SIZES(c));
            nad_tensor *db = tc_zeros(TC_SIZES(c));
            cr_assert_eq(nad_layernorm_forward(1e-5f, x, g, b, y, mean, rstd), 0, "%s", nad_last_error());
            ref_layernorm(1e-5f, x, g, b, want, wm, wr);
            cr_assert(tc_close(y, want, 1e-5, 1e-5), "c %lld strided %d", (long long)c, strided);
            cr_assert(tc_close(rstd, wr, 1e-5, 1e-6));
            cr_assert_eq(nad_layernorm_backward(x, g, mean, rstd, dy, dx, dg, db), 0, "%s",
                         nad_last_error());
            for (int64_t r = 0; r < rows; r++) {
                double m = *tc_at(wm, r), s = *tc_at(wr, r), k1 = 0, k2 = 0;
                for (int64_t j = 0; j < c; j++) {
                    double gg = *tc_at(dy, r * c + j) * *tc_at(g, j);
                    k1 += gg / c;
                    k2 += gg * (*tc_at(x, r * c + j) - m) * s / c;
                }
                for (int64_t j = 0; j < c; j++) {
                    double xh = (*tc_at(x, r * c + j) - m) * s;
                    double want_dx = s * (*tc_at(dy, r * c + j) * *tc_at(g, j) - k1 - xh * k2);
                    cr_assert_float_eq(*tc_at(dx, r * c + j), want_dx, 1e-4 + 1e-4 * fabs(want_dx),
                                       "c %lld strided %d [%lld,%lld]", (long long)c, strided,
                                       (long long)r, (long long)j);
                }
            }
            for (int64_t j = 0; j < c; j++) {
                double sg = 0, sb = 0;
                for (int64_t r = 0; r < rows; r++) {
                    sg += *tc_at(dy, r * c + j) * (*tc_at(x, r * c + j) - *tc_at(wm, r)) * *tc_at(wr, r);
                    sb += *tc_at(dy, r * c + j);
                }
                cr_assert_float_eq(*tc_at(dg, j), sg, 1e-4 + 1e-4 * fabs(sg));
                cr_assert_float_eq(*tc_at(db, j), sb, 1e-5 + 1e-5 * fabs(sb));
            }
            nad_tensor *all[] = {x, dy, g, b, y, mean, rstd, dx, want, wm, wr, dg, db};
            for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
        }
}

Test(layernorm, rejects_bad_shapes)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(4, 6)), *g = tc_rand(&rng, TC_SIZES(5));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(6)), *y = tc_empty(), *m = tc_empty();
    nad_tensor *r = tc_empty();
    cr_assert_eq(nad_layernorm_forward(1e-5f, x, g, b, y, m, r), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "layernorm_forward: gamma has 5 elements, x has 6 channels");
    cr_assert_eq(nad_tensor_size(y, 0), 0);
    nad_tensor *m3 = tc_zeros(TC_SIZES(3)), *dx = tc_empty();
    cr_assert_eq(nad_layernorm_backward(x, b, m3, m3, x, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "layernorm_backward: mean has 3 elements, x has 4 rows");
    nad_tensor *all[] = {x, g, b, y, m, r, m3, dx};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* Large enough for the OpenMP paths: 1 and 2 threads give the same bits. */
Test(layernorm, parallel_paths_do_not_depend_on_thread_count)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(300, 160)), *dy = tc_rand(&rng, TC_SIZES(300, 160));
    nad_tensor *g = tc_rand(&rng, TC_SIZES(160)), *b = tc_rand(&rng, TC_SIZES(160));
    nad_tensor *y[2], *dx[2], *dg[2], *m = tc_empty(), *r = tc_empty();
    int32_t keep = nad_get_num_threads();
    for (int t = 0; t < 2; t++) {
        nad_set_num_threads(t + 1);
        y[t] = tc_empty();
        dx[t] = tc_empty();
        dg[t] = tc_zeros(TC_SIZES(160));
        cr_assert_eq(nad_layernorm_forward(1e-6f, x, g, b, y[t], m, r), 0, "%s", nad_last_error());
        cr_assert_eq(nad_layernorm_backward(x, g, m, r, dy, dx[t], dg[t], NULL), 0, "%s",
                     nad_last_error());
    }
    nad_set_num_threads(keep);
    cr_assert(tc_close(y[0], y[1], 0, 0) && tc_close(dx[0], dx[1], 0, 0));
    cr_assert(tc_close(dg[0], dg[1], 0, 0));
    nad_tensor *want = tc_zeros(TC_SIZES(300, 160)), *wm = tc_zeros(TC_SIZES(300));
    nad_tensor *wr = tc_zeros(TC_SIZES(300));
    ref_layernorm(1e-6f, x, g, b, want, wm, wr);
    cr_assert(tc_close(y[0], want, 1e-4, 1e-5));
    /* the parameter gradients over the 10 row blocks (the last partial) against double loops,
       and alone (no dx): the same bits */
    for (int64_t j = 0; j < 160; j++) {
        double sg = 0;
        for (int64_t i = 0; i < 300; i++)
            sg += *tc_at(dy, i * 160 + j) * (*tc_at(x, i * 160 + j) - *tc_at(wm, i)) * *tc_at(wr, i);
        cr_assert_float_eq(*tc_at(dg[0], j), sg, 1e-4 + 1e-4 * fabs(sg), "channel %lld", (long long)j);
    }
    nad_tensor *dg2 = tc_zeros(TC_SIZES(160));
    cr_assert_eq(nad_layernorm_backward(x, g, m, r, dy, NULL, dg2, NULL), 0, "%s", nad_last_error());
    cr_assert(tc_close(dg2, dg[0], 0, 0));
    nad_tensor_free(dg2);
    nad_tensor *all[] = {x, dy, g, b, y[0], y[1], dx[0], dx[1], dg[0], dg[1], m, r, want, wm, wr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* backward_add: dx = r + the gradient, the bits of backward then add (r fresh, r = dx in
   place; rows across the row blocks, a channel count with a remainder); a missing or
   misshapen r is refused by name */
Test(layernorm, backward_add_is_backward_then_add)
{
    static const int64_t shapes[][2] = {{70, 35}, {3, 64}, {129, 8}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int64_t rows = shapes[i][0], c = shapes[i][1];
        nad_rng rng;
        nad_rng_init(&rng, 30 + i);
        nad_tensor *x = tc_rand(&rng, TC_SIZES(rows, c)), *g = tc_rand(&rng, TC_SIZES(c));
        nad_tensor *b = tc_rand(&rng, TC_SIZES(c)), *dy = tc_rand(&rng, TC_SIZES(rows, c));
        nad_tensor *r = tc_rand(&rng, TC_SIZES(rows, c)), *y = tc_empty(), *m = tc_empty();
        nad_tensor *s = tc_empty(), *dx = tc_empty(), *want = tc_empty(), *got = tc_empty();
        nad_tensor *dg = tc_zeros(TC_SIZES(c)), *db = tc_zeros(TC_SIZES(c));
        nad_tensor *dg2 = tc_zeros(TC_SIZES(c)), *db2 = tc_zeros(TC_SIZES(c));
        cr_assert_eq(nad_layernorm_forward(1e-5f, x, g, b, y, m, s), 0, "%s", nad_last_error());
        cr_assert_eq(nad_layernorm_backward(x, g, m, s, dy, dx, dg, db), 0, "%s", nad_last_error());
        cr_assert_eq(nad_add(1, r, 1, dx, want), 0);
        cr_assert_eq(nad_layernorm_backward_add(x, g, m, s, dy, r, got, dg2, db2), 0, "%s",
                     nad_last_error());
        const size_t bytes = (size_t)(rows * c) * sizeof(float);
        cr_assert(!memcmp(nad_tensor_data(got), nad_tensor_data(want), bytes), "fresh, case %zu", i);
        cr_assert(!memcmp(nad_tensor_data(dg2), nad_tensor_data(dg), (size_t)c * sizeof(float)));
        cr_assert(!memcmp(nad_tensor_data(db2), nad_tensor_data(db), (size_t)c * sizeof(float)));
        cr_assert_eq(nad_layernorm_backward_add(x, g, m, s, dy, r, r, NULL, NULL), 0, "%s",
                     nad_last_error());
        cr_assert(!memcmp(nad_tensor_data(r), nad_tensor_data(want), bytes), "in place, case %zu", i);
        nad_tensor *ts[] = {x, g, b, dy, r, y, m, s, dx, want, got, dg, db, dg2, db2};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
    }
    nad_rng rng;
    nad_rng_init(&rng, 39);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(4, 8)), *g = tc_rand(&rng, TC_SIZES(8)), *y = tc_empty();
    nad_tensor *m = tc_empty(), *s = tc_empty(), *bad = tc_rand(&rng, TC_SIZES(4, 7)), *dx = tc_empty();
    cr_assert_eq(nad_layernorm_forward(1e-5f, x, g, g, y, m, s), 0);
    cr_assert_eq(nad_layernorm_backward_add(x, g, m, s, x, NULL, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "layernorm_backward_add: r or dx is NULL");
    cr_assert_eq(nad_layernorm_backward_add(x, g, m, s, x, bad, dx, NULL, NULL), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "layernorm_backward_add: r"));
    nad_tensor *ts[] = {x, g, y, m, s, bad, dx};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
}
