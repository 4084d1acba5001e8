/* test_resize.c: bilinear resize (both align_corners settings, up and down) against a plain
   loop of PyTorch's formula, its backward against finite differences, and the errors. */
#include "check.h"
#include <criterion/criterion.h>

static float *px(const nad_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c)
{
    return nad_tensor_data(t) + ((n * nad_tensor_size(t, 1) + h) * nad_tensor_size(t, 2) + w) *
                                    nad_tensor_size(t, 3) + c;
}

/* PyTorch's source index of output o: taps i0, i1 and the weight of i1 */
static void ref_taps(int in, int out, int ac, int o, int *i0, int *i1, double *l)
{
    double scale = ac ? (out > 1 ? (in - 1.0) / (out - 1.0) : 0) : (double)in / out;
    double src = ac ? scale * o : scale * (o + 0.5) - 0.5;
    if (src < 0) src = 0;
    *i0 = (int)src;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l = src - *i0;
}

static void check_forward_c(int H, int W, int Ho, int Wo, int C, int ac, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    const int N = 2;
    nad_tensor *x = tc_rand(&rng, TC_SIZES(N, H, W, C)), *y = tc_empty();
    cr_assert_eq(nad_resize_bilinear_forward(Ho, Wo, ac, x, y), 0, "%s", nad_last_error());
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++) {
                int h0, h1, w0, w1;
                double a, b;
                ref_taps(H, Ho, ac, oh, &h0, &h1, &a);
                ref_taps(W, Wo, ac, ow, &w0, &w1, &b);
                for (int c = 0; c < C; c++) {
                    double v = (1 - a) * ((1 - b) * *px(x, n, h0, w0, c) + b * *px(x, n, h0, w1, c)) +
                               a * ((1 - b) * *px(x, n, h1, w0, c) + b * *px(x, n, h1, w1, c));
                    cr_assert_float_eq(*px(y, n, oh, ow, c), v, 1e-5, "%dx%d->%dx%d ac %d", H, W,
                                       Ho, Wo, ac);
                }
            }
    if (ac && Ho > 1 && Wo > 1) { /* the corners are the input's corners */
        cr_assert_float_eq(*px(y, 1, Ho - 1, Wo - 1, C - 1), *px(x, 1, H - 1, W - 1, C - 1), 1e-6);
        cr_assert_float_eq(*px(y, 0, 0, 0, 0), *px(x, 0, 0, 0, 0), 1e-6);
    }
    nad_tensor_free(x);
    nad_tensor_free(y);
}

static void check_forward(int H, int W, int Ho, int Wo, int ac, uint64_t seed)
{
    check_forward_c(H, W, Ho, Wo, 3, ac, seed);
}

Test(resize, forward_matches_loop)
{
    for (int ac = 0; ac < 2; ac++) {
        check_forward(4, 5, 9, 7, ac, 1);  /* up */
        check_forward(9, 8, 4, 3, ac, 2);  /* down */
        check_forward(5, 5, 5, 5, ac, 3);  /* same */
        check_forward(6, 3, 1, 1, ac, 4);  /* to a single pixel */
        check_forward(1, 1, 3, 4, ac, 5);  /* from a single pixel */
    }
}

/* The forward interpolates source rows along W once and keeps them for the output rows that
   read them: the channel counts it specialises (1, 2, 4, 8, 16) and others, maps large enough
   for two threads, up- and downsampling; the same bits on 1 and 2 threads. */
Test(resize, forward_channel_counts_and_threads)
{
    const int cs[] = { 1, 2, 4, 5, 8, 16, 64 };
    int32_t nt = nad_get_num_threads();
    for (size_t i = 0; i < sizeof cs / sizeof *cs; i++)
        for (int ac = 0; ac < 2; ac++) {
            nad_set_num_threads(2);
            check_forward_c(13, 11, 50, 47, cs[i], ac, 20 + i); /* up ~4x */
            check_forward_c(50, 40, 13, 17, cs[i], ac, 30 + i); /* down */
            if (cs[i] <= 16) check_forward_c(50, 50, 200, 200, cs[i], ac, 40 + i);
            nad_rng rng;
            nad_rng_init(&rng, 50 + i);
            nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 13, 13, cs[i])), *y1 = tc_empty(), *y2 = tc_empty();
            cr_assert_eq(nad_resize_bilinear_forward(100, 90, ac, x, y2), 0, "%s", nad_last_error());
            nad_set_num_threads(1);
            cr_assert_eq(nad_resize_bilinear_forward(100, 90, ac, x, y1), 0, "%s", nad_last_error());
            cr_assert(tc_close(y1, y2, 0, 0), "C %d ac %d", cs[i], ac);
            nad_tensor_free(x);
            nad_tensor_free(y1);
            nad_tensor_free(y2);
        }
    nad_set_num_threads(nt);
}

typedef struct {
    int ho, wo, ac;
    nad_tensor *x, *y, *r;
} rs_ctx;

static double rs_loss(void *v)
{
    rs_ctx *c = v;
    nad_resize_bilinear_forward(c->ho, c->wo, c->ac, c->x, c->y);
    return tc_dot(c->y, c->r);
}

static void check_grad(int H, int W, int Ho, int Wo, int ac, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    rs_ctx c = {Ho, Wo, ac, tc_rand(&rng, TC_SIZES(2, H, W, 3)), tc_empty(),
                tc_rand(&rng, TC_SIZES(2, Ho, Wo, 3))};
    nad_tensor *dx = tc_empty();
    cr_assert_eq(nad_resize_bilinear_backward(ac, c.x, c.r, dx), 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(rs_loss, &c, c.x, dx, 1e-2, 1e-3, 1e-4));
    nad_tensor_free(c.x);
    nad_tensor_free(c.y);
    nad_tensor_free(c.r);
    nad_tensor_free(dx);
}

Test(resize, backward_matches_finite_differences)
{
    for (int ac = 0; ac < 2; ac++) {
        check_grad(3, 4, 7, 9, ac, 10);
        check_grad(8, 7, 3, 4, ac, 11);
        check_grad(4, 4, 1, 2, ac, 12);
    }
}

Test(resize, backward_is_thread_independent)
{
    nad_rng rng;
    nad_rng_init(&rng, 13);
    nad_tensor *x = tc_zeros(TC_SIZES(2, 16, 16, 130)), *dy = tc_rand(&rng, TC_SIZES(2, 40, 40, 130));
    nad_tensor *d1 = tc_empty(), *d2 = tc_empty();
    int32_t nt = nad_get_num_threads();
    nad_set_num_threads(1);
    cr_assert_eq(nad_resize_bilinear_backward(0, x, dy, d1), 0, "%s", nad_last_error());
    nad_set_num_threads(2);
    cr_assert_eq(nad_resize_bilinear_backward(0, x, dy, d2), 0, "%s", nad_last_error());
    nad_set_num_threads(nt);
    cr_assert(tc_close(d1, d2, 0, 0));
    /* the transpose keeps the sum: every output spreads weights summing to 1 */
    cr_assert_float_eq(nad_tensor_sum(d1), nad_tensor_sum(dy), 1e-2);
    nad_tensor_free(x);
    nad_tensor_free(dy);
    nad_tensor_free(d1);
    nad_tensor_free(d2);
}

Test(resize, bad_arguments_are_errors)
{
    nad_rng rng;
    nad_rng_init(&rng, 14);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 4, 4, 3)), *y = tc_zeros(TC_SIZES(2));
    cr_assert_eq(nad_resize_bilinear_forward(0, 4, 0, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "resize_bilinear_forward: output size 0x4 must be at least 1x1");
    cr_assert_eq(nad_tensor_numel(y), 2, "y untouched");
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(2, 8, 8, 3));
    cr_assert_eq(nad_resize_bilinear_backward(1, x, dy, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "resize_bilinear_backward: dy [2,8,8,3] is not a resize of x [1,4,4,3]");
    nad_tensor_free(x);
    nad_tensor_free(y);
    nad_tensor_free(dy);
}

/* y (forward) and dy (backward) as channel slices of a wider tensor: the same numbers as with
   contiguous tensors, and the rest of the wide tensor untouched */
Test(resize, channel_slices_in_place)
{
    nad_rng rng;
    nad_rng_init(&rng, 15);
    const int N = 2, C = 5, WIDE = 3 * C;
    nad_tensor *x = tc_rand(&rng, TC_SIZES(N, 4, 6, C)), *y = tc_empty();
    cr_assert_eq(nad_resize_bilinear_forward(9, 7, 0, x, y), 0, "%s", nad_last_error());
    nad_tensor *wide = tc_zeros(TC_SIZES(N, 9, 7, WIDE));
    nad_tensor *mid = nad_tensor_narrow(wide, 3, C, C);
    cr_assert_eq(nad_resize_bilinear_forward(9, 7, 0, x, mid), 0, "%s", nad_last_error());
    for (int n = 0; n < N; n++)
        for (int h = 0; h < 9; h++)
            for (int w = 0; w < 7; w++)
                for (int c = 0; c < WIDE; c++) {
                    float got = *px(wide, n, h, w, c);
                    float want = c >= C && c < 2 * C ? *px(y, n, h, w, c - C) : 0.0f;
                    cr_assert_eq(got, want, "[%d,%d,%d,%d]: %g vs %g", n, h, w, c, got, want);
                }
    /* backward reads the slice of a wide gradient */
    nad_tensor *gwide = tc_rand(&rng, TC_SIZES(N, 9, 7, WIDE));
    nad_tensor *gmid = nad_tensor_narrow(gwide, 3, C, C), *g = tc_zeros(TC_SIZES(N, 9, 7, C));
    cr_assert_eq(nad_tensor_copy(g, gmid), 0, "%s", nad_last_error());
    nad_tensor *d1 = tc_empty(), *d2 = tc_empty();
    cr_assert_eq(nad_resize_bilinear_backward(0, x, g, d1), 0, "%s", nad_last_error());
    cr_assert_eq(nad_resize_bilinear_backward(0, x, gmid, d2), 0, "%s", nad_last_error());
    cr_assert(tc_close(d1, d2, 0, 0));
    /* a slice cannot be resized to another shape */
    cr_assert_eq(nad_resize_bilinear_forward(8, 7, 0, x, mid), NAD_ESTATE);
    nad_tensor *tensors[] = { x, y, wide, mid, gwide, gmid, g, d1, d2 };
    for (size_t i = 0; i < sizeof tensors / sizeof *tensors; i++) nad_tensor_free(tensors[i]);
}

/* accumulate: y + resize(x), the same bits as a resize into a temporary then the addition, for
   a contiguous y and for a channel slice; its errors name the mismatch */
Test(resize, accumulate_adds_the_resized_map)
{
    nad_rng rng;
    nad_rng_init(&rng, 16);
    const int N = 2, C = 5;
    for (int ac = 0; ac < 2; ac++) {
        nad_tensor *x = tc_rand(&rng, TC_SIZES(N, 4, 6, C)), *y0 = tc_rand(&rng, TC_SIZES(N, 9, 7, C));
        nad_tensor *r = tc_empty(), *want = tc_empty(), *y = tc_zeros(TC_SIZES(N, 9, 7, C));
        cr_assert_eq(nad_resize_bilinear_forward(9, 7, ac, x, r), 0, "%s", nad_last_error());
        cr_assert_eq(nad_add(1, y0, 1, r, want), 0, "%s", nad_last_error());
        cr_assert_eq(nad_tensor_copy(y, y0), 0, "%s", nad_last_error());
        cr_assert_eq(nad_resize_bilinear_accumulate(ac, x, y), 0, "%s", nad_last_error());
        cr_assert(tc_close(y, want, 0, 0), "align_corners %d", ac);
        /* into the middle channel slice of a wider tensor: the rest untouched */
        nad_tensor *wide = tc_zeros(TC_SIZES(N, 9, 7, 3 * C)), *mid = nad_tensor_narrow(wide, 3, C, C);
        cr_assert_eq(nad_tensor_copy(mid, y0), 0, "%s", nad_last_error());
        cr_assert_eq(nad_resize_bilinear_accumulate(ac, x, mid), 0, "%s", nad_last_error());
        for (int n = 0; n < N; n++)
            for (int h = 0; h < 9; h++)
                for (int w = 0; w < 7; w++)
                    for (int c = 0; c < 3 * C; c++) {
                        float want_c = c >= C && c < 2 * C ? *px(want, n, h, w, c - C) : 0.0f;
                        cr_assert_eq(*px(wide, n, h, w, c), want_c);
                    }
        nad_tensor *tensors[] = { x, y0, r, want, y, wide, mid };
        for (size_t i = 0; i < sizeof tensors / sizeof *tensors; i++) nad_tensor_free(tensors[i]);
    }
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 4, 4, 3)), *y = tc_zeros(TC_SIZES(1, 8, 8, 2));
    cr_assert_eq(nad_resize_bilinear_accumulate(0, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "resize_bilinear_accumulate: y [1,8,8,2] does not match "
                                       "x [1,4,4,3] in batch and channels");
    nad_tensor_free(x);
    nad_tensor_free(y);
}

/* accumulate_many: y + resize(x0) + resize(x1) + resize(x2) in one pass, the same bits as
   three accumulates one after the other (maps at three resolutions, both align_corners, 1 and
   2 threads, a contiguous y and a channel slice); its errors name the map */
Test(resize, accumulate_many_is_the_accumulates_in_order)
{
    nad_rng rng;
    nad_rng_init(&rng, 17);
    const int N = 2, C = 16;
    int32_t nt = nad_get_num_threads();
    for (int threads = 1; threads <= 2; threads++)
        for (int ac = 0; ac < 2; ac++) {
            nad_set_num_threads(threads);
            nad_tensor *xs[3] = { tc_rand(&rng, TC_SIZES(N, 25, 25, C)),
                                  tc_rand(&rng, TC_SIZES(N, 13, 13, C)),
                                  tc_rand(&rng, TC_SIZES(N, 7, 7, C)) };
            nad_tensor *y0 = tc_rand(&rng, TC_SIZES(N, 50, 50, C));
            nad_tensor *y = tc_zeros(TC_SIZES(N, 50, 50, C)), *want = tc_zeros(TC_SIZES(N, 50, 50, C));
            cr_assert_eq(nad_tensor_copy(y, y0), 0, "%s", nad_last_error());
            cr_assert_eq(nad_tensor_copy(want, y0), 0, "%s", nad_last_error());
            for (int i = 0; i < 3; i++)
                cr_assert_eq(nad_resize_bilinear_accumulate(ac, xs[i], want), 0, "%s", nad_last_error());
            cr_assert_eq(nad_resize_bilinear_accumulate_many(3, ac, (const nad_tensor *const *)xs, y), 0,
                         "%s", nad_last_error());
            cr_assert(tc_close(y, want, 0, 0), "threads %d ac %d", threads, ac);
            nad_tensor *wide = tc_zeros(TC_SIZES(N, 50, 50, 2 * C)), *hi = nad_tensor_narrow(wide, 3, C, C);
            cr_assert_eq(nad_tensor_copy(hi, y0), 0, "%s", nad_last_error());
            cr_assert_eq(nad_resize_bilinear_accumulate_many(3, ac, (const nad_tensor *const *)xs, hi), 0,
                         "%s", nad_last_error());
            for (int n = 0; n < N; n++)
                for (int h = 0; h < 50; h += 7)
                    for (int w = 0; w < 50; w++)
                        for (int c = 0; c < 2 * C; c++)
                            cr_assert_eq(*px(wide, n, h, w, c), c < C ? 0.0f : *px(want, n, h, w, c - C));
            nad_tensor *tensors[] = { xs[0], xs[1], xs[2], y0, want, y, wide, hi };
            for (size_t i = 0; i < sizeof tensors / sizeof *tensors; i++) nad_tensor_free(tensors[i]);
        }
    nad_set_num_threads(nt);
    nad_tensor *xs[2] = { tc_rand(&rng, TC_SIZES(1, 4, 4, 3)), tc_rand(&rng, TC_SIZES(1, 4, 4, 2)) };
    nad_tensor *y = tc_zeros(TC_SIZES(1, 8, 8, 3));
    cr_assert_eq(nad_resize_bilinear_accumulate_many(2, 0, (const nad_tensor *const *)xs, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "resize_bilinear_accumulate: y [1,8,8,3] does not match "
                                       "xs[1] [1,4,4,2] in batch and channels");
    cr_assert_eq(nad_resize_bilinear_accumulate_many(0, 0, (const nad_tensor *const *)xs, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "resize_bilinear_accumulate: 0 maps, expected 1 to 16");
    const nad_tensor *self[1] = { y };
    cr_assert_eq(nad_resize_bilinear_accumulate_many(1, 0, self, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "resize_bilinear_accumulate: y must not share x's storage");
    nad_tensor_free(xs[0]);
    nad_tensor_free(xs[1]);
    nad_tensor_free(y);
}
