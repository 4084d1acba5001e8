/* test_concat.c: concat along each dim (views as inputs) against a plain loop, split as its
   exact inverse (so its backward), and the shape errors. */
#include "check.h"
#include <criterion/criterion.h>

/* y[idx] for idx in y's shape: which part along dim, and the element of that part */
static float concat_ref(nad_tensor *const *xs, int32_t dim, const int64_t *ysize, int32_t nd,
                        int64_t i)
{
    int64_t idx[NAD_MAX_DIMS];
    for (int32_t d = nd - 1; d >= 0; d--) {
        idx[d] = i % ysize[d];
        i /= ysize[d];
    }
    int k = 0;
    while (idx[dim] >= nad_tensor_size(xs[k], dim)) idx[dim] -= nad_tensor_size(xs[k++], dim);
    int64_t off = 0;
    for (int32_t d = 0; d < nd; d++) off += idx[d] * nad_tensor_stride(xs[k], d);
    return nad_tensor_data(xs[k])[off];
}

Test(concat, matches_loop_along_every_dim)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    for (int32_t dim = 0; dim < 4; dim++) {
        int64_t s0[4] = {2, 3, 4, 5}, s1[4] = {2, 3, 4, 5}, s2[4] = {2, 3, 4, 5};
        s0[dim] = 1;
        s2[dim] = 3;
        nad_tensor *x0 = tc_rand(&rng, s0, 4), *x2 = tc_rand(&rng, s2, 4);
        /* the middle input is a strided slice of a wider tensor */
        const int64_t wide[4] = {2, 3, 4, 9};
        nad_tensor *w = tc_rand(&rng, wide, 4), *x1t = nad_tensor_narrow(w, 3, 2, s1[3]);
        nad_tensor *xs[3] = {x0, x1t, x2}, *y = tc_empty();
        cr_assert_eq(nad_concat(3, (const nad_tensor *const *)xs, dim, y), 0, "%s",
                     nad_last_error());
        int64_t ys[4] = {2, 3, 4, 5};
        ys[dim] = s0[dim] + s1[dim] + s2[dim];
        for (int32_t d = 0; d < 4; d++) cr_assert_eq(nad_tensor_size(y, d), ys[d], "dim %d", dim);
        for (int64_t i = 0; i < nad_tensor_numel(y); i++)
            cr_assert_eq(*tc_at(y, i), concat_ref(xs, dim, ys, 4, i), "dim %d el %lld", dim,
                         (long long)i);
        /* split back: the parts come out equal to the inputs, into a strided view too */
        nad_tensor *p0 = tc_empty(), *p2 = tc_empty();
        nad_tensor *w2 = tc_zeros(wide, 4), *p1 = nad_tensor_narrow(w2, 3, 1, s1[3]);
        nad_tensor *ps[3] = {p0, p1, p2};
        int64_t sizes[3] = {s0[dim], s1[dim], s2[dim]};
        cr_assert_eq(nad_split(y, dim, 3, sizes, ps), 0, "%s", nad_last_error());
        cr_assert(tc_close(p0, x0, 0, 0));
        cr_assert(tc_close(p1, x1t, 0, 0));
        cr_assert(tc_close(p2, x2, 0, 0));
        cr_assert_eq(*tc_at(w2, 0), 0.0f, "outside the view untouched");
        nad_tensor *trash[] = {x0, x2, w, x1t, y, p0, p1, p2, w2};
        for (int i = 0; i < 9; i++) nad_tensor_free(trash[i]);
    }
}

Test(concat, mismatched_inputs_are_an_error)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_tensor *a = tc_rand(&rng, TC_SIZES(2, 4, 4, 3)), *b = tc_rand(&rng, TC_SIZES(2, 4, 5, 3));
    nad_tensor *y = tc_zeros(TC_SIZES(7));
    const nad_tensor *xs[2] = {a, b};
    cr_assert_eq(nad_concat(2, xs, 3, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "concat: xs[1] is [2,4,5,3] but xs[0] is [2,4,4,3] "
                                       "(sizes must match except along dim 3)");
    cr_assert_eq(nad_tensor_numel(y), 7, "y untouched");
    cr_assert_eq(nad_concat(2, xs, 4, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "concat: dim 4 is outside 0..3");
    nad_tensor *p0 = tc_empty(), *p1 = tc_empty(), *ps[2] = {p0, p1};
    int64_t sizes[2] = {1, 1};
    cr_assert_eq(nad_split(a, 3, 2, sizes, ps), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "split: sizes add up to 2 but y has 3 along dim 3");
    cr_assert_eq(nad_tensor_numel(p0), 0, "outputs untouched");
    nad_tensor_free(a);
    nad_tensor_free(b);
    nad_tensor_free(y);
    nad_tensor_free(p0);
    nad_tensor_free(p1);
}
