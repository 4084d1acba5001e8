/* test_shift.c: the S2-MLP spatial shift against a plain loop of the slice assignments,
   its backward against finite differences, and the errors. */
#include "check.h"
#include <criterion/criterion.h>

static float *px(const nad_tensor *t, int64_t n, int64_t h, int64_t w, int64_t c)
{
    return nad_tensor_data(t) + ((n * nad_tensor_size(t, 1) + h) * nad_tensor_size(t, 2) + w) *
                                    nad_tensor_size(t, 3) + c;
}

/* S2-MLPv2's slice assignments on a copy: y = x, then e.g. for DOWN y[:, 1:] = x[:, :H-1] */
static void ref_shift(const int32_t *dirs, const nad_tensor *x, nad_tensor *y)
{
    int64_t N = nad_tensor_size(x, 0), H = nad_tensor_size(x, 1), W = nad_tensor_size(x, 2);
    int64_t C = nad_tensor_size(x, 3), Q = C / 4;
    nad_tensor_copy(y, x);
    for (int q = 0; q < 4; q++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t w = 0; w < W; w++)
                    for (int64_t c = q * Q; c < (q + 1) * Q; c++) {
                        switch (dirs[q]) {
                        case NAD_SHIFT_DOWN:
                            if (h >= 1) *px(y, n, h, w, c) = *px(x, n, h - 1, w, c);
                            break;
                        case NAD_SHIFT_UP:
                            if (h < H - 1) *px(y, n, h, w, c) = *px(x, n, h + 1, w, c);
                            break;
                        case NAD_SHIFT_RIGHT:
                            if (w >= 1) *px(y, n, h, w, c) = *px(x, n, h, w - 1, c);
                            break;
                        default:
                            if (w < W - 1) *px(y, n, h, w, c) = *px(x, n, h, w + 1, c);
                        }
                    }
}

static const int32_t SHIFT1[4] = {NAD_SHIFT_DOWN, NAD_SHIFT_UP, NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT};
static const int32_t SHIFT2[4] = {NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT, NAD_SHIFT_DOWN, NAD_SHIFT_UP};

Test(shift, forward_matches_slice_assignments)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    const int32_t *all[] = {SHIFT1, SHIFT2, (const int32_t[]){0, 0, 3, 3}};
    const int64_t shapes[][4] = {{2, 4, 5, 8}, {1, 1, 3, 4}, {1, 3, 1, 12}};
    for (int s = 0; s < 3; s++)
        for (int d = 0; d < 3; d++) {
            nad_tensor *x = tc_rand(&rng, shapes[s], 4), *y = tc_empty();
            nad_tensor *want = tc_zeros(shapes[s], 4);
            cr_assert_eq(nad_shift_forward(all[d], x, y), 0, "%s", nad_last_error());
            ref_shift(all[d], x, want);
            cr_assert(tc_close(y, want, 0, 0), "shape %d dirs %d", s, d);
            nad_tensor_free(x);
            nad_tensor_free(y);
            nad_tensor_free(want);
        }
}

typedef struct {
    const int32_t *dirs;
    nad_tensor *x, *y, *r;
} shift_ctx;

static double shift_loss(void *v)
{
    shift_ctx *c = v;
    nad_shift_forward(c->dirs, c->x, c->y);
    return tc_dot(c->y, c->r);
}

Test(shift, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    const int32_t *all[] = {SHIFT1, SHIFT2};
    const int64_t shapes[][4] = {{2, 3, 4, 8}, {1, 1, 2, 4}};
    for (int s = 0; s < 2; s++)
        for (int d = 0; d < 2; d++) {
            shift_ctx c = {all[d], tc_rand(&rng, shapes[s], 4), tc_empty(),
                           tc_rand(&rng, shapes[s], 4)};
            nad_tensor *dx = tc_empty();
            cr_assert_eq(nad_shift_backward(c.dirs, c.r, dx), 0, "%s", nad_last_error());
            cr_assert(tc_gradcheck(shift_loss, &c, c.x, dx, 1e-2, 1e-3, 1e-4));
            nad_tensor_free(c.x);
            nad_tensor_free(c.y);
            nad_tensor_free(c.r);
            nad_tensor_free(dx);
        }
}

Test(shift, bad_arguments_are_errors)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 3, 3, 6)), *y = tc_zeros(TC_SIZES(2));
    cr_assert_eq(nad_shift_forward(SHIFT1, x, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "shift_forward: x has 6 channels, not divisible by 4");
    cr_assert_eq(nad_tensor_numel(y), 2, "y untouched");
    nad_tensor *x8 = tc_rand(&rng, TC_SIZES(1, 3, 3, 8));
    cr_assert_eq(nad_shift_forward((const int32_t[]){0, 1, 4, 2}, x8, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "shift_forward: dirs[2] is 4, not a NAD_SHIFT_* direction");
    cr_assert_eq(nad_shift_backward(SHIFT2, x8, x8), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "shift_backward: dx must not be dy");
    nad_tensor_free(x);
    nad_tensor_free(x8);
    nad_tensor_free(y);
}
