/* test_conv2d_gelu_backward.c: the fused backward of GELU(depthwise conv) gives the bits of
   gelu_backward then conv2d_backward (rows of whole vectors; others to rounding): dx fresh or written over dact, dw and db accumulated
   into views, at 1 to 3 threads (parts that split an image, so halo rows), maps whose rows
   need several bands, 3x3, 5x5 and dilation 2, channel counts with a remainder; other
   convolutions and bad outputs are refused by name. */
#include "check.h"
#include <criterion/criterion.h>
#include <stdbool.h>

typedef struct cfg {
    int64_t n, h, w, c, k;
    int32_t pad, d;
    int bias, views;
} cfg;

static int same_bits(const nad_tensor *a, const nad_tensor *b)
{
    int64_t n = nad_tensor_numel(a);
    if (n != nad_tensor_numel(b)) return 0;
    for (int64_t i = 0; i < n; i++)
        if (memcmp(tc_at(a, i), tc_at(b, i), sizeof(float))) return 0;
    return 1;
}

static void check_case(const cfg *c, int threads, uint64_t seed)
{
    nad_set_num_threads(threads);
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_workspace *ws = nad_workspace_new(0);
    nad_conv2d_params p = {1, c->pad, c->d, (int32_t)c->c};
    nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->c));
    /* with views: w, dw and db are leading slices of larger tensors */
    nad_tensor *wbig = tc_rand(&rng, TC_SIZES(c->c + 3, c->k, c->k, 1));
    nad_tensor *w = c->views ? nad_tensor_narrow(wbig, 0, 0, c->c) : tc_rand(&rng, TC_SIZES(c->c, c->k, c->k, 1));
    nad_tensor *b = c->bias ? tc_rand(&rng, TC_SIZES(c->c)) : NULL;
    nad_tensor *pre = tc_empty(), *act = tc_empty();
    cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, x, w, b, pre, act), 0, "%s", nad_last_error());
    nad_tensor *dact = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->c));

    /* the unfused reference */
    nad_tensor *da = tc_empty(), *rdx = tc_empty();
    nad_tensor *rdw = tc_rand(&rng, TC_SIZES(c->c, c->k, c->k, 1)), *rdb = tc_rand(&rng, TC_SIZES(c->c));
    nad_tensor *dw0 = tc_zeros(TC_SIZES(c->c, c->k, c->k, 1)), *db0 = tc_zeros(TC_SIZES(c->c));
    cr_assert_eq(nad_tensor_copy(dw0, rdw), 0);
    cr_assert_eq(nad_tensor_copy(db0, rdb), 0);
    cr_assert_eq(nad_gelu_backward(pre, dact, da), 0, "%s", nad_last_error());
    cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, da, rdx, rdw, rdb), 0, "%s", nad_last_error());

    /* fused, into a fresh dx and into dact itself */
    for (int inplace = 0; inplace < 2; inplace++) {
        nad_tensor *dwbig = tc_zeros(TC_SIZES(c->c + 3, c->k, c->k, 1)), *dbbig = tc_zeros(TC_SIZES(c->c + 5));
        nad_tensor *dw = c->views ? nad_tensor_narrow(dwbig, 0, 0, c->c) : tc_empty();
        nad_tensor *db = c->views ? nad_tensor_narrow(dbbig, 0, 0, c->c) : tc_empty();
        if (!c->views) {
            cr_assert_eq(nad_tensor_resize(dw, 4, (int64_t[]){c->c, c->k, c->k, 1}), 0);
            cr_assert_eq(nad_tensor_resize(db, 1, (int64_t[]){c->c}), 0);
        }
        cr_assert_eq(nad_tensor_copy(dw, dw0), 0);
        cr_assert_eq(nad_tensor_copy(db, db0), 0);
        nad_tensor *g = tc_zeros(TC_SIZES(c->n, c->h, c->w, c->c)), *dx = tc_empty();
        cr_assert_eq(nad_tensor_copy(g, dact), 0);
        nad_tensor *out = inplace ? g : dx;
        cr_assert_eq(nad_conv2d_gelu_backward(ws, &p, x, w, pre, g, out, dw, db), 0, "%s",
                     nad_last_error());
        /* GELU's gradient may round a value 1 ulp differently in a vector's tail, which the
           fused pass places at row ends and the unfused at the tensor's end: rows of whole
           vectors (Mix-FFN's widths) give the same bits, others agree to rounding */
        bool exact = c->w * c->c % 16 == 0;
        cr_assert(exact ? same_bits(out, rdx) : tc_close(out, rdx, 1e-5, 1e-6),
                  "dx, %lldx%lldx%lldx%lld k%lld pad %d d %d, %d threads, %s",
                  (long long)c->n, (long long)c->h, (long long)c->w, (long long)c->c,
                  (long long)c->k, c->pad, c->d, threads, inplace ? "over dact" : "fresh");
        cr_assert(exact ? same_bits(dw, rdw) : tc_close(dw, rdw, 1e-5, 1e-6), "dw, k%lld, %d threads",
                  (long long)c->k, threads);
        cr_assert(exact ? same_bits(db, rdb) : tc_close(db, rdb, 1e-5, 1e-6), "db, k%lld, %d threads",
                  (long long)c->k, threads);
        if (c->views) /* nothing past the slices */
            for (int64_t i = c->c * c->k * c->k; i < (c->c + 3) * c->k * c->k; i++)
                cr_assert_eq(nad_tensor_data(dwbig)[i], 0.0f);
        nad_tensor *ts[] = {dwbig, dbbig, dw, db, g, dx};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    }
    nad_tensor *ts[] = {x, wbig, w, b, pre, act, dact, da, rdx, rdw, rdb, dw0, db0};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
    nad_set_num_threads(1);
}

Test(conv2d_gelu_backward, bits_of_gelu_backward_then_conv2d_backward)
{
    cfg cs[] = {
        {2, 7, 6, 35, 3, 1, 1, 1, 0},   /* 2 vectors + 3 channels, small rows: one band */
        {1, 9, 21, 32, 3, 1, 1, 0, 1},  /* strips of 8 in the rows, views, no bias */
        {3, 5, 9, 20, 3, 1, 1, 1, 0},   /* parts across image borders */
        {1, 11, 64, 256, 3, 1, 1, 1, 0},/* 16384 floats a row: bands of 2 rows */
        {1, 10, 40, 128, 5, 2, 1, 1, 1},/* 5x5: two halo rows each side, bands of 8 */
        {2, 9, 30, 96, 3, 2, 2, 1, 0},  /* dilation 2 */
        {1, 1, 1, 16, 3, 1, 1, 1, 0},   /* one pixel */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int t = 1; t <= 3; t++) check_case(&cs[i], t, 40 + i);
}

Test(conv2d_gelu_backward, refuses_other_convolutions_and_bad_outputs)
{
    nad_rng rng;
    nad_rng_init(&rng, 7);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 6, 6, 4)), *w = tc_rand(&rng, TC_SIZES(4, 3, 3, 1));
    nad_tensor *pre = tc_rand(&rng, TC_SIZES(1, 6, 6, 4)), *dact = tc_rand(&rng, TC_SIZES(1, 6, 6, 4));
    nad_tensor *dx = tc_empty(), *wfull = tc_rand(&rng, TC_SIZES(4, 3, 3, 4));
    nad_conv2d_params stride2 = {2, 1, 1, 4}, nopad = {1, 0, 1, 4}, ok = {1, 1, 1, 4}, full = {1, 1, 1, 1};
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &stride2, x, w, pre, dact, dx, NULL, NULL), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "conv2d_gelu_backward: only depthwise stride-1"));
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &nopad, x, w, pre, dact, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &full, x, wfull, pre, dact, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &ok, x, w, pre, dact, NULL, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_gelu_backward: dx is NULL");
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &ok, x, w, pre, dact, pre, NULL, NULL), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "dx must be dact itself"));
    nad_tensor *half = nad_tensor_narrow(dact, 3, 0, 2);
    cr_assert_eq(nad_conv2d_gelu_backward(ws, &ok, x, w, pre, half, dx, NULL, NULL), NAD_EINVAL);
    nad_tensor *ts[] = {x, w, pre, dact, dx, wfull, half};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
}
