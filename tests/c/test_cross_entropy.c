/* test_cross_entropy.c: cross entropy with an ignore label against a plain loop (also with
   huge logits), dlogits against finite differences, loss and gradient in one pass against the
   two calls, and the label errors. */
#include "check.h"
#include <criterion/criterion.h>

static double ref_loss(const nad_tensor *logits, const nad_tensor *labels, int ignore)
{
    int64_t K = nad_tensor_size(logits, nad_tensor_ndim(logits) - 1);
    int64_t rows = nad_tensor_numel(logits) / K, counted = 0;
    double acc = 0;
    for (int64_t r = 0; r < rows; r++) {
        int lab = (int)*tc_at(labels, r);
        if (lab == ignore) continue;
        const float *x = nad_tensor_data(logits) + r * K;
        double m = x[0], s = 0;
        for (int64_t j = 1; j < K; j++) m = x[j] > m ? x[j] : m;
        for (int64_t j = 0; j < K; j++) s += exp(x[j] - m);
        acc += log(s) + m - x[lab];
        counted++;
    }
    return counted ? acc / counted : 0;
}

/* labels in [0, K) with about a fifth set to ignore */
static nad_tensor *rand_labels(nad_rng *rng, const int64_t *sizes, int32_t nd, int K, int ignore)
{
    nad_tensor *l = nad_tensor_new(nd, sizes);
    for (int64_t i = 0; i < nad_tensor_numel(l); i++) {
        double u = nad_rng_next_double(rng);
        *tc_at(l, i) = u < 0.2 ? (float)ignore : (float)(int)(nad_rng_next_double(rng) * K);
    }
    return l;
}

Test(cross_entropy, forward_matches_loop)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(2, 5, 5, 4));
    for (int64_t i = 0; i < nad_tensor_numel(logits); i++) *tc_at(logits, i) *= 5;
    nad_tensor *labels = rand_labels(&rng, TC_SIZES(2, 5, 5), 4, 255);
    float loss = -1;
    cr_assert_eq(nad_cross_entropy_forward(255, logits, labels, &loss), 0, "%s", nad_last_error());
    cr_assert_float_eq(loss, ref_loss(logits, labels, 255), 1e-5);
    /* stable for logits far beyond expf's range */
    for (int64_t i = 0; i < nad_tensor_numel(logits); i++) *tc_at(logits, i) *= 100;
    cr_assert_eq(nad_cross_entropy_forward(255, logits, labels, &loss), 0, "%s", nad_last_error());
    double want = ref_loss(logits, labels, 255);
    cr_assert(isfinite(loss));
    cr_assert_float_eq(loss, want, 1e-5 * fabs(want));
    /* every row ignored: 0 */
    nad_tensor_fill(labels, 255);
    cr_assert_eq(nad_cross_entropy_forward(255, logits, labels, &loss), 0, "%s", nad_last_error());
    cr_assert_eq(loss, 0.0f);
    nad_tensor_free(logits);
    nad_tensor_free(labels);
}

typedef struct {
    nad_tensor *logits, *labels;
} ce_ctx;

static double ce_loss(void *v)
{
    ce_ctx *c = v;
    float loss;
    nad_cross_entropy_forward(-1, c->logits, c->labels, &loss);
    return loss;
}

Test(cross_entropy, backward_matches_finite_differences)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    ce_ctx c = {tc_rand(&rng, TC_SIZES(3, 4, 5)), rand_labels(&rng, TC_SIZES(12), 5, -1)};
    nad_tensor *d = tc_empty();
    cr_assert_eq(nad_cross_entropy_backward(-1, 1.0f, c.logits, c.labels, d), 0, "%s",
                 nad_last_error());
    cr_assert(tc_gradcheck(ce_loss, &c, c.logits, d, 1e-2, 1e-2, 2e-4));
    /* scale multiplies; ignored rows are zero */
    nad_tensor *d2 = tc_empty();
    cr_assert_eq(nad_cross_entropy_backward(-1, 3.0f, c.logits, c.labels, d2), 0, "%s",
                 nad_last_error());
    for (int64_t i = 0; i < 60; i++) {
        cr_assert_float_eq(*tc_at(d2, i), 3 * *tc_at(d, i), 1e-6);
        if (*tc_at(c.labels, i / 5) == -1) cr_assert_eq(*tc_at(d2, i), 0.0f);
    }
    /* in place */
    cr_assert_eq(nad_cross_entropy_backward(-1, 1.0f, c.logits, c.labels, c.logits), 0, "%s",
                 nad_last_error());
    cr_assert(tc_close(c.logits, d, 0, 0));
    nad_tensor_free(c.logits);
    nad_tensor_free(c.labels);
    nad_tensor_free(d);
    nad_tensor_free(d2);
}

Test(cross_entropy, out_of_range_label_names_the_row)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(2, 3, 4)), *labels = tc_zeros(TC_SIZES(2, 3));
    *tc_at(labels, 4) = 4;
    float loss = 7;
    cr_assert_eq(nad_cross_entropy_forward(255, logits, labels, &loss), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "cross_entropy_forward: label 4 at row 4 is not a class in "
                                       "[0, 4) nor the ignore label 255");
    cr_assert_eq(loss, 7.0f, "loss untouched");
    *tc_at(labels, 4) = 1.5f;
    nad_tensor *d = tc_zeros(TC_SIZES(3));
    cr_assert_eq(nad_cross_entropy_backward(255, 1, logits, labels, d), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "cross_entropy_backward: label 1.5 at row 4 is not a class "
                                       "in [0, 4) nor the ignore label 255");
    cr_assert_eq(nad_tensor_numel(d), 3, "dlogits untouched");
    nad_tensor *short_labels = tc_zeros(TC_SIZES(5));
    cr_assert_eq(nad_cross_entropy_forward(255, logits, short_labels, &loss), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "cross_entropy_forward: labels has 5 elements, logits has 6 rows");
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_tensor_free(d);
    nad_tensor_free(short_labels);
}

/* loss and gradient in one pass: the same bits as the forward and the backward, also in place
   (dlogits = logits), on a map large enough for threads; its label errors name it */
Test(cross_entropy, loss_grad_matches_forward_and_backward)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(2, 90, 70, 5));
    nad_tensor *labels = rand_labels(&rng, TC_SIZES(2, 90, 70), 5, 255);
    nad_tensor *want = tc_empty(), *got = tc_empty(), *inplace = tc_zeros(TC_SIZES(2, 90, 70, 5));
    float want_loss = 0, got_loss = 0, inplace_loss = 0;
    for (int threads = 1; threads <= 2; threads++) {
        nad_set_num_threads(threads);
        cr_assert_eq(nad_cross_entropy_forward(255, logits, labels, &want_loss), 0);
        cr_assert_eq(nad_cross_entropy_backward(255, 0.5f, logits, labels, want), 0);
        cr_assert_eq(nad_cross_entropy_loss_grad(255, 0.5f, logits, labels, &got_loss, got), 0,
                     "%s", nad_last_error());
        cr_assert_eq(got_loss, want_loss);
        cr_assert(tc_close(got, want, 0, 0));
        cr_assert_eq(nad_tensor_copy(inplace, logits), 0);
        cr_assert_eq(nad_cross_entropy_loss_grad(255, 0.5f, inplace, labels, &inplace_loss, inplace), 0);
        cr_assert_eq(inplace_loss, want_loss);
        cr_assert(tc_close(inplace, want, 0, 0));
    }
    nad_set_num_threads(1);
    *tc_at(labels, 7) = 9;
    cr_assert_eq(nad_cross_entropy_loss_grad(255, 1, logits, labels, &got_loss, got), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "cross_entropy_loss_grad: label 9 at row 7 is not a class "
                                       "in [0, 5) nor the ignore label 255");
    cr_assert_eq(got_loss, want_loss, "loss untouched");
    nad_tensor *ts[] = {logits, labels, want, got, inplace};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
}
