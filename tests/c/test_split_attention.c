/* test_split_attention.c: the split attention's two inference passes against the operators
   they replace (split, shift, add, adaptive_avgpool2d, mul), bit for bit, on maps with every
   border case (one row, one column), one and several images, 1 and 2 threads; and errors. */
#include "check.h"
#include <criterion/criterion.h>
#include <string.h>

static const int32_t DIRS1[4] = {NAD_SHIFT_DOWN, NAD_SHIFT_UP, NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT};
static const int32_t DIRS2[4] = {NAD_SHIFT_RIGHT, NAD_SHIFT_LEFT, NAD_SHIFT_DOWN, NAD_SHIFT_UP};

static void check_against_ops(int64_t n, int64_t h, int64_t w, int64_t c, int threads, uint64_t seed)
{
    cr_assert_eq(nad_set_num_threads(threads), 0);
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_tensor *q = tc_rand(&rng, TC_SIZES(n, h, w, c)), *kv = tc_rand(&rng, TC_SIZES(n, h, w, 2 * c));
    nad_tensor *wts = tc_rand(&rng, TC_SIZES(n, c, 3));

    /* the operators, as the training path runs them */
    nad_tensor *k = tc_empty(), *v = tc_empty(), *x1 = tc_empty(), *x2 = tc_empty();
    nad_tensor *s = tc_empty(), *want_a = tc_empty(), *want_y = tc_empty(), *t = tc_empty();
    nad_tensor *parts[2] = {k, v};
    int64_t sizes[2] = {c, c};
    cr_assert_eq(nad_split(kv, 3, 2, sizes, parts), 0, "%s", nad_last_error());
    cr_assert_eq(nad_shift_forward(DIRS1, q, x1), 0);
    cr_assert_eq(nad_shift_forward(DIRS2, k, x2), 0);
    cr_assert_eq(nad_add(1, x1, 1, x2, s), 0);
    cr_assert_eq(nad_add(1, s, 1, v, s), 0);
    cr_assert_eq(nad_adaptive_avgpool2d_forward(1, 1, s, want_a), 0);
    nad_tensor *xs[3] = {x1, x2, v};
    for (int i = 0; i < 3; i++) {
        /* branch weight i as [N,1,1,C] */
        nad_tensor *wi = nad_tensor_new(4, (int64_t[]){n, 1, 1, c});
        for (int64_t a = 0; a < n; a++)
            for (int64_t b = 0; b < c; b++) nad_tensor_data(wi)[a * c + b] = *tc_at(wts, (a * c + b) * 3 + i);
        cr_assert_eq(nad_mul(xs[i], wi, i == 0 ? want_y : t), 0, "%s", nad_last_error());
        if (i) cr_assert_eq(nad_add(1, want_y, 1, t, want_y), 0);
        nad_tensor_free(wi);
    }

    nad_tensor *a = tc_empty(), *y = tc_empty();
    cr_assert_eq(nad_split_attention_pool(DIRS1, DIRS2, q, kv, a), 0, "%s", nad_last_error());
    cr_assert_eq(nad_split_attention_mix(DIRS1, DIRS2, q, kv, wts, y), 0, "%s", nad_last_error());
    cr_assert(tc_close(a, want_a, 0, 0), "pool %lldx%lldx%lldx%lld", (long long)n, (long long)h,
              (long long)w, (long long)c);
    cr_assert(tc_close(y, want_y, 0, 0), "mix %lldx%lldx%lldx%lld", (long long)n, (long long)h,
              (long long)w, (long long)c);
    nad_tensor *ts[] = {q, kv, wts, k, v, x1, x2, s, want_a, want_y, t, a, y};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_set_num_threads(1);
}

Test(split_attention, matches_the_operators_bit_for_bit)
{
    check_against_ops(2, 5, 7, 8, 1, 1);
    check_against_ops(1, 1, 6, 4, 1, 2);   /* one row: the vertical shifts keep every pixel */
    check_against_ops(3, 6, 1, 12, 1, 3);  /* one column */
    check_against_ops(3, 33, 29, 32, 2, 4); /* big enough for threads, odd image count */
}

Test(split_attention, rejects_bad_arguments_by_name)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    nad_tensor *q = tc_rand(&rng, TC_SIZES(1, 3, 3, 8)), *kv = tc_rand(&rng, TC_SIZES(1, 3, 3, 16));
    nad_tensor *q6 = tc_rand(&rng, TC_SIZES(1, 3, 3, 6)), *kv12 = tc_rand(&rng, TC_SIZES(1, 3, 3, 12));
    nad_tensor *wts = tc_rand(&rng, TC_SIZES(1, 8, 3)), *bad_wts = tc_rand(&rng, TC_SIZES(1, 8, 2));
    nad_tensor *a = tc_empty(), *y = tc_empty();
    const int32_t bad_dirs[4] = {0, 1, 7, 2};
    cr_assert_eq(nad_split_attention_pool(DIRS1, DIRS2, q6, kv12, a), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "divisible by 4"), "%s", nad_last_error());
    cr_assert_eq(nad_split_attention_pool(DIRS1, DIRS2, q, kv12, a), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "kv [1,3,3,12]"), "%s", nad_last_error());
    cr_assert_eq(nad_split_attention_pool(DIRS1, bad_dirs, q, kv, a), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "dirs2[2] 7"), "%s", nad_last_error());
    cr_assert_eq(nad_split_attention_mix(DIRS1, DIRS2, q, kv, bad_wts, y), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "wts is [1,8,2]"), "%s", nad_last_error());
    cr_assert_eq(nad_split_attention_mix(DIRS1, DIRS2, q, kv, wts, q), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "y must not share storage"), "%s", nad_last_error());
    cr_assert_eq(nad_tensor_numel(a) + nad_tensor_numel(y), 0, "outputs untouched");
    nad_tensor *ts[] = {q, kv, q6, kv12, wts, bad_wts, a, y};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}
