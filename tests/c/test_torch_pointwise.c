/* test_torch_pointwise.c: adaptive pooling, bilinear resize, GELU and cross entropy against
   PyTorch, and the shift against a transcription of S2-MLPv2's spatial_shift1/2 (files
   written by tests/torch/gen_pointwise.py), to 1e-4 relative. */
#include "check.h"
#include <criterion/criterion.h>

#define RTOL 1e-4
#define ATOL 1e-5

static void free_all(nad_tensor **t, int n)
{
    for (int i = 0; i < n; i++) nad_tensor_free(t[i]);
}

Test(torch_pointwise, adaptive_avgpool)
{
    const int sizes[][2] = {{3, 2}, {1, 1}, {2, 2}, {3, 3}, {6, 6}};
    for (int s = 0; s < 5; s++) {
        char name[64];
        snprintf(name, sizeof name, "adaptive_pool_%dx%d", sizes[s][0], sizes[s][1]);
        nad_tensor *r[4]; /* x, y, dy, dx */
        cr_assert_eq(tc_load_ref(name, r, 4), 4, "%s", name);
        nad_tensor *y = tc_empty(), *dx = tc_empty();
        cr_assert_eq(nad_adaptive_avgpool2d_forward(sizes[s][0], sizes[s][1], r[0], y), 0, "%s",
                     nad_last_error());
        cr_assert(tc_close(y, r[1], RTOL, ATOL), "%s forward", name);
        cr_assert_eq(nad_adaptive_avgpool2d_backward(r[0], r[2], dx), 0, "%s", nad_last_error());
        cr_assert(tc_close(dx, r[3], RTOL, ATOL), "%s dx", name);
        nad_tensor_free(y);
        nad_tensor_free(dx);
        free_all(r, 4);
    }
}

Test(torch_pointwise, resize_bilinear)
{
    const char *names[] = {"resize_ac0_up", "resize_ac1_up", "resize_ac0_down", "resize_ac1_down"};
    for (int s = 0; s < 4; s++) {
        int ac = s % 2;
        nad_tensor *r[4];
        cr_assert_eq(tc_load_ref(names[s], r, 4), 4, "%s", names[s]);
        nad_tensor *y = tc_empty(), *dx = tc_empty();
        int32_t oh = (int32_t)nad_tensor_size(r[1], 1), ow = (int32_t)nad_tensor_size(r[1], 2);
        cr_assert_eq(nad_resize_bilinear_forward(oh, ow, ac, r[0], y), 0, "%s", nad_last_error());
        cr_assert(tc_close(y, r[1], RTOL, ATOL), "%s forward", names[s]);
        cr_assert_eq(nad_resize_bilinear_backward(ac, r[0], r[2], dx), 0, "%s", nad_last_error());
        cr_assert(tc_close(dx, r[3], RTOL, ATOL), "%s dx", names[s]);
        nad_tensor_free(y);
        nad_tensor_free(dx);
        free_all(r, 4);
    }
}

Test(torch_pointwise, gelu)
{
    nad_tensor *r[4];
    cr_assert_eq(tc_load_ref("gelu", r, 4), 4);
    nad_tensor *y = tc_empty(), *dx = tc_empty();
    cr_assert_eq(nad_gelu_forward(r[0], y), 0, "%s", nad_last_error());
    cr_assert(tc_close(y, r[1], RTOL, ATOL));
    cr_assert_eq(nad_gelu_backward(r[0], r[2], dx), 0, "%s", nad_last_error());
    cr_assert(tc_close(dx, r[3], RTOL, ATOL));
    nad_tensor_free(y);
    nad_tensor_free(dx);
    free_all(r, 4);
}

static void check_ce(const char *name, int32_t ignore)
{
    nad_tensor *r[4]; /* logits, labels, loss, dlogits */
    cr_assert_eq(tc_load_ref(name, r, 4), 4, "%s", name);
    float loss;
    cr_assert_eq(nad_cross_entropy_forward(ignore, r[0], r[1], &loss), 0, "%s", nad_last_error());
    float want = *nad_tensor_data(r[2]);
    cr_assert(fabsf(loss - want) <= RTOL * fabsf(want) + ATOL, "%s: %g vs %g", name, loss, want);
    nad_tensor *d = tc_empty();
    cr_assert_eq(nad_cross_entropy_backward(ignore, 1.0f, r[0], r[1], d), 0, "%s",
                 nad_last_error());
    cr_assert(tc_close(d, r[3], RTOL, ATOL), "%s dlogits", name);
    nad_tensor_free(d);
    free_all(r, 4);
}

Test(torch_pointwise, cross_entropy_over_pixels_with_ignore) { check_ce("ce_pixels", 255); }

Test(torch_pointwise, cross_entropy_over_images) { check_ce("ce_images", 255); }

Test(torch_pointwise, shift_reproduces_s2mlpv2)
{
    nad_tensor *r[3]; /* x, spatial_shift1(x), spatial_shift2(x) */
    cr_assert_eq(tc_load_ref("shift_s2mlpv2", r, 3), 3);
    const int32_t shift1[4] = {NAD_SHIFT_DOWN, NAD_SHIFT_UP, NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT};
    const int32_t shift2[4] = {NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT, NAD_SHIFT_DOWN, NAD_SHIFT_UP};
    nad_tensor *y = tc_empty();
    cr_assert_eq(nad_shift_forward(shift1, r[0], y), 0, "%s", nad_last_error());
    cr_assert(tc_close(y, r[1], 0, 0), "shift1");
    cr_assert_eq(nad_shift_forward(shift2, r[0], y), 0, "%s", nad_last_error());
    cr_assert(tc_close(y, r[2], 0, 0), "shift2");
    nad_tensor_free(y);
    free_all(r, 3);
}
