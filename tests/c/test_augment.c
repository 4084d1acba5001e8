/* test_augment.c: joint image/mask augmentation against plain loops: flips, 90-degree
   rotations, resize, crop/pad, affine, the photometric operations, the whole pipeline
   (identity, seeds, dihedral outcomes, alignment of image and mask), and error messages. */
#include "check.h"
#include <criterion/criterion.h>

/* img[h,w,c] with distinct values v = (r * w + col) * c + k, scaled into [0, 1) */
static nad_tensor *ramp_image(int64_t h, int64_t w, int64_t c)
{
    nad_tensor *t = nad_tensor_new(3, (int64_t[]){h, w, c});
    float *d = nad_tensor_data(t);
    for (int64_t i = 0; i < h * w * c; i++) d[i] = (float)i / (float)(h * w * c);
    return t;
}

/* mask[h,w] with class (r + 2 col) % 5 */
static nad_tensor *ramp_mask(int64_t h, int64_t w)
{
    nad_tensor *t = nad_tensor_new(2, (int64_t[]){h, w});
    float *d = nad_tensor_data(t);
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++) d[r * w + c] = (float)((r + 2 * c) % 5);
    return t;
}

static float px(const nad_tensor *t, int64_t r, int64_t c, int64_t k)
{
    int64_t w = nad_tensor_size(t, 1), ch = nad_tensor_ndim(t) == 3 ? nad_tensor_size(t, 2) : 1;
    return nad_tensor_data(t)[(r * w + c) * ch + k];
}

static void assert_shape(const nad_tensor *t, int64_t h, int64_t w)
{
    cr_assert_eq(nad_tensor_size(t, 0), h);
    cr_assert_eq(nad_tensor_size(t, 1), w);
}

static int same(const nad_tensor *a, const nad_tensor *b)
{
    if (nad_tensor_ndim(a) != nad_tensor_ndim(b)) return 0;
    for (int32_t d = 0; d < nad_tensor_ndim(a); d++)
        if (nad_tensor_size(a, d) != nad_tensor_size(b, d)) return 0;
    return memcmp(nad_tensor_data(a), nad_tensor_data(b),
                  (size_t)nad_tensor_numel(a) * sizeof(float)) == 0;
}

Test(augment, flips_match_loops_and_undo_themselves)
{
    const int64_t h = 5, w = 7, c = 3;
    nad_tensor *img = ramp_image(h, w, c), *mask = ramp_mask(h, w);
    nad_tensor *io = tc_empty(), *mo = tc_empty(), *io2 = tc_empty(), *mo2 = tc_empty();
    for (int32_t axis = 0; axis < 2; axis++) {
        cr_assert_eq(nad_augment_flip(axis, img, mask, io, mo), 0, "%s", nad_last_error());
        assert_shape(io, h, w);
        assert_shape(mo, h, w);
        for (int64_t r = 0; r < h; r++)
            for (int64_t q = 0; q < w; q++) {
                int64_t sr = axis == NAD_FLIP_VERTICAL ? h - 1 - r : r;
                int64_t sq = axis == NAD_FLIP_HORIZONTAL ? w - 1 - q : q;
                for (int64_t k = 0; k < c; k++) cr_assert_eq(px(io, r, q, k), px(img, sr, sq, k));
                cr_assert_eq(px(mo, r, q, 0), px(mask, sr, sq, 0));
            }
        cr_assert_eq(nad_augment_flip(axis, io, mo, io2, mo2), 0, "%s", nad_last_error());
        cr_assert(same(io2, img) && same(mo2, mask));
    }
    nad_tensor *t[] = {img, mask, io, mo, io2, mo2};
    for (int i = 0; i < 6; i++) nad_tensor_free(t[i]);
}

Test(augment, rot90_matches_loop_and_four_turns_are_identity)
{
    const int64_t h = 4, w = 6, c = 2;
    nad_tensor *img = ramp_image(h, w, c), *mask = ramp_mask(h, w);
    nad_tensor *io = tc_empty(), *mo = tc_empty();
    /* k = 1: out[r, q] = in[q, W-1-r] (counter-clockwise), out is [W, H] */
    cr_assert_eq(nad_augment_rot90(1, img, mask, io, mo), 0, "%s", nad_last_error());
    assert_shape(io, w, h);
    assert_shape(mo, w, h);
    for (int64_t r = 0; r < w; r++)
        for (int64_t q = 0; q < h; q++) {
            for (int64_t k = 0; k < c; k++) cr_assert_eq(px(io, r, q, k), px(img, q, w - 1 - r, k));
            cr_assert_eq(px(mo, r, q, 0), px(mask, q, w - 1 - r, 0));
        }
    /* k = 2 is both flips; k = -1 is k = 3 */
    nad_tensor *a = tc_empty(), *b = tc_empty(), *e = tc_empty(), *f = tc_empty();
    cr_assert_eq(nad_augment_rot90(2, img, mask, a, b), 0);
    cr_assert_eq(nad_augment_flip(NAD_FLIP_HORIZONTAL, img, mask, e, f), 0);
    cr_assert_eq(nad_augment_flip(NAD_FLIP_VERTICAL, e, f, io, mo), 0);
    cr_assert(same(a, io) && same(b, mo));
    cr_assert_eq(nad_augment_rot90(3, img, mask, a, b), 0);
    cr_assert_eq(nad_augment_rot90(-1, img, mask, e, f), 0);
    cr_assert(same(a, e) && same(b, f));
    /* four quarter turns */
    nad_tensor *ci = ramp_image(h, w, c), *cm = ramp_mask(h, w);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(nad_augment_rot90(1, ci, cm, io, mo), 0);
        nad_tensor *t = ci;
        ci = io;
        io = t;
        t = cm;
        cm = mo;
        mo = t;
    }
    cr_assert(same(ci, img) && same(cm, mask));
    nad_tensor *t[] = {img, mask, io, mo, a, b, e, f, ci, cm};
    for (int i = 0; i < 10; i++) nad_tensor_free(t[i]);
}

Test(augment, resize_matches_bilinear_and_nearest_loops)
{
    const int64_t h = 5, w = 4, c = 2, oh = 8, ow = 7;
    nad_tensor *img = ramp_image(h, w, c), *mask = ramp_mask(h, w);
    nad_tensor *io = tc_empty(), *mo = tc_empty();
    cr_assert_eq(nad_augment_resize(oh, ow, img, mask, io, mo), 0, "%s", nad_last_error());
    assert_shape(io, oh, ow);
    for (int64_t r = 0; r < oh; r++)
        for (int64_t q = 0; q < ow; q++) {
            /* PyTorch's align_corners=False source coordinates */
            double y = fmax((r + 0.5) * h / oh - 0.5, 0), x = fmax((q + 0.5) * w / ow - 0.5, 0);
            int64_t y0 = (int64_t)y, x0 = (int64_t)x;
            int64_t y1 = y0 + 1 < h ? y0 + 1 : h - 1, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double fy = y - y0, fx = x - x0;
            for (int64_t k = 0; k < c; k++) {
                double want = (1 - fy) * ((1 - fx) * px(img, y0, x0, k) + fx * px(img, y0, x1, k)) +
                              fy * ((1 - fx) * px(img, y1, x0, k) + fx * px(img, y1, x1, k));
                cr_assert_float_eq(px(io, r, q, k), want, 1e-6);
            }
            int64_t nr = (int64_t)((r + 0.5) * h / oh), nq = (int64_t)((q + 0.5) * w / ow);
            cr_assert_eq(px(mo, r, q, 0), px(mask, nr, nq, 0));
        }
    nad_tensor *t[] = {img, mask, io, mo};
    for (int i = 0; i < 4; i++) nad_tensor_free(t[i]);
}

Test(augment, crop_and_pad_fill_image_and_ignore_mask)
{
    const int64_t h = 4, w = 5, c = 2;
    nad_tensor *img = ramp_image(h, w, c), *mask = ramp_mask(h, w);
    nad_tensor *io = tc_empty(), *mo = tc_empty();
    /* window rows [-1, 5), cols [2, 7): one padded row above and below, two cols right */
    cr_assert_eq(nad_augment_crop(-1, 2, 6, 5, -3.0f, img, mask, io, mo), 0, "%s",
                 nad_last_error());
    assert_shape(io, 6, 5);
    for (int64_t r = 0; r < 6; r++)
        for (int64_t q = 0; q < 5; q++) {
            int64_t sr = r - 1, sq = q + 2;
            int inside = sr >= 0 && sr < h && sq < w;
            for (int64_t k = 0; k < c; k++)
                cr_assert_eq(px(io, r, q, k), inside ? px(img, sr, sq, k) : -3.0f);
            cr_assert_eq(px(mo, r, q, 0), inside ? px(mask, sr, sq, 0) : (float)NAD_MASK_IGNORE);
        }
    nad_tensor *t[] = {img, mask, io, mo};
    for (int i = 0; i < 4; i++) nad_tensor_free(t[i]);
}

Test(augment, random_crop_is_a_window_and_pads_small_images)
{
    nad_rng rng;
    nad_rng_init(&rng, 11);
    nad_tensor *img = ramp_image(9, 8, 1), *mask = ramp_mask(9, 8);
    nad_tensor *io = tc_empty(), *mo = tc_empty();
    int tops[6] = {0};
    for (int t = 0; t < 40; t++) {
        cr_assert_eq(nad_augment_random_crop(&rng, 5, 4, 0, img, mask, io, mo), 0);
        /* the first value tells the window's corner; every other value must follow */
        int64_t v = (int64_t)lroundf(px(io, 0, 0, 0) * 72), top = v / 8, left = v % 8;
        cr_assert(top <= 4 && left <= 4);
        tops[top]++;
        for (int64_t r = 0; r < 5; r++)
            for (int64_t q = 0; q < 4; q++) {
                cr_assert_eq(px(io, r, q, 0), px(img, top + r, left + q, 0));
                cr_assert_eq(px(mo, r, q, 0), px(mask, top + r, left + q, 0));
            }
    }
    for (int i = 0; i < 5; i++) cr_assert(tops[i] > 0, "window row %d never drawn", i);
    /* a 9x8 image into a 12x12 window: all of it is kept, the rest padded */
    cr_assert_eq(nad_augment_random_crop(&rng, 12, 12, -1.0f, img, mask, io, mo), 0);
    int pads = 0, ignores = 0;
    double sum = 0;
    for (int64_t i = 0; i < 144; i++) {
        pads += nad_tensor_data(io)[i] == -1.0f;
        ignores += nad_tensor_data(mo)[i] == (float)NAD_MASK_IGNORE;
        if (nad_tensor_data(io)[i] != -1.0f) sum += nad_tensor_data(io)[i];
    }
    cr_assert_eq(pads, 144 - 72);
    cr_assert_eq(ignores, 144 - 72);
    cr_assert_float_eq(sum, nad_tensor_sum(img), 1e-4);
    nad_tensor *t[] = {img, mask, io, mo};
    for (int i = 0; i < 4; i++) nad_tensor_free(t[i]);
}

Test(augment, affine_identity_shift_shear_and_quarter_turn)
{
    const int64_t n = 7, c = 2;
    nad_tensor *img = ramp_image(n, n, c), *mask = ramp_mask(n, n);
    nad_tensor *io = tc_empty(), *mo = tc_empty(), *ro = tc_empty(), *rm = tc_empty();
    nad_affine_params p = {1, 0, 0, 0, 0, 0, 0.5f};
    cr_assert_eq(nad_augment_affine(&p, img, mask, io, mo), 0, "%s", nad_last_error());
    cr_assert(same(io, img) && same(mo, mask));
    /* translate by two pixels right: out[r, q] = in[r, q - 2], the two left columns filled */
    p.translate_x = 2.0f / n;
    cr_assert_eq(nad_augment_affine(&p, img, mask, io, mo), 0);
    for (int64_t r = 0; r < n; r++)
        for (int64_t q = 0; q < n; q++) {
            for (int64_t k = 0; k < c; k++)
                cr_assert_float_eq(px(io, r, q, k), q < 2 ? 0.5f : px(img, r, q - 2, k), 1e-6);
            cr_assert_eq(px(mo, r, q, 0), q < 2 ? (float)NAD_MASK_IGNORE : px(mask, r, q - 2, 0));
        }
    /* shear_x 45 degrees about the centre row 3: a source pixel (r, q) lands at column
       q + (r - 3), so out[r, q] = in[r, q - (r - 3)] */
    p = (nad_affine_params){1, 0, 0, 45, 0, 0, 0.5f};
    cr_assert_eq(nad_augment_affine(&p, img, mask, io, mo), 0);
    for (int64_t r = 0; r < n; r++)
        for (int64_t q = 0; q < n; q++) {
            int64_t sq = q - (r - 3);
            int inside = sq >= 0 && sq < n;
            for (int64_t k = 0; k < c; k++)
                cr_assert_float_eq(px(io, r, q, k), inside ? px(img, r, sq, k) : 0.5f, 1e-5);
            cr_assert_eq(px(mo, r, q, 0), inside ? px(mask, r, sq, 0) : (float)NAD_MASK_IGNORE);
        }
    /* rotate -90 (counter-clockwise on screen) is rot90 k = 1 */
    p = (nad_affine_params){1, 0, 0, 0, 0, -90, 0.5f};
    cr_assert_eq(nad_augment_affine(&p, img, mask, io, mo), 0);
    cr_assert_eq(nad_augment_rot90(1, img, mask, ro, rm), 0);
    cr_assert(tc_close(io, ro, 0, 1e-5));
    cr_assert(same(mo, rm));
    /* scale 2 about the centre: out[r, q] samples in[3 + (r - 3) / 2, 3 + (q - 3) / 2] */
    p = (nad_affine_params){2, 0, 0, 0, 0, 0, 0.5f};
    cr_assert_eq(nad_augment_affine(&p, img, mask, io, mo), 0);
    for (int64_t r = 1; r < n; r += 2)
        for (int64_t q = 1; q < n; q += 2)
            cr_assert_float_eq(px(io, r, q, 1), px(img, 3 + (r - 3) / 2, 3 + (q - 3) / 2, 1), 1e-6);
    nad_tensor *t[] = {img, mask, io, mo, ro, rm};
    for (int i = 0; i < 6; i++) nad_tensor_free(t[i]);
}

/* one bright pixel labelled 1 on a dark image labelled 0 */
static void dot(int64_t h, int64_t w, int64_t r, int64_t q, nad_tensor **img, nad_tensor **mask)
{
    *img = nad_tensor_new(3, (int64_t[]){h, w, 1});
    *mask = nad_tensor_new(2, (int64_t[]){h, w});
    nad_tensor_fill(*img, 0.1f);
    nad_tensor_data(*img)[r * w + q] = 1.0f;
    nad_tensor_data(*mask)[r * w + q] = 1.0f;
}

/* The image's brightest pixel carries label 1 and every mask value is 0, 1 or ignore. */
static void assert_aligned(const nad_tensor *img, const nad_tensor *mask, const char *what)
{
    int64_t n = nad_tensor_numel(mask), best = 0;
    const float *d = nad_tensor_data(img), *m = nad_tensor_data(mask);
    cr_assert_eq(nad_tensor_numel(img), n, "%s: image and mask sizes differ", what);
    int ones = 0;
    for (int64_t i = 0; i < n; i++) {
        if (d[i] > d[best]) best = i;
        cr_assert(m[i] == 0 || m[i] == 1 || m[i] == (float)NAD_MASK_IGNORE,
                  "%s: mask value %g at %lld", what, m[i], (long long)i);
        ones += m[i] == 1;
    }
    cr_assert(ones > 0, "%s: the labelled pixel vanished", what);
    cr_assert_eq(m[best], 1.0f, "%s: brightest pixel %lld has label %g", what, (long long)best,
                 m[best]);
}

Test(augment, bright_pixel_stays_aligned_with_its_label)
{
    nad_tensor *img, *mask, *io = tc_empty(), *mo = tc_empty();
    dot(9, 11, 2, 7, &img, &mask);
    cr_assert_eq(nad_augment_flip(NAD_FLIP_HORIZONTAL, img, mask, io, mo), 0);
    assert_aligned(io, mo, "hflip");
    cr_assert_eq(nad_augment_flip(NAD_FLIP_VERTICAL, img, mask, io, mo), 0);
    assert_aligned(io, mo, "vflip");
    for (int k = 1; k < 4; k++) {
        cr_assert_eq(nad_augment_rot90(k, img, mask, io, mo), 0);
        assert_aligned(io, mo, "rot90");
    }
    cr_assert_eq(nad_augment_resize(18, 22, img, mask, io, mo), 0);
    assert_aligned(io, mo, "resize x2");
    cr_assert_eq(nad_augment_resize(27, 13, img, mask, io, mo), 0);
    assert_aligned(io, mo, "resize uneven");
    cr_assert_eq(nad_augment_crop(1, 3, 6, 9, 0, img, mask, io, mo), 0);
    assert_aligned(io, mo, "crop");
    cr_assert_eq(nad_augment_crop(-3, -2, 14, 16, 0, img, mask, io, mo), 0);
    assert_aligned(io, mo, "pad");
    nad_affine_params ps[] = {{1.2f, 0.1f, -0.05f, 8, 0, 0, 0},
                              {1.0f, -0.1f, 0.1f, -8, 0, 0, 0},
                              {1.15f, 0, 0, 0, 5, 20, 0}};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(nad_augment_affine(&ps[i], img, mask, io, mo), 0, "%s", nad_last_error());
        assert_aligned(io, mo, "affine");
    }
    /* the pipeline's geometric steps, many seeds */
    nad_augment_params p = {0};
    p.p_hflip = p.p_vflip = 0.5f;
    p.p_rot90 = 0.75f;
    p.p_affine = 1;
    p.scale_lo = 1.0f;
    p.scale_hi = 1.2f;
    p.translate = 0.1f;
    p.shear_deg = 8;
    p.crop_h = 10;
    p.crop_w = 10;
    nad_workspace *ws = nad_workspace_new(0);
    nad_rng rng;
    nad_rng_init(&rng, 3);
    nad_tensor *sq_img, *sq_mask;
    dot(10, 10, 3, 6, &sq_img, &sq_mask);
    for (int t = 0; t < 50; t++) {
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, sq_img, sq_mask, io, mo), 0, "%s",
                     nad_last_error());
        assert_aligned(io, mo, "pipeline");
    }
    nad_workspace_free(ws);
    nad_tensor *t[] = {img, mask, io, mo, sq_img, sq_mask};
    for (int i = 0; i < 6; i++) nad_tensor_free(t[i]);
}

Test(augment, photometric_ops_match_loops)
{
    nad_rng rng;
    nad_rng_init(&rng, 5);
    const int64_t h = 6, w = 5, c = 2;
    nad_tensor *x = nad_tensor_new(3, (int64_t[]){h, w, c}), *y = tc_empty();
    nad_rng_uniform(&rng, 0.2f, 0.8f, x);
    float *xd = nad_tensor_data(x);
    /* contrast around each channel's mean */
    cr_assert_eq(nad_augment_contrast(1.5f, x, y), 0, "%s", nad_last_error());
    for (int64_t k = 0; k < c; k++) {
        double m = 0;
        for (int64_t i = 0; i < h * w; i++) m += xd[i * c + k];
        m /= h * w;
        for (int64_t i = 0; i < h * w; i++) {
            double want = fmin(fmax(m + 1.5 * (xd[i * c + k] - m), 0), 1);
            cr_assert_float_eq(nad_tensor_data(y)[i * c + k], want, 1e-5);
        }
    }
    cr_assert_eq(nad_augment_brightness(0.3f, x, y), 0);
    for (int64_t i = 0; i < h * w * c; i++)
        cr_assert_float_eq(nad_tensor_data(y)[i], fminf(xd[i] + 0.3f, 1), 1e-6);
    /* blur: the 2-D Gaussian sum with replicated borders */
    nad_workspace *ws = nad_workspace_new(0);
    const float sigma = 0.8f;
    cr_assert_eq(nad_augment_blur(ws, sigma, x, y), 0, "%s", nad_last_error());
    int rad = 3; /* ceil(3 * 0.8) */
    double g[7], gs = 0;
    for (int i = -rad; i <= rad; i++) gs += g[i + rad] = exp(-0.5 * i * i / (sigma * sigma));
    for (int64_t r = 0; r < h; r++)
        for (int64_t q = 0; q < w; q++)
            for (int64_t k = 0; k < c; k++) {
                double acc = 0;
                for (int a = -rad; a <= rad; a++)
                    for (int b = -rad; b <= rad; b++) {
                        int64_t rr = r + a < 0 ? 0 : (r + a >= h ? h - 1 : r + a);
                        int64_t qq = q + b < 0 ? 0 : (q + b >= w ? w - 1 : q + b);
                        acc += g[a + rad] * g[b + rad] / (gs * gs) * px(x, rr, qq, k);
                    }
                cr_assert_float_eq(px(y, r, q, k), acc, 1e-5);
            }
    /* sharpen in place against a copy */
    nad_tensor *x2 = tc_empty();
    nad_tensor_resize(x2, 3, (int64_t[]){h, w, c});
    nad_tensor_copy(x2, x);
    cr_assert_eq(nad_augment_sharpen(ws, 0.7f, x2, x2), 0, "%s", nad_last_error());
    for (int64_t r = 0; r < h; r++)
        for (int64_t q = 0; q < w; q++)
            for (int64_t k = 0; k < c; k++) {
                double box = 0;
                for (int a = -1; a <= 1; a++)
                    for (int b = -1; b <= 1; b++) {
                        int64_t rr = r + a < 0 ? 0 : (r + a >= h ? h - 1 : r + a);
                        int64_t qq = q + b < 0 ? 0 : (q + b >= w ? w - 1 : q + b);
                        box += px(x, rr, qq, k) / 9;
                    }
                double v = px(x, r, q, k), want = fmin(fmax(v + 0.7 * (v - box), 0), 1);
                cr_assert_float_eq(px(x2, r, q, k), want, 1e-5);
            }
    /* normalize */
    float mean[2] = {0.5f, 0.25f}, std[2] = {0.2f, 0.5f};
    cr_assert_eq(nad_augment_normalize(mean, std, x, y), 0);
    for (int64_t i = 0; i < h * w * c; i++)
        cr_assert_float_eq(nad_tensor_data(y)[i], (xd[i] - mean[i % 2]) / std[i % 2], 1e-6);
    nad_workspace_free(ws);
    nad_tensor_free(x);
    nad_tensor_free(x2);
    nad_tensor_free(y);
}

Test(augment, noise_and_dropout_statistics_and_seeds)
{
    const int64_t h = 40, w = 50, c = 3;
    nad_tensor *x = nad_tensor_new(3, (int64_t[]){h, w, c}), *y = tc_empty(), *y2 = tc_empty();
    nad_tensor_fill(x, 0.5f);
    nad_rng rng, rng2;
    nad_rng_init(&rng, 9);
    cr_assert_eq(nad_augment_noise(&rng, 0.1f, x, y), 0, "%s", nad_last_error());
    double s = 0, s2 = 0;
    int64_t n = h * w * c;
    for (int64_t i = 0; i < n; i++) {
        double d = nad_tensor_data(y)[i] - 0.5;
        s += d;
        s2 += d * d;
    }
    cr_assert(fabs(s / n) < 0.01 && fabs(sqrt(s2 / n) - 0.1) < 0.01, "mean %g std %g", s / n,
              sqrt(s2 / n));
    nad_rng_init(&rng2, 9);
    cr_assert_eq(nad_augment_noise(&rng2, 0.1f, x, y2), 0);
    cr_assert(same(y, y2));
    cr_assert_eq(nad_augment_dropout(&rng, 0.2f, x, y), 0, "%s", nad_last_error());
    int64_t dropped = 0;
    for (int64_t i = 0; i < h * w; i++) {
        float *p = nad_tensor_data(y) + i * c;
        cr_assert(p[0] == p[1] && p[1] == p[2], "a dropped pixel keeps some channel");
        dropped += p[0] == 0;
    }
    cr_assert(fabs((double)dropped / (h * w) - 0.2) < 0.03, "dropped %lld", (long long)dropped);
    nad_tensor_free(x);
    nad_tensor_free(y);
    nad_tensor_free(y2);
}

static nad_augment_params finetune_params(void)
{
    nad_augment_params p = {0};
    p.p_hflip = p.p_vflip = 0.5f;
    p.p_rot90 = 0.75f;
    p.p_affine = 0.8f;
    p.scale_lo = 0.8f;
    p.scale_hi = 1.2f;
    p.translate = 0.1f;
    p.shear_deg = 8;
    p.p_contrast = 0.5f;
    p.contrast_lo = 0.75f;
    p.contrast_hi = 1.25f;
    p.p_blur = 0.3f;
    p.blur_sigma_lo = 0.5f;
    p.blur_sigma_hi = 1.0f;
    p.p_sharpen = 0.3f;
    p.sharpen_hi = 1.0f;
    p.p_dropout = 0.3f;
    p.dropout_hi = 0.05f;
    p.p_noise = 0.3f;
    p.noise_std_hi = 0.03f;
    return p;
}

Test(augment, pipeline_identity_seeds_and_in_place)
{
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *img = ramp_image(12, 12, 1), *mask = ramp_mask(12, 12);
    nad_tensor *io = tc_empty(), *mo = tc_empty(), *io2 = tc_empty(), *mo2 = tc_empty();
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_augment_params zero = {0};
    cr_assert_eq(nad_augment_apply(ws, &rng, &zero, img, mask, io, mo), 0, "%s", nad_last_error());
    cr_assert(same(io, img) && same(mo, mask));
    nad_augment_params p = finetune_params();
    int differ = 0;
    for (uint64_t seed = 0; seed < 20; seed++) {
        nad_rng_init(&rng, seed);
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io, mo), 0, "%s", nad_last_error());
        nad_rng_init(&rng, seed);
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io2, mo2), 0);
        cr_assert(same(io, io2) && same(mo, mo2), "seed %d is not reproducible", (int)seed);
        for (int64_t i = 0; i < 144; i++) {
            float m = nad_tensor_data(mo)[i];
            cr_assert(m == floorf(m) && (m < 5 || m == (float)NAD_MASK_IGNORE));
        }
        nad_rng_init(&rng, seed + 1000);
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io2, mo2), 0);
        differ += !same(io, io2);
    }
    cr_assert(differ >= 18, "only %d of 20 seeds changed the sample", differ);
    /* in place, with a resize and a normalisation */
    nad_rng_init(&rng, 4);
    p.resize_h = p.resize_w = 16;
    p.normalize = 1;
    p.mean[0] = 0.5f;
    p.std[0] = 0.25f;
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io, mo), 0);
    nad_rng_init(&rng, 4);
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, img, mask), 0, "%s", nad_last_error());
    cr_assert(same(img, io) && same(mask, mo));
    assert_shape(img, 16, 16);
    nad_workspace_free(ws);
    nad_tensor *t[] = {img, mask, io, mo, io2, mo2};
    for (int i = 0; i < 6; i++) nad_tensor_free(t[i]);
}

Test(augment, supernet_pipeline_draws_all_eight_dihedral_transforms)
{
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *img = ramp_image(6, 6, 1), *mask = ramp_mask(6, 6);
    nad_tensor *cand[8], *cm[8], *io = tc_empty(), *mo = tc_empty();
    nad_tensor *f = tc_empty(), *fm = tc_empty();
    cr_assert_eq(nad_augment_flip(NAD_FLIP_HORIZONTAL, img, mask, f, fm), 0);
    for (int k = 0; k < 8; k++) {
        cand[k] = tc_empty();
        cm[k] = tc_empty();
        cr_assert_eq(nad_augment_rot90(k % 4, k < 4 ? img : f, k < 4 ? mask : fm, cand[k], cm[k]), 0);
    }
    nad_augment_params p = {0};
    p.p_hflip = p.p_vflip = 0.5f;
    p.p_rot90 = 0.75f;
    int count[8] = {0};
    nad_rng rng;
    nad_rng_init(&rng, 77);
    for (int t = 0; t < 240; t++) {
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io, mo), 0);
        int found = -1;
        for (int k = 0; k < 8 && found < 0; k++)
            if (same(io, cand[k])) found = k;
        cr_assert(found >= 0, "the output is not a flip or rotation of the input");
        cr_assert(same(mo, cm[found]), "the mask took another transform than the image");
        count[found]++;
    }
    for (int k = 0; k < 8; k++) cr_assert(count[k] >= 15, "transform %d drawn %d times", k, count[k]);
    /* rotation alone: 90, 180 and 270 equally likely, never 0 */
    p.p_hflip = p.p_vflip = 0;
    p.p_rot90 = 1;
    memset(count, 0, sizeof count);
    for (int t = 0; t < 240; t++) {
        cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, mask, io, mo), 0);
        for (int k = 0; k < 4; k++) count[k] += same(io, cand[k]);
    }
    cr_assert_eq(count[0], 0);
    for (int k = 1; k < 4; k++) cr_assert(count[k] >= 55, "rotation %d drawn %d times", k, count[k]);
    for (int k = 0; k < 8; k++) {
        nad_tensor_free(cand[k]);
        nad_tensor_free(cm[k]);
    }
    nad_workspace_free(ws);
    nad_tensor *t[] = {img, mask, io, mo, f, fm};
    for (int i = 0; i < 6; i++) nad_tensor_free(t[i]);
}

Test(augment, classification_without_mask)
{
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *img = ramp_image(8, 8, 3), *io = tc_empty();
    nad_rng rng;
    nad_rng_init(&rng, 2);
    nad_augment_params p = finetune_params();
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, NULL, io, NULL), 0, "%s", nad_last_error());
    assert_shape(io, 8, 8);
    cr_assert_eq(nad_augment_rot90(1, img, NULL, io, NULL), 0);
    nad_workspace_free(ws);
    nad_tensor_free(img);
    nad_tensor_free(io);
}

Test(augment, errors_name_the_problem_and_leave_outputs_alone)
{
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *img = ramp_image(5, 4, 1), *mask = ramp_mask(4, 5);
    nad_tensor *io = ramp_image(2, 2, 1), *mo = tc_empty();
    cr_assert_eq(nad_augment_flip(0, img, mask, io, mo), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_flip: mask is [4,5] but img is [5,4,1]");
    cr_assert_eq(nad_augment_flip(2, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "augment_flip: axis 2 is neither NAD_FLIP_HORIZONTAL (0) nor "
                     "NAD_FLIP_VERTICAL (1)");
    cr_assert_eq(nad_augment_rot90(1, img, NULL, img, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_rot90: img_out shares storage with img");
    cr_assert_eq(nad_augment_resize(0, 3, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_resize: output size 0x3 is not positive");
    nad_affine_params a = {0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(nad_augment_affine(&a, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_affine: scale 0 is not positive");
    cr_assert_eq(nad_augment_blur(ws, -1, img, io), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_blur: sigma -1 is not positive");
    nad_rng rng;
    nad_rng_init(&rng, 1);
    nad_augment_params p = {0};
    p.p_hflip = 1.5f;
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_apply: p_hflip 1.5 is outside [0, 1]");
    p = (nad_augment_params){0};
    p.crop_h = 3;
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_apply: crop 3x0: give both sizes > 0 or both 0");
    p = (nad_augment_params){0};
    p.normalize = 1;
    p.std[0] = 0;
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, NULL, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_apply: std[0] = 0 (mean 0) is zero or not finite");
    nad_tensor *m2 = ramp_mask(5, 4);
    cr_assert_eq(nad_augment_apply(ws, &rng, &p, img, m2, io, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "augment_apply: mask is given but mask_out is NULL");
    /* io kept its shape and values through all of it */
    assert_shape(io, 2, 2);
    cr_assert_float_eq(nad_tensor_data(io)[3], 3.0f / 4, 1e-7);
    nad_workspace_free(ws);
    nad_tensor *t[] = {img, mask, io, mo, m2};
    for (int i = 0; i < 5; i++) nad_tensor_free(t[i]);
}
