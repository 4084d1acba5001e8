/* test_linear.c: nad_linear_forward/backward against plain loops and finite differences,
   with x a column slice and w, b, dw leading slices of larger tensors (weight entanglement),
   and the accumulating forward against forward + add. */
#include "check.h"
#include <criterion/criterion.h>
#include <string.h>

/* y[r, o] = sum_i x[r, i] w[o, i] + b[o], x read as [rows, in] through tc_at */
static void ref_linear(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                       nad_tensor *y)
{
    int64_t out = nad_tensor_size(w, 0), in = nad_tensor_size(w, 1);
    int64_t rows = nad_tensor_numel(x) / in;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? *tc_at(b, o) : 0;
            for (int64_t i = 0; i < in; i++)
                acc += (double)*tc_at(x, r * in + i) * *tc_at(w, o * in + i);
            *tc_at(y, r * out + o) = (float)acc;
        }
}

Test(linear, forward_matches_loop)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 3, 5)), *w = tc_rand(&rng, TC_SIZES(4, 5));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(4)), *y = tc_empty();
    nad_tensor *want = tc_zeros(TC_SIZES(2, 3, 4));
    cr_assert_eq(nad_linear_forward(x, w, b, y), 0, "%s", nad_last_error());
    cr_assert_eq(nad_tensor_ndim(y), 3);
    cr_assert_eq(nad_tensor_size(y, 2), 4);
    ref_linear(x, w, b, want);
    cr_assert(tc_close(y, want, 1e-5, 1e-6));
    /* without bias */
    cr_assert_eq(nad_linear_forward(x, w, NULL, y), 0, "%s", nad_last_error());
    ref_linear(x, w, NULL, want);
    cr_assert(tc_close(y, want, 1e-5, 1e-6));
    nad_tensor *all[] = {x, w, b, y, want};
    for (int i = 0; i < 5; i++) nad_tensor_free(all[i]);
}

/* x = X[:, :5] (rows 9 apart), w = W[:4, :5] of W[7, 9], b = B[:4]: the same result as
   contiguous copies of those slices. */
Test(linear, sliced_weights_match_contiguous_copies)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_tensor *X = tc_rand(&rng, TC_SIZES(2, 3, 9)), *W = tc_rand(&rng, TC_SIZES(7, 9));
    nad_tensor *B = tc_rand(&rng, TC_SIZES(7));
    nad_tensor *x = nad_tensor_narrow(X, 2, 0, 5), *w0 = nad_tensor_narrow(W, 0, 0, 4);
    nad_tensor *w = nad_tensor_narrow(w0, 1, 0, 5), *b = nad_tensor_narrow(B, 0, 0, 4);
    cr_assert(!nad_tensor_is_contiguous(x) && !nad_tensor_is_contiguous(w));
    nad_tensor *xc = tc_zeros(TC_SIZES(2, 3, 5)), *wc = tc_zeros(TC_SIZES(4, 5));
    nad_tensor *bc = tc_zeros(TC_SIZES(4));
    nad_tensor_copy(xc, x);
    nad_tensor_copy(wc, w);
    nad_tensor_copy(bc, b);
    nad_tensor *y = tc_empty(), *yc = tc_empty();
    cr_assert_eq(nad_linear_forward(x, w, b, y), 0, "%s", nad_last_error());
    cr_assert_eq(nad_linear_forward(xc, wc, bc, yc), 0, "%s", nad_last_error());
    cr_assert(tc_close(y, yc, 1e-6, 1e-7));

    /* backward: dW[:4, :5] accumulates onto 1s, the rest of dW stays 1 */
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(2, 3, 4));
    nad_tensor *dW = tc_zeros(TC_SIZES(7, 9)), *dB = tc_zeros(TC_SIZES(7));
    nad_tensor_fill(dW, 1.0f);
    nad_tensor_fill(dB, 1.0f);
    nad_tensor *dw0 = nad_tensor_narrow(dW, 0, 0, 4), *dw = nad_tensor_narrow(dw0, 1, 0, 5);
    nad_tensor *db = nad_tensor_narrow(dB, 0, 0, 4);
    nad_tensor *dwc = tc_zeros(TC_SIZES(4, 5)), *dbc = tc_zeros(TC_SIZES(4));
    nad_tensor_fill(dwc, 1.0f);
    nad_tensor_fill(dbc, 1.0f);
    nad_tensor *dx = tc_empty(), *dxc = tc_empty();
    cr_assert_eq(nad_linear_backward(x, w, dy, dx, dw, db), 0, "%s", nad_last_error());
    cr_assert_eq(nad_linear_backward(xc, wc, dy, dxc, dwc, dbc), 0, "%s", nad_last_error());
    cr_assert(nad_tensor_is_contiguous(dx));
    cr_assert(tc_close(dx, dxc, 1e-6, 1e-7));
    cr_assert(tc_close(dw, dwc, 1e-6, 1e-7));
    cr_assert(tc_close(db, dbc, 1e-6, 1e-7));
    double outside = nad_tensor_sum(dW) - nad_tensor_sum(dw);
    cr_assert_float_eq(outside, 7 * 9 - 4 * 5, 1e-6);
    cr_assert_float_eq(nad_tensor_sum(dB) - nad_tensor_sum(db), 3, 1e-6);
    nad_tensor *all[] = {X, W, B, x, w0, w, b, xc, wc, bc, y, yc, dy, dW, dB, dw0, dw, db,
                         dwc, dbc, dx, dxc};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

typedef struct {
    nad_tensor *x, *w, *b, *y, *r;
} lin_ctx;

static double lin_loss(void *p)
{
    lin_ctx *c = p;
    nad_linear_forward(c->x, c->w, c->b, c->y);
    return tc_dot(c->y, c->r);
}

Test(linear, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *W = tc_rand(&rng, TC_SIZES(5, 6));
    nad_tensor *w0 = nad_tensor_narrow(W, 0, 0, 3), *w = nad_tensor_narrow(w0, 1, 0, 4);
    lin_ctx c = {tc_rand(&rng, TC_SIZES(2, 3, 4)), w, tc_rand(&rng, TC_SIZES(3)), tc_empty(),
                 tc_rand(&rng, TC_SIZES(2, 3, 3))};
    nad_tensor *dx = tc_empty(), *dw = tc_zeros(TC_SIZES(3, 4)), *db = tc_zeros(TC_SIZES(3));
    cr_assert_eq(nad_linear_backward(c.x, c.w, c.r, dx, dw, db), 0, "%s", nad_last_error());
    cr_assert(tc_gradcheck(lin_loss, &c, c.x, dx, 1e-2, 1e-3, 1e-4));
    cr_assert(tc_gradcheck(lin_loss, &c, c.w, dw, 1e-2, 1e-3, 1e-4));
    cr_assert(tc_gradcheck(lin_loss, &c, c.b, db, 1e-2, 1e-3, 1e-4));
    /* a NULL output is skipped, and the others still come out */
    nad_tensor *dw2 = tc_zeros(TC_SIZES(3, 4));
    cr_assert_eq(nad_linear_backward(c.x, c.w, c.r, NULL, dw2, NULL), 0, "%s", nad_last_error());
    cr_assert(tc_close(dw2, dw, 1e-6, 1e-7));
    nad_tensor *all[] = {W, w0, w, c.x, c.b, c.y, c.r, dx, dw, db, dw2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

Test(linear, rejects_bad_shapes_and_leaves_outputs_untouched)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(2, 5)), *w = tc_rand(&rng, TC_SIZES(3, 4));
    nad_tensor *y = tc_zeros(TC_SIZES(7));
    cr_assert_eq(nad_linear_forward(x, w, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "linear_forward: x has 5 features, w expects 4");
    cr_assert_eq(nad_tensor_size(y, 0), 7);

    nad_tensor *w2 = tc_rand(&rng, TC_SIZES(3, 5)), *b = tc_rand(&rng, TC_SIZES(4));
    cr_assert_eq(nad_linear_forward(x, w2, b, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "linear_forward: b has 4 elements, w has 3 outputs");

    nad_tensor *dy = tc_rand(&rng, TC_SIZES(2, 4)), *dx = tc_empty();
    cr_assert_eq(nad_linear_backward(x, w2, dy, dx, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "linear_backward: dy is [2,4] but x is [2,5] and w has 3 outputs");
    cr_assert_eq(nad_tensor_size(dx, 0), 0);

    /* a transposed weight has no unit stride along in */
    nad_tensor *wt = nad_tensor_permute(w2, (const int32_t[]){1, 0});
    nad_tensor *x3 = tc_rand(&rng, TC_SIZES(2, 3));
    cr_assert_eq(nad_linear_forward(x3, wt, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "linear_forward: w's last dim must have unit stride");
    nad_tensor *all[] = {x, w, y, w2, b, dy, dx, wt, x3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nad_tensor_free(all[i]);
}

/* y += x w^T + b: the same bits as linear_forward then add (the kernel's order, and the
   OpenBLAS path's for products of fewer than 12 rows); y keeps its shape, and a wrong one or
   y aliasing x is an error that leaves y alone */
Test(linear, forward_acc_matches_forward_then_add)
{
    nad_rng rng;
    nad_rng_init(&rng, 21);
    const int64_t row_counts[] = {5, 300};
    for (int i = 0; i < 2; i++) {
        int64_t n = row_counts[i];
        nad_tensor *x = tc_rand(&rng, TC_SIZES(n, 24)), *w = tc_rand(&rng, TC_SIZES(20, 24));
        nad_tensor *b = tc_rand(&rng, TC_SIZES(20)), *r = tc_rand(&rng, TC_SIZES(n, 20));
        nad_tensor *m = tc_empty(), *want = tc_empty(), *y = tc_zeros(TC_SIZES(n, 20));
        cr_assert_eq(nad_linear_forward(x, w, b, m), 0);
        cr_assert_eq(nad_add(1, r, 1, m, want), 0);
        cr_assert_eq(nad_tensor_copy(y, r), 0);
        cr_assert_eq(nad_linear_forward_acc(x, w, b, y), 0, "%s", nad_last_error());
        cr_assert(tc_close(y, want, 0, 0), "%lld rows", (long long)n);
        nad_tensor *ts[] = {x, w, b, r, m, want, y};
        for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) nad_tensor_free(ts[k]);
    }
    nad_tensor *x = tc_rand(&rng, TC_SIZES(6, 8)), *w = tc_rand(&rng, TC_SIZES(4, 8));
    nad_tensor *y = tc_zeros(TC_SIZES(6, 5));
    cr_assert_eq(nad_linear_forward_acc(x, w, NULL, y), NAD_EINVAL);
    cr_assert(strstr(nad_last_error(), "linear_forward_acc: y is [6,5]"), "%s", nad_last_error());
    cr_assert_eq(nad_tensor_sum(y), 0, "y untouched");
    nad_tensor_free(x), nad_tensor_free(w), nad_tensor_free(y);
}

/* where the weight gradient's kernel runs, db's sums are made in its pass: the bits of a sum
   in double over the rows in order, added to db's old value; for C's rows split by column
   blocks (many inputs) and by row groups (few), a strided db view, at 1 and 2 threads */
Test(linear, bias_gradient_in_the_weight_gradient_pass_keeps_its_bits)
{
    static const int64_t shapes[][3] = {{300, 256, 40}, {260, 32, 50}, {129, 48, 7}};
    for (int threads = 1; threads <= 2; threads++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            nad_set_num_threads(threads);
            int64_t rows = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
            nad_rng rng;
            nad_rng_init(&rng, 11 + s);
            nad_tensor *x = tc_rand(&rng, TC_SIZES(rows, in)), *w = tc_rand(&rng, TC_SIZES(out, in));
            nad_tensor *dy = tc_rand(&rng, TC_SIZES(rows, out)), *dx = tc_empty();
            nad_tensor *dw = tc_zeros(TC_SIZES(out, in)), *dB = tc_rand(&rng, TC_SIZES(out, out));
            nad_tensor *db = nad_tensor_diagonal(dB, 0, 1); /* stride out + 1 */
            float want[64];
            for (int64_t o = 0; o < out; o++) {
                double acc = 0;
                for (int64_t r = 0; r < rows; r++) acc += nad_tensor_data(dy)[r * out + o];
                want[o] = *tc_at(db, o) + (float)acc;
            }
            cr_assert_eq(nad_linear_backward(x, w, dy, dx, dw, db), 0, "%s", nad_last_error());
            for (int64_t o = 0; o < out; o++)
                cr_assert(!memcmp(tc_at(db, o), &want[o], sizeof(float)),
                          "db[%lld], %lld x %lld -> %lld, %d threads", (long long)o,
                          (long long)rows, (long long)in, (long long)out, threads);
            nad_tensor *all[] = {x, w, dy, dx, dw, dB, db};
            for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nad_tensor_free(all[i]);
        }
    nad_set_num_threads(1);
}
