/* test_loader.c: the batch loader on small PNG files written to a temporary folder: order,
   labels and masks, resizing, determinism across thread counts, a corrupt file's error on
   its own batch, closing mid-epoch, and invalid arguments. */
#define _POSIX_C_SOURCE 200809L
#include "check.h"
#include <criterion/criterion.h>
#include <stdlib.h>
#include <unistd.h>

enum { NS = 11, IH = 6, IW = 4 };

static char dir[64];
static char img_path[NS][128], mask_path[NS][128], bad_path[128];

/* Sample i: a constant image of value 10 (i + 1) / 255 and a mask whose row r is class
   (i + r) % 3; bad_path holds bytes that are no image. */
static void make_files(void)
{
    snprintf(dir, sizeof dir, "/tmp/nad_loader_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    nad_tensor *img = nad_tensor_new(3, (int64_t[]){IH, IW, 1});
    nad_tensor *mask = nad_tensor_new(2, (int64_t[]){IH, IW});
    for (int i = 0; i < NS; i++) {
        nad_tensor_fill(img, 10.0f * (float)(i + 1) / 255.0f);
        for (int r = 0; r < IH; r++)
            for (int c = 0; c < IW; c++) nad_tensor_data(mask)[r * IW + c] = (float)((i + r) % 3);
        snprintf(img_path[i], sizeof img_path[i], "%s/img_%d.png", dir, i);
        snprintf(mask_path[i], sizeof mask_path[i], "%s/mask_%d.png", dir, i);
        cr_assert_eq(nad_png_save(img_path[i], img), 0, "%s", nad_last_error());
        cr_assert_eq(nad_png_save(mask_path[i], mask), 0, "%s", nad_last_error());
    }
    snprintf(bad_path, sizeof bad_path, "%s/bad.png", dir);
    FILE *f = fopen(bad_path, "wb");
    fputs("this is not an image", f);
    fclose(f);
    nad_tensor_free(img);
    nad_tensor_free(mask);
}

static void remove_files(void)
{
    for (int i = 0; i < NS; i++) {
        remove(img_path[i]);
        remove(mask_path[i]);
    }
    remove(bad_path);
    rmdir(dir);
}

TestSuite(loader, .init = make_files, .fini = remove_files);

static nad_loader_params params(int32_t batch, int32_t threads, int32_t seg)
{
    nad_loader_params p = {0};
    p.batch_size = batch;
    p.height = IH;
    p.width = IW;
    p.channels = 1;
    p.segmentation = seg;
    p.num_threads = threads;
    p.prefetch = 2;
    p.seed = 7;
    return p;
}

static void fill_samples(nad_loader_sample *s)
{
    for (int i = 0; i < NS; i++) {
        s[i] = (nad_loader_sample){img_path[i], mask_path[i], -1, 0, 100 + i, 0};
    }
}

Test(loader, batches_follow_the_order_with_labels_and_masks)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    s[3].mask = NULL; /* a defect-free image: an all-zero mask */
    int32_t order[NS];
    for (int i = 0; i < NS; i++) order[i] = (i * 7 + 3) % NS; /* a permutation */
    for (int seg = 0; seg <= 1; seg++) {
        nad_loader_params p = params(4, 2, seg);
        nad_loader *l = nad_loader_new(&p, NS, s);
        cr_assert_not_null(l, "%s", nad_last_error());
        cr_assert_eq(nad_loader_start(l, 0, NS, order), 0, "%s", nad_last_error());
        cr_assert_eq(nad_loader_num_batches(l), 3);
        nad_tensor *x = tc_empty(), *y = tc_empty();
        int pos = 0, rc;
        double wait = -1;
        while ((rc = nad_loader_next(l, x, y, &wait)) > 0) {
            cr_assert_eq(rc, pos + 4 <= NS ? 4 : NS - pos);
            cr_assert(wait >= 0);
            cr_assert_eq(nad_tensor_size(x, 0), rc);
            cr_assert_eq(nad_tensor_size(x, 3), 1);
            for (int j = 0; j < rc; j++, pos++) {
                int i = order[pos];
                float want = 10.0f * (float)(i + 1) / 255.0f;
                for (int k = 0; k < IH * IW; k++)
                    cr_assert_float_eq(nad_tensor_data(x)[j * IH * IW + k], want, 1e-6);
                if (seg) {
                    cr_assert_eq(nad_tensor_ndim(y), 3);
                    for (int r = 0; r < IH; r++)
                        for (int c = 0; c < IW; c++)
                            cr_assert_eq(nad_tensor_data(y)[(j * IH + r) * IW + c],
                                         i == 3 ? 0.0f : (float)((i + r) % 3));
                } else {
                    cr_assert_eq(nad_tensor_ndim(y), 1);
                    cr_assert_eq(nad_tensor_data(y)[j], (float)(100 + i));
                }
            }
        }
        cr_assert_eq(rc, 0, "%s", nad_last_error());
        cr_assert_eq(pos, NS);
        cr_assert_eq(nad_loader_next(l, x, y, NULL), 0); /* stays at the end */
        nad_loader_free(l);
        nad_tensor_free(x);
        nad_tensor_free(y);
    }
}

/* All batches of one epoch, concatenated, for comparing runs. */
static float *run_epoch(int32_t threads, int32_t prefetch, int32_t batch, int64_t epoch,
                        int32_t out_h, int32_t out_w, const nad_augment_params *aug,
                        int64_t *n_out)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    nad_loader_params p = params(batch, threads, 1);
    p.prefetch = prefetch;
    p.height = out_h;
    p.width = out_w;
    p.augment = aug;
    int32_t order[NS];
    for (int i = 0; i < NS; i++) order[i] = NS - 1 - i;
    nad_loader *l = nad_loader_new(&p, NS, s);
    cr_assert_not_null(l, "%s", nad_last_error());
    cr_assert_eq(nad_loader_start(l, epoch, NS, order), 0);
    int64_t per = (int64_t)out_h * out_w * 2;
    float *all = calloc((size_t)(per * NS), sizeof(float));
    nad_tensor *x = tc_empty(), *y = tc_empty();
    int64_t n = 0;
    int rc;
    while ((rc = nad_loader_next(l, x, y, NULL)) > 0) {
        memcpy(all + n * per, nad_tensor_data(x), (size_t)(rc * out_h * out_w) * sizeof(float));
        memcpy(all + n * per + (int64_t)rc * out_h * out_w, nad_tensor_data(y),
               (size_t)(rc * out_h * out_w) * sizeof(float));
        n += rc;
    }
    cr_assert_eq(rc, 0, "%s", nad_last_error());
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
    *n_out = n;
    return all;
}

/* flips, rotations and noise: every sample draws from its own stream */
static nad_augment_params flips_and_noise(void)
{
    nad_augment_params a = {0};
    a.p_hflip = a.p_vflip = 0.5f;
    a.p_rot90 = 0.75f;
    a.p_noise = 1;
    a.noise_std_lo = 0.01f;
    a.noise_std_hi = 0.05f;
    return a;
}

Test(loader, same_batches_whatever_the_thread_count)
{
    nad_augment_params aug = flips_and_noise();
    int64_t n1, n3, n4, n5, n6;
    size_t bytes = (size_t)(NS * 9 * 5 * 2) * sizeof(float);
    float *a = run_epoch(1, 1, 3, 5, 9, 5, &aug, &n1);
    float *b = run_epoch(3, 4, 3, 5, 9, 5, &aug, &n3);
    float *c = run_epoch(4, 2, 3, 5, 9, 5, &aug, &n4);
    float *d = run_epoch(2, 2, 3, 6, 9, 5, &aug, &n5); /* another epoch: other draws */
    float *e = run_epoch(2, 2, 3, 5, 9, 5, NULL, &n6); /* no augmentation */
    cr_assert_eq(n1, NS);
    cr_assert_eq(n3, NS);
    cr_assert_eq(memcmp(a, b, bytes), 0);
    cr_assert_eq(memcmp(a, c, bytes), 0);
    cr_assert_neq(memcmp(a, d, bytes), 0);
    cr_assert_neq(memcmp(a, e, bytes), 0);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

Test(loader, resizes_and_normalises)
{
    /* 6x4 -> 3x2 halves each side: bilinear of a constant is the constant; the mask takes
       rows 1, 3, 5 (nearest at pixel centres) */
    nad_augment_params aug = {0};
    aug.normalize = 1;
    aug.mean[0] = 0.5f;
    aug.std[0] = 0.25f;
    int64_t n;
    float *a = run_epoch(2, 2, 4, 0, 3, 2, &aug, &n);
    cr_assert_eq(n, NS);
    /* batches of 4 are laid out [images(4) | masks(4)] in blocks of per = 3*2*2 per sample */
    for (int pos = 0; pos < NS; pos++) {
        int i = NS - 1 - pos, b = pos / 4, j = pos % 4, cnt = (b + 1) * 4 <= NS ? 4 : NS - b * 4;
        const float *blk = a + (int64_t)b * 4 * 12;
        float want = (10.0f * (float)(i + 1) / 255.0f - 0.5f) / 0.25f;
        for (int k = 0; k < 6; k++) cr_assert_float_eq(blk[j * 6 + k], want, 1e-5);
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 2; c++)
                cr_assert_eq(blk[cnt * 6 + j * 6 + r * 2 + c], (float)((i + 2 * r + 1) % 3));
    }
    free(a);
}

Test(loader, drop_last_skips_the_short_batch)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    nad_loader_params p = params(4, 2, 0);
    p.drop_last = 1;
    int32_t order[NS];
    for (int i = 0; i < NS; i++) order[i] = i;
    nad_loader *l = nad_loader_new(&p, NS, s);
    cr_assert_eq(nad_loader_start(l, 0, NS, order), 0);
    cr_assert_eq(nad_loader_num_batches(l), 2);
    nad_tensor *x = tc_empty(), *y = tc_empty();
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 4);
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 4);
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 0);
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(loader, corrupt_file_fails_its_batch_only)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    s[5].image = bad_path;
    nad_loader_params p = params(4, 3, 1);
    int32_t order[NS];
    for (int i = 0; i < NS; i++) order[i] = i;
    nad_loader *l = nad_loader_new(&p, NS, s);
    cr_assert_eq(nad_loader_start(l, 0, NS, order), 0);
    nad_tensor *x = tc_empty(), *y = tc_empty();
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 4, "%s", nad_last_error());
    int rc = nad_loader_next(l, x, y, NULL);
    cr_assert_lt(rc, 0);
    char want[256];
    snprintf(want, sizeof want, "loader_next: batch 1, sample 5: image_load: %s: ", bad_path);
    cr_assert(strncmp(nad_last_error(), want, strlen(want)) == 0, "got: %s", nad_last_error());
    cr_assert_eq(nad_tensor_size(x, 0), 4); /* outputs untouched: still the first batch */
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 3, "%s", nad_last_error());
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 0);
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(loader, missing_mask_names_its_path)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    char missing[160];
    snprintf(missing, sizeof missing, "%s/no_such_mask.png", dir);
    s[0].mask = missing;
    nad_loader_params p = params(2, 1, 1);
    int32_t order[1] = {0};
    nad_loader *l = nad_loader_new(&p, NS, s);
    cr_assert_eq(nad_loader_start(l, 0, 1, order), 0);
    nad_tensor *x = tc_empty(), *y = tc_empty();
    cr_assert_lt(nad_loader_next(l, x, y, NULL), 0);
    cr_assert(strstr(nad_last_error(), missing) != NULL, "got: %s", nad_last_error());
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(loader, closes_mid_epoch_and_restarts)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    int32_t order[NS];
    for (int i = 0; i < NS; i++) order[i] = i;
    nad_tensor *x = tc_empty(), *y = tc_empty();
    for (int rep = 0; rep < 10; rep++) {
        nad_loader_params p = params(2, 4, rep % 2);
        nad_loader *l = nad_loader_new(&p, NS, s);
        cr_assert_eq(nad_loader_start(l, rep, NS, order), 0);
        if (rep % 3 == 0) cr_assert_eq(nad_loader_next(l, x, y, NULL), 2);
        if (rep % 4 == 1) {
            /* a new epoch while the old one is being prefetched */
            cr_assert_eq(nad_loader_start(l, rep + 1, 3, order + 4), 0);
            cr_assert_eq(nad_loader_next(l, x, y, NULL), 2);
            cr_assert_float_eq(nad_tensor_data(x)[0], 10.0f * 5 / 255.0f, 1e-6);
            cr_assert_eq(nad_loader_next(l, x, y, NULL), 1);
            cr_assert_eq(nad_loader_next(l, x, y, NULL), 0);
        }
        nad_loader_free(l); /* workers may be mid-sample */
    }
    nad_loader *l = NULL;
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(loader, invalid_arguments)
{
    nad_loader_sample s[NS];
    fill_samples(s);
    nad_loader_params p = params(4, 1, 1);
    p.channels = 2;
    cr_assert_null(nad_loader_new(&p, NS, s));
    cr_assert_str_eq(nad_last_error(), "loader_new: channels is 2, expected 1 or 3");
    p = params(0, 1, 1);
    cr_assert_null(nad_loader_new(&p, NS, s));
    cr_assert_str_eq(nad_last_error(), "loader_new: batch_size 0, height 6, width 4, num_threads 1 "
                                       "and prefetch 2 must all be >= 1");
    p = params(4, 1, 1);
    nad_augment_params aug = {0};
    aug.p_blur = 0.5f; /* with an empty sigma range */
    p.augment = &aug;
    cr_assert_null(nad_loader_new(&p, NS, s));
    cr_assert(strncmp(nad_last_error(), "loader_new: augment: augment_apply: ", 36) == 0, "got: %s",
              nad_last_error());
    p.augment = NULL;
    s[2].image = NULL;
    cr_assert_null(nad_loader_new(&p, NS, s));
    cr_assert_str_eq(nad_last_error(),
                     "loader_new: sample 2 has no image path and no generator is given");
    s[2].image = img_path[2];
    nad_loader *l = nad_loader_new(&p, NS, s);
    int32_t order[2] = {0, NS};
    cr_assert_eq(nad_loader_start(l, 0, 2, order), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "loader_start: order[1] = 11 is outside 0..10");
    nad_tensor *x = tc_empty(), *y = tc_empty();
    cr_assert_eq(nad_loader_next(l, x, y, NULL), 0); /* no epoch started */
    nad_loader_free(l);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(loader, generated_samples_match_the_generator)
{
    nad_synth_params sp = {24, 20, NAD_SYNTH_MIXED, 0};
    enum { NG = 7 };
    nad_loader_sample s[NG];
    int32_t order[NG];
    for (int i = 0; i < NG; i++) {
        s[i] = (nad_loader_sample){NULL, NULL, -1, 0, -1, 100 + i};
        order[i] = (i * 3) % NG;
    }
    nad_tensor *gi = tc_empty(), *gm = tc_empty(), *x = tc_empty(), *y = tc_empty();
    nad_workspace *ws = nad_workspace_new(0);
    for (int seg = 0; seg <= 1; seg++) {
        nad_loader_params p = params(3, 2, seg);
        p.height = 24;
        p.width = 20;
        p.synth = &sp;
        p.synth_seed = 42;
        nad_loader *l = nad_loader_new(&p, NG, s);
        cr_assert_not_null(l, "%s", nad_last_error());
        cr_assert_eq(nad_loader_start(l, 0, NG, order), 0);
        int pos = 0, rc;
        while ((rc = nad_loader_next(l, x, y, NULL)) > 0) {
            for (int j = 0; j < rc; j++, pos++) {
                int32_t label = -1;
                cr_assert_eq(nad_synth_sample(ws, &sp, 42, 100 + order[pos], gi, gm, &label), 0);
                cr_assert_eq(memcmp(nad_tensor_data(x) + j * 24 * 20, nad_tensor_data(gi),
                                    24 * 20 * sizeof(float)), 0);
                if (seg)
                    cr_assert_eq(memcmp(nad_tensor_data(y) + j * 24 * 20, nad_tensor_data(gm),
                                        24 * 20 * sizeof(float)), 0);
                else
                    cr_assert_eq(nad_tensor_data(y)[j], (float)label);
                cr_assert_eq(label, (100 + order[pos]) % 5 + 1); /* classes 1..5 in turn */
            }
        }
        cr_assert_eq(rc, 0, "%s", nad_last_error());
        cr_assert_eq(pos, NG);
        nad_loader_free(l);
    }
    nad_workspace_free(ws);
    nad_tensor_free(gi);
    nad_tensor_free(gm);
    nad_tensor_free(x);
    nad_tensor_free(y);
}
