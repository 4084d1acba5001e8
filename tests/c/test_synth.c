/* test_synth.c: generated defect images: determinism by (seed, index), labels and masks as
   documented, class balance, value range, difficulty (no global threshold segments them)
   and error messages. */
#include "check.h"
#include <criterion/criterion.h>

typedef struct {
    nad_workspace *ws;
    nad_tensor *img, *mask;
    int32_t label;
} sample;

static void gen(sample *s, const nad_synth_params *p, uint64_t seed, int64_t index)
{
    if (!s->ws) {
        s->ws = nad_workspace_new(0);
        s->img = tc_empty();
        s->mask = tc_empty();
    }
    cr_assert_eq(nad_synth_sample(s->ws, p, seed, index, s->img, s->mask, &s->label), 0, "%s",
                 nad_last_error());
}

static void drop(sample *s)
{
    nad_workspace_free(s->ws);
    nad_tensor_free(s->img);
    nad_tensor_free(s->mask);
}

static int same(const nad_tensor *a, const nad_tensor *b)
{
    return nad_tensor_numel(a) == nad_tensor_numel(b) &&
           memcmp(nad_tensor_data(a), nad_tensor_data(b),
                  (size_t)nad_tensor_numel(a) * sizeof(float)) == 0;
}

Test(synth, sample_depends_only_on_seed_and_index)
{
    nad_synth_params p = {40, 48, NAD_SYNTH_MIXED, 0};
    sample a = {0}, b = {0};
    gen(&a, &p, 123, 7);
    nad_tensor *img7 = tc_clone(a.img), *mask7 = tc_clone(a.mask);
    int32_t label7 = a.label;
    /* other samples in between, in another order, on another workspace */
    for (int64_t i = 12; i >= 0; i--) gen(&b, &p, 123, i);
    gen(&b, &p, 999, 7);
    gen(&b, &p, 123, 7);
    cr_assert(same(b.img, img7) && same(b.mask, mask7) && b.label == label7);
    /* another seed or index gives another image */
    gen(&b, &p, 124, 7);
    cr_assert(!same(b.img, img7));
    gen(&b, &p, 123, 12);
    cr_assert(!same(b.img, img7));
    /* without a mask the image is the same */
    int32_t lab = -1;
    cr_assert_eq(nad_synth_sample(b.ws, &p, 123, 7, b.img, NULL, &lab), 0);
    cr_assert(same(b.img, img7) && lab == label7);
    nad_tensor_free(img7);
    nad_tensor_free(mask7);
    drop(&a);
    drop(&b);
}

Test(synth, labels_cycle_masks_hold_the_label_and_values_lie_in_range)
{
    nad_synth_params p = {32, 32, NAD_SYNTH_MIXED, 0};
    sample s = {0};
    for (int64_t i = 0; i < 20; i++) {
        gen(&s, &p, 5, i);
        cr_assert_eq(s.label, (int32_t)(i % 5) + 1, "all classes: label is the id");
        cr_assert_eq(nad_tensor_ndim(s.img), 3);
        cr_assert_eq(nad_tensor_size(s.img, 2), 1);
        int64_t n = 32 * 32, defect = 0;
        double sum = 0, sum2 = 0;
        for (int64_t k = 0; k < n; k++) {
            float v = nad_tensor_data(s.img)[k], m = nad_tensor_data(s.mask)[k];
            cr_assert(v >= 0 && v <= 1, "value %g outside [0, 1]", v);
            cr_assert(m == 0 || m == (float)s.label, "mask value %g in a class %d sample", m,
                      s.label);
            defect += m != 0;
            sum += v;
            sum2 += (double)v * v;
        }
        cr_assert(defect > 0, "sample %lld of class %d has an empty mask", (long long)i, s.label);
        cr_assert(defect < n / 2, "sample %lld: defect covers %lld of %lld", (long long)i,
                  (long long)defect, (long long)n);
        double var = sum2 / n - (sum / n) * (sum / n);
        cr_assert(var > 1e-4, "sample %lld is flat (variance %g)", (long long)i, var);
    }
    /* a subset with defect-free samples: none, pit, inclusion -> labels 0, 1, 2 */
    p.class_mask = 1u << NAD_SYNTH_NONE | 1u << NAD_SYNTH_PIT | 1u << NAD_SYNTH_INCLUSION;
    p.height = 17;
    p.width = 33;
    for (int64_t i = 0; i < 9; i++) {
        gen(&s, &p, 5, i);
        cr_assert_eq(s.label, (int32_t)(i % 3));
        cr_assert_eq(nad_tensor_size(s.mask, 0), 17);
        cr_assert_eq(nad_tensor_size(s.mask, 1), 33);
        double msum = nad_tensor_sum(s.mask);
        if (s.label == 0) cr_assert_eq(msum, 0.0, "a defect-free sample has a defect");
        else cr_assert(msum > 0);
    }
    drop(&s);
}

Test(synth, any_window_of_consecutive_samples_is_balanced)
{
    nad_synth_params p = {8, 8, NAD_SYNTH_STEEL, 0x3Fu};
    sample s = {0};
    int count[6] = {0};
    for (int64_t i = 100; i < 160; i++) {
        gen(&s, &p, 1, i);
        count[s.label]++;
    }
    for (int k = 0; k < 6; k++) cr_assert_eq(count[k], 10, "class %d: %d of 60", k, count[k]);
    drop(&s);
}

/* Best intersection over union of the defect mask with "img < t" or "img > t" over t. */
static double best_threshold_iou(const nad_tensor *img, const nad_tensor *mask)
{
    int64_t n = nad_tensor_numel(mask);
    const float *v = nad_tensor_data(img), *m = nad_tensor_data(mask);
    double best = 0;
    for (int t = 1; t < 100; t++) {
        float th = t / 100.0f;
        for (int dir = 0; dir < 2; dir++) {
            int64_t inter = 0, uni = 0;
            for (int64_t i = 0; i < n; i++) {
                int pred = dir ? v[i] > th : v[i] < th, truth = m[i] != 0;
                inter += pred && truth;
                uni += pred || truth;
            }
            if (uni && (double)inter / uni > best) best = (double)inter / uni;
        }
    }
    return best;
}

Test(synth, a_global_threshold_does_not_segment_the_defects)
{
    nad_synth_params p = {64, 64, NAD_SYNTH_MIXED, 0};
    sample s = {0};
    double total = 0, worst = 0;
    for (int64_t i = 0; i < 20; i++) {
        gen(&s, &p, 3, i);
        double iou = best_threshold_iou(s.img, s.mask);
        total += iou;
        worst = iou > worst ? iou : worst;
    }
    cr_assert(total / 20 < 0.6, "mean best-threshold IoU %g", total / 20);
    cr_assert(worst < 0.9, "some sample is solved by a threshold (IoU %g)", worst);
    drop(&s);
}

Test(synth, errors_name_the_bad_parameter)
{
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *img = tc_empty();
    int32_t label;
    nad_synth_params p = {4, 32, NAD_SYNTH_TILE, 0};
    cr_assert_eq(nad_synth_sample(ws, &p, 0, 0, img, NULL, &label), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "synth_sample: size 4x32 is below 8x8");
    p = (nad_synth_params){16, 16, NAD_SYNTH_TILE, 0x40u};
    cr_assert_eq(nad_synth_sample(ws, &p, 0, 0, img, NULL, &label), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "synth_sample: class_mask 0x40 selects classes beyond 5");
    p = (nad_synth_params){16, 16, 3, 0};
    cr_assert_eq(nad_synth_sample(ws, &p, 0, 0, img, NULL, &label), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "synth_sample: surface 3 is not STEEL (0), TILE (1) or MIXED (2)");
    p.surface = NAD_SYNTH_STEEL;
    cr_assert_eq(nad_synth_sample(ws, &p, 0, -1, img, NULL, &label), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "synth_sample: index -1 is negative");
    cr_assert_eq(nad_tensor_numel(img), 0, "img was touched by a failed call");
    nad_workspace_free(ws);
    nad_tensor_free(img);
}
