/* test_confusion.c: the confusion matrix against a plain loop (small and threaded sizes, ties,
   NaN, accumulation, 1 vs 2 threads) and its error messages (first bad row named, matrix
   untouched). */
#include "check.h"
#include <criterion/criterion.h>
#include <stdlib.h>

/* the plain loop: matrix[label * K + argmax] += 1 over rows whose label is not ignore */
static void ref_confusion(const nad_tensor *logits, const nad_tensor *labels, int ignore,
                          int64_t *m)
{
    int64_t K = nad_tensor_size(logits, nad_tensor_ndim(logits) - 1);
    int64_t rows = nad_tensor_numel(logits) / K;
    for (int64_t r = 0; r < rows; r++) {
        int lab = (int)*tc_at(labels, r);
        if (lab == ignore) continue;
        int64_t best = 0;
        for (int64_t j = 1; j < K; j++)
            if (*tc_at(logits, r * K + j) > *tc_at(logits, r * K + best)) best = j;
        m[lab * K + best]++;
    }
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

static void expect_same(const int64_t *a, const int64_t *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(a[i], b[i], "cell %lld: %lld vs %lld", (long long)i, (long long)a[i],
                     (long long)b[i]);
}

Test(confusion, small_matches_loop_and_accumulates)
{
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(2, 5, 5, 4));
    nad_tensor *labels = rand_labels(&rng, TC_SIZES(2, 5, 5), 4, 255);
    int64_t m[16] = {0}, want[16] = {0};
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m), 0, "%s", nad_last_error());
    ref_confusion(logits, labels, 255, want);
    expect_same(m, want, 16);
    int64_t total = 0, counted = 0;
    for (int i = 0; i < 16; i++) total += m[i];
    for (int64_t r = 0; r < 50; r++) counted += *tc_at(labels, r) != 255;
    cr_assert_eq(total, counted, "one count per labelled row");
    cr_assert(counted > 30 && counted < 50, "the test has ignored rows and counted rows");
    /* a second call adds */
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m), 0, "%s", nad_last_error());
    for (int i = 0; i < 16; i++) cr_assert_eq(m[i], 2 * want[i]);
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_workspace_free(ws);
}

Test(confusion, hand_case_ties_and_nan)
{
    /* rows: argmax 1; tie between 0 and 2 -> 0; NaN first -> 2; all NaN -> 0; ignored */
    const float x[5][3] = {{0, 5, 1}, {3, 1, 3}, {NAN, 0, 2}, {NAN, NAN, NAN}, {9, 0, 0}};
    const float y[5] = {1, 2, 2, 1, -1};
    nad_tensor *logits = tc_zeros(TC_SIZES(5, 3)), *labels = tc_zeros(TC_SIZES(5));
    memcpy(nad_tensor_data(logits), x, sizeof x);
    memcpy(nad_tensor_data(labels), y, sizeof y);
    nad_workspace *ws = nad_workspace_new(0);
    int64_t m[9] = {0};
    cr_assert_eq(nad_confusion_update(ws, -1, logits, labels, m), 0, "%s", nad_last_error());
    const int64_t want[9] = {0, 0, 0, /* true 1: */ 1, 1, 0, /* true 2: */ 1, 0, 1};
    expect_same(m, want, 9);
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_workspace_free(ws);
}

Test(confusion, threaded_size_matches_loop_for_1_and_2_threads)
{
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_workspace *ws = nad_workspace_new(0);
    /* 20480 rows x 5 classes: above the parallel threshold */
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(5, 64, 64, 5));
    nad_tensor *labels = rand_labels(&rng, TC_SIZES(5, 64, 64), 5, 255);
    int64_t want[25] = {0}, m1[25] = {0}, m2[25] = {0};
    ref_confusion(logits, labels, 255, want);
    int32_t saved = nad_get_num_threads();
    nad_set_num_threads(1);
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m1), 0, "%s", nad_last_error());
    nad_set_num_threads(2);
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m2), 0, "%s", nad_last_error());
    nad_set_num_threads(saved);
    expect_same(m1, want, 25);
    expect_same(m2, want, 25);
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_workspace_free(ws);
}

Test(confusion, bad_label_names_the_first_row_and_leaves_matrix)
{
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(2, 3, 4)), *labels = tc_zeros(TC_SIZES(2, 3));
    *tc_at(labels, 4) = 4;
    int64_t m[16];
    for (int i = 0; i < 16; i++) m[i] = 7;
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "confusion_update: label 4 at row 4 is not a class in "
                                       "[0, 4) nor the ignore label 255");
    for (int i = 0; i < 16; i++) cr_assert_eq(m[i], 7, "matrix untouched");
    *tc_at(labels, 4) = 1.5f;
    cr_assert_eq(nad_confusion_update(ws, 255, logits, labels, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "confusion_update: label 1.5 at row 4 is not a class in "
                                       "[0, 4) nor the ignore label 255");
    nad_tensor *short_labels = tc_zeros(TC_SIZES(5));
    cr_assert_eq(nad_confusion_update(ws, 255, logits, short_labels, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "confusion_update: labels has 5 elements, logits has 6 rows");
    cr_assert_eq(nad_confusion_update(NULL, 255, logits, labels, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "confusion_update: workspace: NULL workspace");
    for (int i = 0; i < 16; i++) cr_assert_eq(m[i], 7, "matrix untouched");
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_tensor_free(short_labels);
    nad_workspace_free(ws);
}

Test(confusion, threaded_failure_names_the_first_bad_row)
{
    nad_rng rng;
    nad_rng_init(&rng, 4);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *logits = tc_rand(&rng, TC_SIZES(4, 64, 64, 3));
    nad_tensor *labels = tc_zeros(TC_SIZES(4, 64, 64));
    /* bad rows in both threads' halves: the lower one is reported */
    *tc_at(labels, 15000) = -3;
    *tc_at(labels, 6000) = 3;
    int64_t m[9] = {0};
    int32_t saved = nad_get_num_threads();
    nad_set_num_threads(2);
    int rc = nad_confusion_update(ws, 255, logits, labels, m);
    nad_set_num_threads(saved);
    cr_assert_eq(rc, NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "confusion_update: label 3 at row 6000 is not a class in "
                                       "[0, 3) nor the ignore label 255");
    for (int i = 0; i < 9; i++) cr_assert_eq(m[i], 0, "matrix untouched");
    nad_tensor_free(logits);
    nad_tensor_free(labels);
    nad_workspace_free(ws);
}
