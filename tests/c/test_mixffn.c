/* test_mixffn.c: the fused inference Mix-FFN (mixffn.c) against the operators it replaces
   (linear, conv2d_gelu depthwise, linear, add): one band and many, row ranges split across
   threads, weight slices, no residual or y as the residual, frozen weights, and errors. The
   supernet's test of inference without gradients checks it against them bit for bit. */
#include "check.h"
#include <criterion/criterion.h>
#include <string.h>

typedef struct mcfg {
    int64_t n, h, w, c, hd;
    int residual, views, in_place, threads, frozen;
} mcfg;

/* leading slice [rows, cols] of a fresh random [rows + er, cols + ec] tensor (or a plain one) */
static nad_tensor *weight(nad_rng *rng, int views, int64_t rows, int64_t cols, nad_tensor **owner)
{
    if (!views) return *owner = NULL, tc_rand(rng, TC_SIZES(rows, cols));
    *owner = tc_rand(rng, TC_SIZES(rows + 3, cols + 5));
    nad_tensor *a = nad_tensor_narrow(*owner, 0, 0, rows), *b = nad_tensor_narrow(a, 1, 0, cols);
    nad_tensor_free(a);
    return b;
}

static void check_mixffn(const mcfg *m, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    cr_assert_eq(nad_set_num_threads(m->threads), 0);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(m->n, m->h, m->w, m->c));
    nad_tensor *r = tc_rand(&rng, TC_SIZES(m->n, m->h, m->w, m->c));
    nad_tensor *o1, *o2, *od = NULL;
    nad_tensor *w1 = weight(&rng, m->views, m->hd, m->c, &o1);
    nad_tensor *w2 = weight(&rng, m->views, m->c, m->hd, &o2);
    nad_tensor *wd, *bd = tc_rand(&rng, TC_SIZES(m->hd)), *b2 = tc_rand(&rng, TC_SIZES(m->c));
    nad_tensor *b1 = m->views ? NULL : tc_rand(&rng, TC_SIZES(m->hd));
    if (m->views) {
        od = tc_rand(&rng, TC_SIZES(m->hd + 4, 3, 3, 1));
        wd = nad_tensor_narrow(od, 0, 0, m->hd);
    } else {
        wd = tc_rand(&rng, TC_SIZES(m->hd, 3, 3, 1));
    }

    /* the operators one after the other */
    nad_tensor *h = tc_empty(), *act = tc_empty(), *f = tc_empty(), *want = tc_empty();
    nad_conv2d_params p = {1, 1, 1, (int32_t)m->hd};
    cr_assert_eq(nad_linear_forward(x, w1, b1, h), 0, "%s", nad_last_error());
    cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, h, wd, bd, NULL, act), 0, "%s", nad_last_error());
    cr_assert_eq(nad_linear_forward(act, w2, b2, f), 0, "%s", nad_last_error());
    if (m->residual) cr_assert_eq(nad_add(1, r, 1, f, want), 0);
    else cr_assert_eq(nad_add(1, f, 0, f, want), 0);

    if (m->frozen) nad_set_weights_frozen(1);
    nad_tensor *y = m->in_place ? r : tc_empty();
    /* y may be r: r is not read again after the first call; frozen: the second call takes the
       packed weights from the cache */
    for (int rep = 0; rep < (m->frozen ? 2 : 1); rep++) {
        cr_assert_eq(nad_mixffn_forward(ws, x, w1, b1, wd, bd, w2, b2, m->residual ? r : NULL, y),
                     0, "%s", nad_last_error());
        cr_assert(tc_close(y, want, 1e-4, 1e-5), "n%lld h%lld w%lld c%lld hd%lld threads %d rep %d",
                  (long long)m->n, (long long)m->h, (long long)m->w, (long long)m->c,
                  (long long)m->hd, m->threads, rep);
    }
    if (m->frozen) nad_set_weights_frozen(0);
    nad_tensor *ts[] = {x, w1, w2, wd, bd, b1, b2, o1, o2, od, h, act, f, want};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    if (y != r) nad_tensor_free(y);
    nad_tensor_free(r);
    nad_workspace_free(ws);
    nad_set_num_threads(1);
}

/* hidden maps that fit one band whole: the batch in one go, bit for bit the operators' */
Test(mixffn, matches_the_operators_in_one_band)
{
    mcfg m = {2, 9, 7, 8, 32, 1, 0, 0, 1, 0};
    check_mixffn(&m, 1);
    mcfg tiny = {2, 2, 3, 8, 32, 1, 0, 0, 2, 0}; /* fewer than 12 rows per image */
    check_mixffn(&tiny, 11);
}

/* 16 x 1024 hidden floats a row: bands of 6 rows (the least), the last of 3, fc1 rows
   carried over */
Test(mixffn, matches_the_operators_across_bands)
{
    mcfg m = {1, 9, 16, 12, 1024, 1, 0, 0, 1, 0};
    check_mixffn(&m, 2);
    mcfg wide = {2, 14, 40, 16, 512, 1, 0, 0, 1, 0}; /* rows wider than a band: 6, 6, 2 */
    check_mixffn(&wide, 3);
}

/* one image, two threads: each takes a row range and computes the fc1 row above it again */
Test(mixffn, matches_the_operators_in_row_ranges_across_threads)
{
    mcfg m = {1, 11, 16, 12, 1024, 1, 0, 0, 2, 0};
    check_mixffn(&m, 4);
    mcfg three = {3, 7, 16, 8, 1024, 1, 0, 0, 2, 0}; /* more images than threads */
    check_mixffn(&three, 5);
}

Test(mixffn, weight_slices_no_bias_no_residual_in_place_and_frozen)
{
    mcfg views = {2, 6, 5, 8, 24, 0, 1, 0, 1, 0};
    check_mixffn(&views, 6);
    mcfg in_place = {1, 6, 5, 8, 24, 1, 0, 1, 1, 0};
    check_mixffn(&in_place, 7);
    mcfg frozen = {1, 9, 16, 12, 1024, 1, 1, 0, 2, 1};
    check_mixffn(&frozen, 8);
}

Test(mixffn, rejects_bad_arguments_by_name)
{
    nad_rng rng;
    nad_rng_init(&rng, 9);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 4, 4, 8)), *w1 = tc_rand(&rng, TC_SIZES(16, 8));
    nad_tensor *wd = tc_rand(&rng, TC_SIZES(16, 3, 3, 1)), *w2 = tc_rand(&rng, TC_SIZES(8, 16));
    nad_tensor *bad_wd = tc_rand(&rng, TC_SIZES(16, 5, 5, 1)), *bad_w2 = tc_rand(&rng, TC_SIZES(8, 15));
    nad_tensor *bad_r = tc_rand(&rng, TC_SIZES(1, 4, 5, 8)), *y = tc_empty();
    cr_assert_eq(nad_mixffn_forward(ws, x, w1, NULL, bad_wd, NULL, w2, NULL, NULL, y), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "wd is [16,5,5,1]"), "%s", nad_last_error());
    cr_assert_eq(nad_mixffn_forward(ws, x, w1, NULL, wd, NULL, bad_w2, NULL, NULL, y), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "w2 is [8,15], expected [8,16]"), "%s", nad_last_error());
    cr_assert_eq(nad_mixffn_forward(ws, x, w1, NULL, wd, NULL, w2, NULL, bad_r, y), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "r"), "%s", nad_last_error());
    cr_assert_eq(nad_mixffn_forward(ws, x, w1, NULL, wd, NULL, w2, NULL, NULL, x), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "y must not share storage with x"), "%s", nad_last_error());
    cr_assert_eq(nad_tensor_numel(y), 0, "y untouched by the failed calls");
    nad_tensor *ts[] = {x, w1, wd, w2, bad_wd, bad_w2, bad_r, y};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
}

/* with the block's LayerNorm fused in (nad_mixffn_ln_forward): the bits of layernorm_forward
   then mixffn_forward with r = x, into a fresh y and in place, in one band, across bands,
   whole images to threads and images split between 2 and 3 threads (the rows around each
   range copied before it is overwritten), strided gamma and beta */
Test(mixffn, layernorm_fused_keeps_the_bits_in_place_and_not)
{
    static const int64_t cs[][6] = { /* n, h, w, c, hd, threads */
        {2, 9, 7, 8, 32, 1},  {1, 30, 40, 32, 256, 2}, {1, 31, 40, 32, 256, 3},
        {2, 20, 50, 32, 256, 2}, {3, 14, 20, 16, 128, 2},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const int64_t n = cs[i][0], h = cs[i][1], w = cs[i][2], c = cs[i][3], hd = cs[i][4];
        nad_set_num_threads((int32_t)cs[i][5]);
        nad_rng rng;
        nad_rng_init(&rng, 60 + i);
        nad_workspace *ws = nad_workspace_new(0);
        nad_tensor *x = tc_rand(&rng, TC_SIZES(n, h, w, c)), *gb = tc_rand(&rng, TC_SIZES(c, 2));
        nad_tensor *g = nad_tensor_narrow(gb, 1, 0, 1), *b = nad_tensor_narrow(gb, 1, 1, 1);
        int64_t cc = c;
        nad_tensor *gamma = nad_tensor_reshape(g, 1, &cc), *beta = nad_tensor_reshape(b, 1, &cc);
        if (!gamma) { /* a strided [c] view: the diagonal of a [c, c] matrix */
            nad_tensor_free(g), nad_tensor_free(b);
            g = tc_rand(&rng, TC_SIZES(c, c)), b = tc_rand(&rng, TC_SIZES(c, c));
            gamma = nad_tensor_diagonal(g, 0, 1), beta = nad_tensor_diagonal(b, 0, 1);
        }
        nad_tensor *w1 = tc_rand(&rng, TC_SIZES(hd, c)), *b1 = tc_rand(&rng, TC_SIZES(hd));
        nad_tensor *wd = tc_rand(&rng, TC_SIZES(hd, 3, 3, 1)), *bd = tc_rand(&rng, TC_SIZES(hd));
        nad_tensor *w2 = tc_rand(&rng, TC_SIZES(c, hd)), *b2 = tc_rand(&rng, TC_SIZES(c));
        nad_tensor *a = tc_empty(), *mean = tc_empty(), *rstd = tc_empty(), *want = tc_empty();
        cr_assert_eq(nad_layernorm_forward(1e-6f, x, gamma, beta, a, mean, rstd), 0, "%s", nad_last_error());
        cr_assert_eq(nad_mixffn_forward(ws, a, w1, b1, wd, bd, w2, b2, x, want), 0, "%s", nad_last_error());
        nad_tensor *y = tc_empty(), *xc = tc_zeros(TC_SIZES(n, h, w, c));
        cr_assert_eq(nad_tensor_copy(xc, x), 0);
        cr_assert_eq(nad_mixffn_ln_forward(ws, 1e-6f, gamma, beta, x, w1, b1, wd, bd, w2, b2, y),
                     0, "%s", nad_last_error());
        cr_assert_eq(nad_mixffn_ln_forward(ws, 1e-6f, gamma, beta, xc, w1, b1, wd, bd, w2, b2, xc),
                     0, "%s", nad_last_error());
        const size_t bytes = (size_t)nad_tensor_numel(x) * sizeof(float);
        cr_assert(!memcmp(nad_tensor_data(y), nad_tensor_data(want), bytes), "case %zu, fresh y", i);
        cr_assert(!memcmp(nad_tensor_data(xc), nad_tensor_data(want), bytes), "case %zu, in place", i);
        nad_tensor *ts[] = {x, gb, g, b, gamma, beta, w1, b1, wd, bd, w2, b2, a, mean, rstd, want, y, xc};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
        nad_workspace_free(ws);
    }
    nad_set_num_threads(1);
    nad_rng rng;
    nad_rng_init(&rng, 70);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 4, 4, 8)), *g5 = tc_rand(&rng, TC_SIZES(5));
    nad_tensor *g8 = tc_rand(&rng, TC_SIZES(8)), *w1 = tc_rand(&rng, TC_SIZES(16, 8));
    nad_tensor *wd = tc_rand(&rng, TC_SIZES(16, 3, 3, 1)), *w2 = tc_rand(&rng, TC_SIZES(8, 16));
    nad_tensor *y = tc_empty();
    cr_assert_eq(nad_mixffn_ln_forward(ws, 1e-6f, g5, g8, x, w1, NULL, wd, NULL, w2, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "mixffn_ln_forward: gamma has 5 elements, expected 8");
    cr_assert_eq(nad_mixffn_ln_forward(ws, 1e-6f, NULL, g8, x, w1, NULL, wd, NULL, w2, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "mixffn_ln_forward: gamma or beta is NULL");
    cr_assert_eq(nad_mixffn_ln_forward(ws, -1.0f, g8, g8, x, w1, NULL, wd, NULL, w2, NULL, y), NAD_EINVAL);
    nad_tensor *ts[] = {x, g5, g8, w1, wd, w2, y};
    for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
    nad_workspace_free(ws);
}
