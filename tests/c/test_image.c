/* test_image.c: the image and mask decoders (core/io/) on files the test writes itself with
   libpng, libjpeg and a hand-written BMP writer (image_writers.h): every PNG colour type and
   depth, grey and colour JPEGs, BMP row orders and padding, png_save round trips, both mask
   modes, and truncated, corrupt, missing and oversized files with their exact messages. */
#define _GNU_SOURCE /* memmem, mkdtemp */
#include "check.h"
#include "image_writers.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>
#include <zlib.h>

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/autonad_test_image_XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
}

static void teardown(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(dir);
}

TestSuite(image, .init = setup, .fini = teardown);

/* A path inside the test's directory (rotates through a few static buffers). */
static const char *path_of(const char *name)
{
    static char bufs[8][256];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 256, "%s/%s", dir, name);
    return b;
}

/* Deterministic pseudo-random bytes below limit. */
static void fill_bytes(uint8_t *p, size_t n, uint32_t seed, unsigned limit)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (uint8_t)((s >> 16) % limit);
    }
}

static nad_tensor *load(const char *path, int ch)
{
    nad_tensor *t = tc_empty();
    int rc = nad_image_load(path, ch, t);
    cr_assert_eq(rc, 0, "%s", nad_last_error());
    return t;
}

static void assert_shape(const nad_tensor *t, int64_t h, int64_t w, int64_t c)
{
    cr_assert_eq(nad_tensor_ndim(t), c ? 3 : 2);
    cr_assert_eq(nad_tensor_size(t, 0), h);
    cr_assert_eq(nad_tensor_size(t, 1), w);
    if (c) cr_assert_eq(nad_tensor_size(t, 2), c);
}

static void assert_info(const char *path, int32_t h, int32_t w, int32_t c)
{
    int32_t hh = -1, ww = -1, cc = -1;
    cr_assert_eq(nad_image_info(path, &hh, &ww, &cc), 0, "%s", nad_last_error());
    cr_assert(hh == h && ww == w && cc == c, "info %dx%dx%d, expected %dx%dx%d", hh, ww, cc, h,
              w, c);
}

static float luma(float r, float g, float b)
{
    return r == g && g == b ? r : 0.299f * r + 0.587f * g + 0.114f * b;
}

/* ---- PNG ---- */

Test(image, png_grey8_exact_and_replicated)
{
    enum { W = 7, H = 5 };
    uint8_t px[W * H];
    fill_bytes(px, sizeof px, 1, 256);
    const char *p = path_of("g8.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0), 0);
    assert_info(p, H, W, 1);
    nad_tensor *g = load(p, 1), *c = load(p, 3);
    assert_shape(g, H, W, 1);
    assert_shape(c, H, W, 3);
    for (int i = 0; i < W * H; i++) {
        cr_assert_eq(nad_tensor_data(g)[i], px[i] / 255.0f);
        for (int k = 0; k < 3; k++) cr_assert_eq(nad_tensor_data(c)[3 * i + k], px[i] / 255.0f);
    }
    nad_tensor_free(g);
    nad_tensor_free(c);
}

Test(image, png_grey16_keeps_16_bits)
{
    enum { W = 6, H = 3 };
    uint8_t px[W * H * 2];
    fill_bytes(px, sizeof px, 2, 256);
    const char *p = path_of("g16.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_GRAY, 16, 0, px, NULL, 0, NULL, 0), 0);
    assert_info(p, H, W, 1);
    nad_tensor *g = load(p, 1);
    for (int i = 0; i < W * H; i++) {
        float want = (float)(px[2 * i] << 8 | px[2 * i + 1]) / 65535.0f;
        cr_assert_eq(nad_tensor_data(g)[i], want, "pixel %d", i);
    }
    nad_tensor_free(g);
}

Test(image, png_low_depth_grey_is_scaled_to_its_depth)
{
    enum { W = 9, H = 2 };
    uint8_t px[W * H];
    fill_bytes(px, sizeof px, 3, 2);
    const char *p = path_of("g1.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_GRAY, 1, 0, px, NULL, 0, NULL, 0), 0);
    nad_tensor *g = load(p, 1);
    for (int i = 0; i < W * H; i++) cr_assert_eq(nad_tensor_data(g)[i], (float)px[i]);
    nad_tensor_free(g);
}

Test(image, png_grey_alpha_drops_alpha)
{
    enum { W = 4, H = 4 };
    uint8_t px[W * H * 2];
    fill_bytes(px, sizeof px, 4, 256);
    const char *p = path_of("ga.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, px, NULL, 0, NULL, 0), 0);
    assert_info(p, H, W, 2);
    nad_tensor *c = load(p, 3);
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 3; k++) cr_assert_eq(nad_tensor_data(c)[3 * i + k], px[2 * i] / 255.0f);
    nad_tensor_free(c);
}

static void check_rgb(const nad_tensor *c, const nad_tensor *g, const uint8_t *px, int n,
                      int stride, float scale, int bytes)
{
    for (int i = 0; i < n; i++) {
        float v[3];
        for (int k = 0; k < 3; k++) {
            const uint8_t *s = px + (size_t)i * stride + k * bytes;
            v[k] = (bytes == 2 ? (s[0] << 8 | s[1]) : s[0]) / scale;
            cr_assert_eq(nad_tensor_data(c)[3 * i + k], v[k], "pixel %d channel %d", i, k);
        }
        cr_assert_float_eq(nad_tensor_data(g)[i], luma(v[0], v[1], v[2]), 1e-6, "pixel %d", i);
    }
}

Test(image, png_rgb8_and_luma)
{
    enum { W = 5, H = 6 };
    uint8_t px[W * H * 3];
    fill_bytes(px, sizeof px, 5, 256);
    const char *p = path_of("rgb.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0), 0);
    assert_info(p, H, W, 3);
    nad_tensor *c = load(p, 3), *g = load(p, 1);
    check_rgb(c, g, px, W * H, 3, 255.0f, 1);
    nad_tensor_free(c);
    nad_tensor_free(g);
}

Test(image, png_rgba16_interlaced)
{
    enum { W = 11, H = 9 }; /* odd sizes exercise every Adam7 pass */
    uint8_t px[W * H * 8];
    fill_bytes(px, sizeof px, 6, 256);
    const char *p = path_of("rgba16.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_RGBA, 16, 1, px, NULL, 0, NULL, 0), 0);
    assert_info(p, H, W, 4);
    nad_tensor *c = load(p, 3), *g = load(p, 1);
    check_rgb(c, g, px, W * H, 8, 65535.0f, 2);
    nad_tensor_free(c);
    nad_tensor_free(g);
}

Test(image, png_palette_colours_and_indices)
{
    enum { W = 7, H = 3, NPAL = 12 };
    uint8_t pal[NPAL * 3], idx[W * H], trns[2] = {0, 128};
    fill_bytes(pal, sizeof pal, 7, 256);
    fill_bytes(idx, sizeof idx, 8, NPAL);
    const char *p = path_of("pal4.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_PALETTE, 4, 0, idx, pal, NPAL, trns, 2), 0);
    assert_info(p, H, W, 3);
    nad_tensor *c = load(p, 3), *m = tc_empty();
    for (int i = 0; i < W * H; i++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(nad_tensor_data(c)[3 * i + k], pal[3 * idx[i] + k] / 255.0f);
    cr_assert_eq(nad_mask_load(p, -1, 0, m), 0, "%s", nad_last_error());
    assert_shape(m, H, W, 0);
    for (int i = 0; i < W * H; i++) cr_assert_eq(nad_tensor_data(m)[i], (float)idx[i]);
    nad_tensor_free(c);
    nad_tensor_free(m);
}

Test(image, png_grey_palette_reports_one_channel)
{
    uint8_t pal[3 * 3] = {0, 0, 0, 128, 128, 128, 255, 255, 255}, idx[4] = {0, 1, 2, 1};
    const char *p = path_of("greypal.png");
    cr_assert_eq(tw_png(p, 2, 2, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, pal, 3, NULL, 0), 0);
    assert_info(p, 2, 2, 1);
    nad_tensor *g = load(p, 1);
    cr_assert_eq(nad_tensor_data(g)[1], 128 / 255.0f);
    nad_tensor_free(g);
}

/* ---- JPEG ---- */

static void smooth(uint8_t *px, int w, int h, int comps)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < comps; k++)
                px[(y * w + x) * comps + k] = (uint8_t)(40 + 6 * x + 5 * y + 30 * k);
}

static void check_jpeg(int comps, int progressive)
{
    enum { W = 24, H = 17 };
    uint8_t px[W * H * 3];
    smooth(px, W, H, comps);
    const char *p = path_of(comps == 1 ? "g.jpg" : "c.jpg");
    cr_assert_eq(tw_jpeg(p, W, H, comps, 100, progressive, px), 0);
    assert_info(p, H, W, comps);
    nad_tensor *c = load(p, 3), *g = load(p, 1);
    assert_shape(c, H, W, 3);
    for (int i = 0; i < W * H; i++) {
        float v[3];
        for (int k = 0; k < 3; k++) {
            v[k] = px[i * comps + (comps == 1 ? 0 : k)] / 255.0f;
            cr_assert_float_eq(nad_tensor_data(c)[3 * i + k], v[k], 3.0 / 255, "pixel %d", i);
        }
        cr_assert_float_eq(nad_tensor_data(g)[i], luma(v[0], v[1], v[2]), 3.0 / 255);
    }
    nad_tensor_free(c);
    nad_tensor_free(g);
}

Test(image, jpeg_grey_q100) { check_jpeg(1, 0); }
Test(image, jpeg_rgb_q100) { check_jpeg(3, 0); }
Test(image, jpeg_rgb_progressive) { check_jpeg(3, 1); }

/* ---- BMP ---- */

static void check_bmp(int bpp, int w, int top_down)
{
    enum { H = 4 };
    uint8_t px[64 * H * 3], pal[256 * 3];
    for (int i = 0; i < 256; i++) pal[3 * i] = pal[3 * i + 1] = pal[3 * i + 2] = (uint8_t)i;
    fill_bytes(px, sizeof px, (uint32_t)(bpp * 10 + w), 256);
    const char *p = path_of("x.bmp");
    cr_assert(tw_bmp(p, w, H, bpp, top_down, px, pal, 256, 0) > 0);
    assert_info(p, H, w, bpp == 8 ? 1 : 3);
    nad_tensor *c = load(p, 3), *g = load(p, 1);
    int ch = bpp == 8 ? 1 : 3;
    for (int i = 0; i < w * H; i++) {
        float v[3];
        for (int k = 0; k < 3; k++) {
            v[k] = px[i * ch + (ch == 1 ? 0 : k)] / 255.0f;
            cr_assert_eq(nad_tensor_data(c)[3 * i + k], v[k], "bpp %d w %d td %d pixel %d", bpp,
                         w, top_down, i);
        }
        cr_assert_float_eq(nad_tensor_data(g)[i], luma(v[0], v[1], v[2]), 1e-6);
    }
    nad_tensor_free(c);
    nad_tensor_free(g);
}

Test(image, bmp_8bit_palette_rows_and_padding)
{
    for (int w = 1; w <= 6; w++) {
        check_bmp(8, w, 0);
        check_bmp(8, w, 1);
    }
}

Test(image, bmp_24bit_rows_and_padding)
{
    for (int w = 1; w <= 5; w++) {
        check_bmp(24, w, 0);
        check_bmp(24, w, 1);
    }
}

Test(image, bmp_32bit) { check_bmp(32, 3, 0); }

Test(image, bmp_colour_palette_and_mask_indices)
{
    uint8_t pal[4 * 3] = {10, 20, 30, 200, 100, 0, 0, 0, 255, 7, 7, 7}, idx[6] = {0, 1, 2, 3, 2, 1};
    const char *p = path_of("cpal.bmp");
    cr_assert(tw_bmp(p, 3, 2, 8, 0, idx, pal, 4, 0) > 0);
    assert_info(p, 2, 3, 3);
    nad_tensor *c = load(p, 3), *m = tc_empty();
    for (int i = 0; i < 6; i++)
        for (int k = 0; k < 3; k++)
            cr_assert_eq(nad_tensor_data(c)[3 * i + k], pal[3 * idx[i] + k] / 255.0f);
    cr_assert_eq(nad_mask_load(p, -1, 0, m), 0, "%s", nad_last_error());
    for (int i = 0; i < 6; i++) cr_assert_eq(nad_tensor_data(m)[i], (float)idx[i]);
    nad_tensor_free(c);
    nad_tensor_free(m);
}

/* ---- png_save round trips ---- */

Test(image, png_save_round_trips)
{
    nad_rng rng;
    nad_rng_init(&rng, 9);
    for (int ch = 1; ch <= 3; ch += 2) {
        nad_tensor *x = tc_rand(&rng, TC_SIZES(5, 7, ch));
        float *d = nad_tensor_data(x);
        for (int i = 0; i < 5 * 7 * ch; i++) d[i] = (float)((i * 37) % 256) / 255.0f;
        d[0] = -0.5f; /* clamped */
        d[1] = 1.7f;
        const char *p = path_of("save.png");
        cr_assert_eq(nad_png_save(p, x), 0, "%s", nad_last_error());
        assert_info(p, 5, 7, ch);
        nad_tensor *y = load(p, ch);
        d[0] = 0, d[1] = 1;
        cr_assert(tc_close(y, x, 0, 0));
        nad_tensor_free(x);
        nad_tensor_free(y);
    }
}

Test(image, png_save_strided_view)
{
    nad_rng rng;
    nad_rng_init(&rng, 10);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(4, 6, 3));
    for (int i = 0; i < 72; i++) nad_tensor_data(x)[i] = (float)(i % 256) / 255.0f;
    nad_tensor *v = nad_tensor_narrow(x, 1, 2, 3); /* [4,3,3], rows strided */
    const char *p = path_of("view.png");
    cr_assert_eq(nad_png_save(p, v), 0, "%s", nad_last_error());
    nad_tensor *y = load(p, 3);
    cr_assert(tc_close(y, v, 0, 0));
    nad_tensor_free(v);
    nad_tensor_free(x);
    nad_tensor_free(y);
}

Test(image, png_save_mask_round_trips_and_rejects_non_integers)
{
    nad_tensor *m = tc_zeros(TC_SIZES(3, 4)), *back = tc_empty();
    for (int i = 0; i < 12; i++) nad_tensor_data(m)[i] = (float)(i * 23 % 256);
    nad_tensor_data(m)[5] = 255;
    const char *p = path_of("mask.png");
    cr_assert_eq(nad_png_save(p, m), 0, "%s", nad_last_error());
    cr_assert_eq(nad_mask_load(p, -1, 0, back), 0, "%s", nad_last_error());
    cr_assert(tc_close(back, m, 0, 0));
    nad_tensor_data(m)[6] = 2.5f;
    const char *q = path_of("bad_mask.png");
    cr_assert_eq(nad_png_save(q, m), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "png_save: mask value 2.5 at row 1, column 2 is not an integer in 0..255");
    cr_assert_eq(access(q, F_OK), -1, "no file is left behind");
    nad_tensor *bad = tc_zeros(TC_SIZES(2, 2, 2));
    cr_assert_eq(nad_png_save(q, bad), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "png_save: img is [2,2,2], expected [H,W,1], [H,W,3] or a mask [H,W]");
    char nodir[300];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir.png", dir);
    cr_assert_eq(nad_png_save(nodir, m), NAD_EINVAL); /* the 2.5 is found before any file */
    nad_tensor_data(m)[6] = 2;
    cr_assert_eq(nad_png_save(nodir, m), NAD_EIO);
    char want[400];
    snprintf(want, sizeof want, "png_save: %s: cannot create (No such file or directory)", nodir);
    cr_assert_str_eq(nad_last_error(), want);
    nad_tensor_free(m);
    nad_tensor_free(back);
    nad_tensor_free(bad);
}

/* ---- masks ---- */

Test(image, mask_threshold_mode)
{
    uint8_t px[6] = {0, 127, 128, 255, 200, 3};
    const char *p = path_of("aa.png");
    cr_assert_eq(tw_png(p, 3, 2, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0), 0);
    nad_tensor *m = tc_empty();
    cr_assert_eq(nad_mask_load(p, 128, 4, m), 0, "%s", nad_last_error());
    assert_shape(m, 2, 3, 0);
    float want[6] = {0, 0, 4, 4, 4, 0};
    for (int i = 0; i < 6; i++) cr_assert_eq(nad_tensor_data(m)[i], want[i]);
    /* class-index mode keeps the values, 255 included (VOC's ignore label) */
    cr_assert_eq(nad_mask_load(p, -1, 0, m), 0, "%s", nad_last_error());
    for (int i = 0; i < 6; i++) cr_assert_eq(nad_tensor_data(m)[i], (float)px[i]);
    nad_tensor_free(m);
}

Test(image, mask_16bit_threshold_on_8bit_scale)
{
    uint8_t px[8] = {0x7f, 0x00, 0x80, 0x00, 0xff, 0xff, 0x00, 0x01}; /* 32512 32768 65535 1 */
    const char *p = path_of("m16.png");
    cr_assert_eq(tw_png(p, 4, 1, PNG_COLOR_TYPE_GRAY, 16, 0, px, NULL, 0, NULL, 0), 0);
    nad_tensor *m = tc_empty();
    cr_assert_eq(nad_mask_load(p, 128, 1, m), 0, "%s", nad_last_error());
    float want[4] = {0, 1, 1, 0}; /* 8-bit scale: 32512 -> 127, 32768 -> 128 (rounded) */
    for (int i = 0; i < 4; i++) cr_assert_eq(nad_tensor_data(m)[i], want[i], "pixel %d", i);
    cr_assert_eq(nad_mask_load(p, -1, 0, m), 0);
    cr_assert_eq(nad_tensor_data(m)[2], 65535.0f);
    nad_tensor_free(m);
}

Test(image, mask_colour_files)
{
    uint8_t grey[6] = {5, 5, 5, 9, 9, 9}, colour[6] = {5, 5, 5, 200, 100, 0};
    const char *p = path_of("grey_rgb.png"), *q = path_of("colour.png");
    cr_assert_eq(tw_png(p, 2, 1, PNG_COLOR_TYPE_RGB, 8, 0, grey, NULL, 0, NULL, 0), 0);
    cr_assert_eq(tw_png(q, 2, 1, PNG_COLOR_TYPE_RGB, 8, 0, colour, NULL, 0, NULL, 0), 0);
    nad_tensor *m = tc_empty();
    cr_assert_eq(nad_mask_load(p, -1, 0, m), 0, "%s", nad_last_error());
    cr_assert(nad_tensor_data(m)[0] == 5 && nad_tensor_data(m)[1] == 9);
    cr_assert_eq(nad_mask_load(q, -1, 0, m), NAD_EFORMAT);
    char want[400];
    snprintf(want, sizeof want, "mask_load: %s: colour pixel (200,100,0) at row 0, column 1: a "
             "class mask must be a grey or palette image", q);
    cr_assert_str_eq(nad_last_error(), want);
    cr_assert(nad_tensor_data(m)[0] == 5 && nad_tensor_data(m)[1] == 9, "mask untouched");
    /* threshold mode uses the luma: 0.299*200 + 0.587*100 = 118.5 */
    cr_assert_eq(nad_mask_load(q, 118, 2, m), 0, "%s", nad_last_error());
    cr_assert(nad_tensor_data(m)[0] == 0 && nad_tensor_data(m)[1] == 2);
    nad_tensor_free(m);
}

/* ---- failures ---- */

static uint8_t *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    cr_assert(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n);
    cr_assert_eq(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void spill(const char *p, const uint8_t *b, size_t n)
{
    FILE *f = fopen(p, "wb");
    cr_assert(f && fwrite(b, 1, n, f) == n);
    fclose(f);
}

/* image_load and mask_load on path fail with code and "<fn>: <path>: <reason>", leaving a
   prepared output untouched; image_info too unless the damage lies past the header. */
static void expect_fail_at(const char *p, int code, const char *reason, int in_pixels)
{
    nad_tensor *t = tc_zeros(TC_SIZES(2, 2, 1));
    nad_tensor_fill(t, 7);
    char want[600];
    int rc = nad_image_load(p, 3, t);
    snprintf(want, sizeof want, "image_load: %s: %s", p, reason);
    cr_assert_eq(rc, code, "rc %d: %s", rc, nad_last_error());
    cr_assert_str_eq(nad_last_error(), want);
    cr_assert_eq(nad_tensor_ndim(t), 3);
    cr_assert_eq(nad_tensor_size(t, 2), 1);
    cr_assert_eq(nad_tensor_sum(t), 28.0, "output untouched");
    rc = nad_mask_load(p, -1, 0, t);
    snprintf(want, sizeof want, "mask_load: %s: %s", p, reason);
    cr_assert_eq(rc, code);
    cr_assert_str_eq(nad_last_error(), want);
    cr_assert_eq(nad_tensor_sum(t), 28.0, "output untouched");
    int32_t h, w, c;
    rc = nad_image_info(p, &h, &w, &c);
    snprintf(want, sizeof want, "image_info: %s: %s", p, reason);
    if (in_pixels) {
        cr_assert_eq(rc, 0, "%s", nad_last_error());
    } else {
        cr_assert_eq(rc, code);
        cr_assert_str_eq(nad_last_error(), want);
    }
    nad_tensor_free(t);
}

static void expect_fail(const char *p, int code, const char *reason)
{
    expect_fail_at(p, code, reason, 0);
}

static void truncate_copy(const char *src, const char *dst, size_t keep)
{
    size_t n;
    uint8_t *b = slurp(src, &n);
    cr_assert(keep < n);
    spill(dst, b, keep);
    free(b);
}

Test(image, missing_empty_and_unknown_files)
{
    const char *p = path_of("missing.png");
    expect_fail(p, NAD_EIO, "cannot open (No such file or directory)");
    expect_fail(dir, NAD_EIO, "is a directory");
    const char *e = path_of("empty.png");
    spill(e, (const uint8_t *)"", 0);
    expect_fail(e, NAD_EFORMAT, "empty file");
    const char *u = path_of("text.png");
    spill(u, (const uint8_t *)"hello, world", 12);
    expect_fail(u, NAD_EFORMAT, "unknown image format (not PNG, JPEG or BMP)");
}

Test(image, png_truncated_and_corrupt)
{
    enum { W = 16, H = 16 };
    uint8_t px[W * H * 3];
    fill_bytes(px, sizeof px, 11, 256);
    const char *p = path_of("ok.png");
    cr_assert_eq(tw_png(p, W, H, PNG_COLOR_TYPE_RGB, 8, 0, px, NULL, 0, NULL, 0), 0);
    size_t n;
    uint8_t *b = slurp(p, &n);
    const char *t = path_of("trunc.png");
    truncate_copy(p, t, n / 2);
    expect_fail_at(t, NAD_EFORMAT, "truncated PNG data", 1);
    truncate_copy(p, t, 20); /* inside IHDR: even the header fails */
    expect_fail(t, NAD_EFORMAT, "truncated PNG data");
    /* the IDAT chunk's CRC no longer matches its content */
    uint8_t *idat = memmem(b, n, "IDAT", 4);
    cr_assert(idat);
    uint32_t len = (uint32_t)idat[-4] << 24 | idat[-3] << 16 | idat[-2] << 8 | idat[-1];
    idat[4 + len] ^= 0x55;
    const char *c = path_of("corrupt.png");
    spill(c, b, n);
    expect_fail_at(c, NAD_EFORMAT, "corrupt PNG (IDAT: CRC error)", 1);
    free(b);
}

Test(image, jpeg_truncated_and_corrupt)
{
    enum { W = 32, H = 32 };
    uint8_t px[W * H * 3];
    fill_bytes(px, sizeof px, 12, 256);
    const char *p = path_of("ok.jpg");
    cr_assert_eq(tw_jpeg(p, W, H, 3, 90, 0, px), 0);
    size_t n;
    uint8_t *b = slurp(p, &n);
    const char *t = path_of("trunc.jpg");
    truncate_copy(p, t, n * 2 / 3);
    expect_fail_at(t, NAD_EFORMAT, "truncated JPEG data", 1);
    truncate_copy(p, t, 40);
    expect_fail(t, NAD_EFORMAT, "truncated JPEG data");
    /* SOF0's precision byte: 8 -> 9 bits */
    uint8_t *sof = memmem(b, n, "\xff\xc0", 2);
    cr_assert(sof);
    sof[4] = 9;
    const char *c = path_of("corrupt.jpg");
    spill(c, b, n);
    expect_fail(c, NAD_EFORMAT, "corrupt JPEG (Unsupported JPEG data precision 9)");
    free(b);
}

Test(image, bmp_truncated_corrupt_and_unsupported)
{
    uint8_t px[5 * 4 * 3] = {0}, pal[3] = {0};
    const char *p = path_of("ok.bmp");
    long n = tw_bmp(p, 5, 4, 24, 0, px, pal, 1, 0);
    cr_assert(n > 0);
    const char *t = path_of("trunc.bmp");
    truncate_copy(p, t, (size_t)n - 20);
    expect_fail(t, NAD_EFORMAT, "truncated BMP data"); /* BMP checks the pixel data's size */
    truncate_copy(p, t, 30);
    expect_fail(t, NAD_EFORMAT, "truncated BMP data");
    size_t sz;
    uint8_t *b = slurp(p, &sz);
    tw_le32(b + 10, 20); /* pixel data offset inside the header */
    const char *c = path_of("corrupt.bmp");
    spill(c, b, sz);
    expect_fail(c, NAD_EFORMAT, "BMP pixel data offset 20 inside the header");
    free(b);
    const char *r = path_of("rle.bmp");
    cr_assert(tw_bmp(r, 5, 4, 8, 0, px, pal, 1, 1) > 0);
    expect_fail(r, NAD_EFORMAT, "unsupported BMP compression 1");
    cr_assert(tw_bmp(r, 5, 4, 4, 0, px, pal, 1, 0) > 0);
    expect_fail(r, NAD_EFORMAT, "unsupported BMP bit depth 4 (8, 24 or 32 are read)");
    cr_assert(tw_bmp(r, 5, 4, 16, 0, px, pal, 1, 0) > 0);
    expect_fail(r, NAD_EFORMAT, "unsupported BMP bit depth 16 (8, 24 or 32 are read)");
}

/* A PNG signature and an IHDR chunk only, with a correct CRC. */
static void png_header_only(const char *p, uint32_t w, uint32_t h)
{
    uint8_t b[8 + 25] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    for (int k = 0; k < 4; k++) {
        b[16 + k] = (uint8_t)(w >> (24 - 8 * k));
        b[20 + k] = (uint8_t)(h >> (24 - 8 * k));
    }
    b[24] = 8; /* depth 8, grey, no interlace */
    uint32_t crc = (uint32_t)crc32(0, b + 12, 17);
    for (int k = 0; k < 4; k++) b[29 + k] = (uint8_t)(crc >> (24 - 8 * k));
    spill(p, b, sizeof b);
}

Test(image, absurd_sizes_are_refused_before_allocating)
{
    const char *p = path_of("huge.png");
    png_header_only(p, 20000, 10);
    expect_fail(p, NAD_EFORMAT, "PNG image is 20000x10, larger than 16384x16384");
    uint8_t px[3] = {0}, pal[3] = {0};
    const char *q = path_of("huge.bmp");
    cr_assert(tw_bmp(q, 1, 1, 24, 0, px, pal, 1, 0) > 0);
    size_t n;
    uint8_t *b = slurp(q, &n);
    tw_le32(b + 22, (uint32_t)-30000); /* top-down, 30000 rows */
    spill(q, b, n);
    expect_fail(q, NAD_EFORMAT, "BMP image is 1x30000, larger than 16384x16384");
    free(b);
}

Test(image, bad_arguments_and_unresizable_output)
{
    uint8_t px[4] = {1, 2, 3, 4};
    const char *p = path_of("s.png");
    cr_assert_eq(tw_png(p, 2, 2, PNG_COLOR_TYPE_GRAY, 8, 0, px, NULL, 0, NULL, 0), 0);
    nad_tensor *t = tc_empty();
    cr_assert_eq(nad_image_load(p, 2, t), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "image_load: channels must be 1 or 3, got 2");
    cr_assert_eq(nad_image_load(p, 1, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "image_load: img is NULL");
    /* a strided view of the right shape is filled; a view that would have to grow is not */
    nad_tensor *big = tc_zeros(TC_SIZES(2, 4, 1)), *v = nad_tensor_narrow(big, 1, 1, 2);
    cr_assert_eq(nad_image_load(p, 1, v), 0, "%s", nad_last_error());
    cr_assert_eq(*tc_at(big, 1), 1 / 255.0f);
    cr_assert_eq(*tc_at(big, 6), 4 / 255.0f);
    cr_assert_eq(*tc_at(big, 0), 0);
    cr_assert_eq(nad_image_load(p, 3, v), NAD_ESTATE);
    nad_tensor_free(v);
    nad_tensor_free(big);
    nad_tensor_free(t);
}

Test(image, decode_from_memory_matches_file)
{
    enum { W = 8, H = 3 };
    uint8_t px[W * H * 3];
    fill_bytes(px, sizeof px, 13, 256);
    const char *p = path_of("mem.jpg");
    cr_assert_eq(tw_jpeg(p, W, H, 3, 95, 0, px), 0);
    size_t n;
    uint8_t *b = slurp(p, &n);
    nad_tensor *a = load(p, 3), *m = tc_empty();
    cr_assert_eq(nad_image_decode("mem.jpg", b, n, 3, m), 0, "%s", nad_last_error());
    cr_assert(tc_close(m, a, 0, 0));
    cr_assert_eq(nad_image_decode("member/x.jpg", b, n / 2, 3, m), NAD_EFORMAT);
    cr_assert_str_eq(nad_last_error(), "image_decode: member/x.jpg: truncated JPEG data");
    cr_assert_eq(nad_mask_decode("m", b, n, 100, 1, m), 0, "%s", nad_last_error());
    assert_shape(m, H, W, 0);
    free(b);
    nad_tensor_free(a);
    nad_tensor_free(m);
}
