/* test_groupnorm.c: channels-last group norm against a plain loop for several group counts,
   sliced and strided gamma/beta, one-pass statistics far from zero, GroupNorm + ReLU in one
   pass, the backward against finite differences, errors. */
#include "check.h"
#include "internal.h" /* only to build a 1-D view with a non-unit stride */
#include <criterion/criterion.h>
#include <string.h>

static nad_tensor *strided_vec(nad_rng *rng, int64_t n)
{
    nad_tensor *t = tc_rand(rng, TC_SIZES(2 * n));
    t->size[0] = n;
    t->stride[0] = 2;
    return t;
}

/* x[N,H,W,C] through tc_at; mean, rstd [N, groups] */
static void ref_groupnorm(int groups, float eps, const nad_tensor *x, const nad_tensor *g,
                          const nad_tensor *b, nad_tensor *y, nad_tensor *mean, nad_tensor *rstd)
{
    int64_t n = nad_tensor_size(x, 0), c = nad_tensor_size(x, 3);
    int64_t p = nad_tensor_size(x, 1) * nad_tensor_size(x, 2), cg = c / groups;
    for (int64_t s = 0; s < n; s++)
        for (int64_t q = 0; q < groups; q++) {
            double m = 0, v = 0;
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = q * cg; j < (q + 1) * cg; j++) m += *tc_at(x, (s * p + i) * c + j);
            m /= p * cg;
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = q * cg; j < (q + 1) * cg; j++)
                    v += pow(*tc_at(x, (s * p + i) * c + j) - m, 2);
            double r = 1 / sqrt(v / (p * cg) + eps);
            for (int64_t i = 0; i < p; i++)
                for (int64_t j = q * cg; j < (q + 1) * cg; j++) {
                    int64_t k = (s * p + i) * c + j;
                    *tc_at(y, k) = (float)((*tc_at(x, k) - m) * r * *tc_at(g, j) + *tc_at(b, j));
                }
            *tc_at(mean, s * groups + q) = (float)m;
            *tc_at(rstd, s * groups + q) = (float)r;
        }
}

Test(groupnorm, forward_matches_loop_for_several_group_counts)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 3, 2, 24)), *G = tc_rand(&rng, TC_SIZES(30));
    nad_tensor *B = tc_rand(&rng, TC_SIZES(30));
    for (int64_t i = 0; i < nad_tensor_numel(x); i++) *tc_at(x, i) = *tc_at(x, i) * 2 - 1;
    nad_tensor *g = nad_tensor_narrow(G, 0, 0, 24), *b = nad_tensor_narrow(B, 0, 0, 24);
    nad_tensor *gs = strided_vec(&rng, 24), *bs = strided_vec(&rng, 24);
    nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty();
    nad_tensor *want = tc_zeros(TC_SIZES(2, 3, 2, 24));
    const int group_counts[] = {8, 4, 1, 3, 24};
    for (int k = 0; k < 5; k++) {
        int gr = group_counts[k];
        nad_tensor *wm = tc_zeros(TC_SIZES(2, gr)), *wr = tc_zeros(TC_SIZES(2, gr));
        for (int strided = 0; strided < 2; strided++) {
            const nad_tensor *gg = strided ? gs : g, *bb = strided ? bs : b;
            cr_assert_eq(nad_groupnorm_forward(gr, 1e-5f, x, gg, bb, y, mean, rstd), 0, "%s",
                         nad_last_error());
            ref_groupnorm(gr, 1e-5f, x, gg, bb, want, wm, wr);
            cr_assert_eq(nad_tensor_size(mean, 1), gr);
            cr_assert(tc_close(y, want, 1e-5, 1e-5), "groups %d", gr);
            cr_assert(tc_close(mean, wm, 1e-5, 1e-6), "groups %d", gr);
            cr_assert(tc_close(rstd, wr, 1e-5, 1e-6), "groups %d", gr);
        }
        nad_tensor_free(wm);
        nad_tensor_free(wr);
    }
    nad_tensor *all[] = {x, G, B, g, b, gs, bs, y, mean, rstd, want};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

typedef struct {
    int groups;
    nad_tensor *x, *g, *b, *y, *mean, *rstd, *r;
} gn_ctx;

static double gn_loss(void *p)
{
    gn_ctx *c = p;
    nad_groupnorm_forward(c->groups, 1e-5f, c->x, c->g, c->b, c->y, c->mean, c->rstd);
    return tc_dot(c->y, c->r);
}

static void check_grads(int groups, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_tensor *G = tc_rand(&rng, TC_SIZES(10)), *B = tc_rand(&rng, TC_SIZES(10));
    gn_ctx c = {groups, tc_rand(&rng, TC_SIZES(2, 2, 3, 8)), nad_tensor_narrow(G, 0, 0, 8),
                nad_tensor_narrow(B, 0, 0, 8), tc_empty(), tc_empty(), tc_empty(),
                tc_rand(&rng, TC_SIZES(2, 2, 3, 8))};
    nad_tensor *dG = tc_zeros(TC_SIZES(10)), *dB = tc_zeros(TC_SIZES(10)), *dx = tc_empty();
    nad_tensor *dg = nad_tensor_narrow(dG, 0, 0, 8), *db = nad_tensor_narrow(dB, 0, 0, 8);
    gn_loss(&c);
    cr_assert_eq(nad_groupnorm_backward(groups, c.x, c.g, c.mean, c.rstd, c.r, dx, dg, db), 0,
                 "%s", nad_last_error());
    cr_assert(tc_gradcheck(gn_loss, &c, c.x, dx, 1e-2, 1e-2, 1e-3), "groups %d", groups);
    cr_assert(tc_gradcheck(gn_loss, &c, c.g, dg, 1e-2, 1e-2, 1e-3), "groups %d", groups);
    cr_assert(tc_gradcheck(gn_loss, &c, c.b, db, 1e-2, 1e-2, 1e-3), "groups %d", groups);
    cr_assert_float_eq(nad_tensor_sum(dB), nad_tensor_sum(db), 1e-6);
    /* the parameter gradients alone (no dx): the same bits */
    nad_tensor *dg2 = tc_zeros(TC_SIZES(8));
    cr_assert_eq(nad_groupnorm_backward(groups, c.x, c.g, c.mean, c.rstd, c.r, NULL, dg2, NULL),
                 0, "%s", nad_last_error());
    cr_assert(tc_close(dg2, dg, 0, 0));
    nad_tensor_free(dg2);

    /* accumulation, and dx in place of dy */
    gn_loss(&c);
    double before = nad_tensor_sum(db);
    nad_tensor *g2 = tc_zeros(TC_SIZES(2, 2, 3, 8));
    nad_tensor_copy(g2, c.r);
    cr_assert_eq(nad_groupnorm_backward(groups, c.x, c.g, c.mean, c.rstd, g2, g2, NULL, db), 0,
                 "%s", nad_last_error());
    cr_assert_float_eq(nad_tensor_sum(db), 2 * before, 1e-5);
    cr_assert(tc_close(g2, dx, 1e-6, 1e-7));
    nad_tensor *all[] = {G, B, c.x, c.g, c.b, c.y, c.mean, c.rstd, c.r, dG, dB, dx, dg, db, g2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

Test(groupnorm, backward_matches_finite_differences_4_groups) { check_grads(4, 2); }
Test(groupnorm, backward_matches_finite_differences_1_group) { check_grads(1, 3); }

/* Channel counts past the kernel's 64-channel blocks: groups wider than a block (split into
   pieces), several blocks per sample with a partial last one, and more pixels than one
   128-pixel partial sum. */
Test(groupnorm, wide_and_many_groups_match_loop_and_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 10, 15, 136)), *g = tc_rand(&rng, TC_SIZES(136));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(136)), *y = tc_empty(), *mean = tc_empty();
    nad_tensor *rstd = tc_empty(), *want = tc_zeros(TC_SIZES(2, 10, 15, 136));
    const int group_counts[] = {1, 2, 17, 34};
    for (int k = 0; k < 4; k++) {
        int gr = group_counts[k];
        nad_tensor *wm = tc_zeros(TC_SIZES(2, gr)), *wr = tc_zeros(TC_SIZES(2, gr));
        cr_assert_eq(nad_groupnorm_forward(gr, 1e-5f, x, g, b, y, mean, rstd), 0, "%s",
                     nad_last_error());
        ref_groupnorm(gr, 1e-5f, x, g, b, want, wm, wr);
        cr_assert(tc_close(y, want, 1e-5, 1e-5), "groups %d", gr);
        cr_assert(tc_close(mean, wm, 1e-5, 1e-6), "groups %d", gr);
        cr_assert(tc_close(rstd, wr, 1e-5, 1e-6), "groups %d", gr);
        nad_tensor_free(wm);
        nad_tensor_free(wr);
    }
    for (int k = 0; k < 3; k++) {
        int gr = group_counts[k];
        gn_ctx c = {gr, tc_rand(&rng, TC_SIZES(1, 2, 2, 136)), g, b, tc_empty(), tc_empty(),
                    tc_empty(), tc_rand(&rng, TC_SIZES(1, 2, 2, 136))};
        nad_tensor *dx = tc_empty(), *dg = tc_zeros(TC_SIZES(136));
        gn_loss(&c);
        cr_assert_eq(nad_groupnorm_backward(gr, c.x, g, c.mean, c.rstd, c.r, dx, dg, NULL), 0,
                     "%s", nad_last_error());
        cr_assert(tc_gradcheck(gn_loss, &c, c.x, dx, 1e-2, 1e-2, 1e-3), "groups %d", gr);
        cr_assert(tc_gradcheck(gn_loss, &c, g, dg, 1e-2, 1e-2, 1e-3), "groups %d", gr);
        nad_tensor *all[] = {c.x, c.y, c.mean, c.rstd, c.r, dx, dg};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
    }
    nad_tensor *all[] = {x, g, b, y, mean, rstd, want};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

Test(groupnorm, rejects_bad_groups_and_shapes)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 2, 2, 8)), *g = tc_rand(&rng, TC_SIZES(8));
    nad_tensor *y = tc_empty(), *m = tc_empty(), *r = tc_empty();
    cr_assert_eq(nad_groupnorm_forward(3, 1e-5f, x, g, g, y, m, r), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "groupnorm_forward: 3 groups do not divide x's 8 channels");
    cr_assert_eq(nad_tensor_size(y, 0), 0);
    nad_tensor *m3 = tc_zeros(TC_SIZES(3)), *dx = tc_empty();
    cr_assert_eq(nad_groupnorm_backward(4, x, g, m3, m3, x, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "groupnorm_backward: mean has 3 elements, expected N*groups = 4");
    nad_tensor *x3 = tc_rand(&rng, TC_SIZES(2, 8));
    cr_assert_eq(nad_groupnorm_forward(4, 1e-5f, x3, g, g, y, m, r), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "groupnorm_forward: x has 2 dims, expected 4");
    nad_tensor *all[] = {x, g, y, m, r, m3, dx, x3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* Large enough for the OpenMP paths: 1 and 2 threads give the same bits, and the loop's
   numbers. */
Test(groupnorm, parallel_paths_do_not_depend_on_thread_count)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 16, 17, 64));
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(2, 16, 17, 64));
    nad_tensor *g = tc_rand(&rng, TC_SIZES(64)), *b = tc_rand(&rng, TC_SIZES(64));
    nad_tensor *y[2], *dx[2], *dg[2], *m = tc_empty(), *r = tc_empty();
    int32_t keep = nad_get_num_threads();
    for (int t = 0; t < 2; t++) {
        nad_set_num_threads(t + 1);
        y[t] = tc_empty();
        dx[t] = tc_empty();
        dg[t] = tc_zeros(TC_SIZES(64));
        cr_assert_eq(nad_groupnorm_forward(8, 1e-5f, x, g, b, y[t], m, r), 0, "%s",
                     nad_last_error());
        cr_assert_eq(nad_groupnorm_backward(8, x, g, m, r, dy, dx[t], dg[t], NULL), 0, "%s",
                     nad_last_error());
    }
    nad_set_num_threads(keep);
    cr_assert(tc_close(y[0], y[1], 0, 0) && tc_close(dx[0], dx[1], 0, 0));
    cr_assert(tc_close(dg[0], dg[1], 0, 0));
    nad_tensor *want = tc_zeros(TC_SIZES(2, 16, 17, 64)), *wm = tc_zeros(TC_SIZES(2, 8));
    nad_tensor *wr = tc_zeros(TC_SIZES(2, 8));
    ref_groupnorm(8, 1e-5f, x, g, b, want, wm, wr);
    cr_assert(tc_close(y[0], want, 1e-4, 1e-5));
    nad_tensor *all[] = {x, dy, g, b, y[0], y[1], dx[0], dx[1], dg[0], dg[1], m, r, want, wm, wr};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* The statistics come from one pass of sums around a shift (each channel's first pixel): maps
   whose values sit far from zero (1000 + noise of 1e-2: raw sums of squares would lose the
   variance to cancellation) and a tiny spread keep the loop's mean and rstd. */
Test(groupnorm, one_pass_statistics_hold_far_from_zero)
{
    nad_rng rng;
    nad_rng_init(&rng, 11);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 40, 33, 16)), *g = tc_rand(&rng, TC_SIZES(16));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(16));
    for (int64_t i = 0; i < nad_tensor_numel(x); i++)
        *tc_at(x, i) = 1000.0f + (i % 16 < 8 ? 1e-2f : 3.0f) * *tc_at(x, i);
    nad_tensor *y = tc_empty(), *mean = tc_empty(), *rstd = tc_empty();
    nad_tensor *want = tc_zeros(TC_SIZES(2, 40, 33, 16)), *wm = tc_zeros(TC_SIZES(2, 4));
    nad_tensor *wr = tc_zeros(TC_SIZES(2, 4));
    cr_assert_eq(nad_groupnorm_forward(4, 1e-5f, x, g, b, y, mean, rstd), 0, "%s", nad_last_error());
    ref_groupnorm(4, 1e-5f, x, g, b, want, wm, wr);
    cr_assert(tc_close(mean, wm, 1e-7, 0), "mean");
    cr_assert(tc_close(rstd, wr, 1e-4, 0), "rstd");
    /* y to the float mean's resolution: its ulp at 1000 (6e-5) times rstd (~170) */
    cr_assert(tc_close(y, want, 0, 2e-2), "y");
    nad_tensor *ts[] = {x, g, b, y, mean, rstd, want, wm, wr};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}

/* GroupNorm + ReLU in one pass: the same bits as groupnorm_forward then relu_forward */
Test(groupnorm, relu_fused_matches_groupnorm_then_relu)
{
    nad_rng rng;
    nad_rng_init(&rng, 12);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 5, 7, 24)), *g = tc_rand(&rng, TC_SIZES(24));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(24));
    for (int64_t i = 0; i < 24; i++) *tc_at(b, i) -= 0.5f; /* outputs of both signs */
    nad_tensor *y = tc_empty(), *m = tc_empty(), *r = tc_empty();
    nad_tensor *want = tc_empty(), *wm = tc_empty(), *wr = tc_empty();
    cr_assert_eq(nad_groupnorm_relu_forward(8, 1e-5f, x, g, b, y, m, r), 0, "%s", nad_last_error());
    cr_assert_eq(nad_groupnorm_forward(8, 1e-5f, x, g, b, want, wm, wr), 0);
    cr_assert_eq(nad_relu_forward(want, want), 0);
    cr_assert(tc_close(y, want, 0, 0));
    cr_assert(tc_close(m, wm, 0, 0) && tc_close(r, wr, 0, 0));
    int64_t zeros = 0;
    for (int64_t i = 0; i < nad_tensor_numel(y); i++) zeros += *tc_at(y, i) == 0.0f;
    cr_assert(zeros > 0 && zeros < nad_tensor_numel(y), "both signs seen");
    cr_assert_eq(nad_groupnorm_relu_forward(5, 1e-5f, x, g, b, y, m, r), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "groupnorm_relu_forward: 5 groups"), "%s", nad_last_error());
    nad_tensor *ts[] = {x, g, b, y, m, r, want, wm, wr};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}

/* Its backward in one call: the same bits as relu_backward on y then groupnorm_backward, the
   parameter gradients accumulated; wide groups split in pieces and several blocks per sample
   (C = 200, 4 groups of 50; 8 of 25), dx in place of dy; strided gamma and beta. */
Test(groupnorm, relu_fused_backward_matches_relu_then_groupnorm)
{
    nad_rng rng;
    nad_rng_init(&rng, 13);
    const int groups[] = {4, 8};
    for (int gi = 0; gi < 2; gi++) {
        int64_t c = 200;
        nad_tensor *x = tc_rand(&rng, TC_SIZES(3, 9, 17, c)), *dy = tc_rand(&rng, TC_SIZES(3, 9, 17, c));
        nad_tensor *G = tc_rand(&rng, TC_SIZES(2 * c)), *B = tc_rand(&rng, TC_SIZES(2 * c));
        nad_tensor *g = nad_tensor_narrow(G, 0, 0, c), *b = nad_tensor_narrow(B, 0, c, c);
        for (int64_t i = c; i < 2 * c; i++) *tc_at(B, i) -= 0.5f; /* outputs of both signs */
        nad_tensor *y = tc_empty(), *m = tc_empty(), *r = tc_empty(), *dn = tc_empty();
        nad_tensor *want = tc_empty();
        nad_tensor *dg[2], *db[2];
        dg[0] = tc_rand(&rng, TC_SIZES(c)), db[0] = tc_rand(&rng, TC_SIZES(c));
        dg[1] = tc_clone(dg[0]), db[1] = tc_clone(db[0]);
        cr_assert_eq(nad_groupnorm_relu_forward(groups[gi], 1e-5f, x, g, b, y, m, r), 0);
        cr_assert_eq(nad_relu_backward(y, dy, dn), 0);
        cr_assert_eq(nad_groupnorm_backward(groups[gi], x, g, m, r, dn, want, dg[0], db[0]), 0);
        nad_tensor *got = tc_clone(dy);
        cr_assert_eq(nad_groupnorm_relu_backward(groups[gi], x, g, b, m, r, got, got, dg[1], db[1]),
                     0, "%s", nad_last_error());
        cr_assert(tc_close(got, want, 0, 0), "groups %d", groups[gi]);
        cr_assert(tc_close(dg[1], dg[0], 0, 0) && tc_close(db[1], db[0], 0, 0));
        nad_tensor *ts[] = {x, dy, G, B, g, b, y, m, r, dn, want, got, dg[0], dg[1], db[0], db[1]};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    }
}
