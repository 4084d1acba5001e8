/* test_pool.c: average and adaptive average pooling (channels-last) against plain loops,
   their backward against finite differences, and the errors. */
#include "check.h"
#include <criterion/criterion.h>

static float *px(nad_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c)
{
    return nad_tensor_data(t) + ((n * nad_tensor_size(t, 1) + h) * nad_tensor_size(t, 2) + w) *
                                    nad_tensor_size(t, 3) + c;
}

Test(pool, avgpool_matches_loop_with_padding)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    const int k = 3, s = 2, p = 1, N = 2, H = 7, W = 6, C = 3;
    nad_tensor *x = tc_rand(&rng, TC_SIZES(N, H, W, C)), *y = tc_empty();
    cr_assert_eq(nad_avgpool2d_forward(k, s, p, x, y), 0, "%s", nad_last_error());
    const int Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    cr_assert_eq(nad_tensor_size(y, 1), Ho);
    cr_assert_eq(nad_tensor_size(y, 2), Wo);
    for (int n = 0; n < N; n++)
        for (int oh = 0; oh < Ho; oh++)
            for (int ow = 0; ow < Wo; ow++)
                for (int c = 0; c < C; c++) {
                    double acc = 0;
                    for (int i = 0; i < k; i++)
                        for (int j = 0; j < k; j++) {
                            int h = oh * s - p + i, w = ow * s - p + j;
                            if (h >= 0 && h < H && w >= 0 && w < W) acc += *px(x, n, h, w, c);
                        }
                    cr_assert_float_eq(*px(y, n, oh, ow, c), acc / (k * k), 1e-6);
                }
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(pool, adaptive_matches_loop_on_uneven_bins)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    const int N = 2, H = 7, W = 5, C = 4;
    nad_tensor *x = tc_rand(&rng, TC_SIZES(N, H, W, C)), *y = tc_empty();
    const int outs[][2] = {{3, 2}, {1, 1}, {2, 2}, {6, 6}, {7, 5}};
    for (int t = 0; t < 5; t++) {
        int Ho = outs[t][0], Wo = outs[t][1];
        cr_assert_eq(nad_adaptive_avgpool2d_forward(Ho, Wo, x, y), 0, "%s", nad_last_error());
        for (int n = 0; n < N; n++)
            for (int oh = 0; oh < Ho; oh++)
                for (int ow = 0; ow < Wo; ow++) {
                    int h0 = (int)floor((double)oh * H / Ho), h1 = (int)ceil((oh + 1.0) * H / Ho);
                    int w0 = (int)floor((double)ow * W / Wo), w1 = (int)ceil((ow + 1.0) * W / Wo);
                    for (int c = 0; c < C; c++) {
                        double acc = 0;
                        for (int h = h0; h < h1; h++)
                            for (int w = w0; w < w1; w++) acc += *px(x, n, h, w, c);
                        acc /= (h1 - h0) * (w1 - w0);
                        cr_assert_float_eq(*px(y, n, oh, ow, c), acc, 1e-6, "%dx%d", Ho, Wo);
                    }
                }
    }
    nad_tensor_free(x);
    nad_tensor_free(y);
}

typedef struct {
    int k, s, p, oh, ow; /* oh > 0: adaptive */
    nad_tensor *x, *y, *r;
} pool_ctx;

static double pool_loss(void *v)
{
    pool_ctx *c = v;
    if (c->oh)
        nad_adaptive_avgpool2d_forward(c->oh, c->ow, c->x, c->y);
    else
        nad_avgpool2d_forward(c->k, c->s, c->p, c->x, c->y);
    return tc_dot(c->y, c->r);
}

static void check_pool_grad(pool_ctx c, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    c.x = tc_rand(&rng, TC_SIZES(2, 7, 5, 3));
    c.y = tc_empty();
    c.r = tc_zeros(TC_SIZES(1));
    pool_loss(&c); /* sizes y */
    nad_tensor_resize(c.r, 4, (int64_t[]){2, nad_tensor_size(c.y, 1), nad_tensor_size(c.y, 2), 3});
    nad_rng_uniform(&rng, -1, 1, c.r);
    nad_tensor *dx = tc_empty();
    int rc = c.oh ? nad_adaptive_avgpool2d_backward(c.x, c.r, dx)
                  : nad_avgpool2d_backward(c.k, c.s, c.p, c.x, c.r, dx);
    cr_assert_eq(rc, 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(pool_loss, &c, c.x, dx, 1e-2, 1e-3, 1e-4));
    nad_tensor_free(c.x);
    nad_tensor_free(c.y);
    nad_tensor_free(c.r);
    nad_tensor_free(dx);
}

Test(pool, backward_matches_finite_differences)
{
    check_pool_grad((pool_ctx){.k = 3, .s = 2, .p = 1}, 3);
    check_pool_grad((pool_ctx){.k = 2, .s = 1, .p = 0}, 4);
    check_pool_grad((pool_ctx){.k = 3, .s = 3, .p = 0}, 5);
    check_pool_grad((pool_ctx){.oh = 3, .ow = 2}, 6);
    check_pool_grad((pool_ctx){.oh = 6, .ow = 4}, 7);
    check_pool_grad((pool_ctx){.oh = 1, .ow = 1}, 8);
}

Test(pool, bad_shapes_are_errors)
{
    nad_rng rng;
    nad_rng_init(&rng, 9);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 2, 2, 3)), *y = tc_zeros(TC_SIZES(4));
    cr_assert_eq(nad_avgpool2d_forward(3, 1, 0, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "avgpool2d_forward: x is 2x2, smaller than the 3x3 window");
    cr_assert_eq(nad_tensor_numel(y), 4, "y untouched");
    cr_assert_eq(nad_avgpool2d_forward(3, 1, 2, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "avgpool2d_forward: pad 2 is more than half of k 3");
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(1, 2, 2, 4)), *dx = tc_empty();
    cr_assert_eq(nad_adaptive_avgpool2d_backward(x, dy, dx), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "adaptive_avgpool2d_backward: dy [1,2,2,4] does not pool x [1,2,2,3]");
    nad_tensor_free(x);
    nad_tensor_free(y);
    nad_tensor_free(dy);
    nad_tensor_free(dx);
}
