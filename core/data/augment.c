/* augment.c: joint image/mask augmentation (flips, 90-degree rotations, resize, crop/pad,
   affine) and image-only photometric operations, plus the per-sample pipeline the data
   loader runs. Kernels work on raw channels-last buffers so the pipeline can chain them in
   workspace memory; the public functions validate, resize their outputs and call them.
   No OpenMP here: the loader already runs one sample per thread. */
#include "../internal.h"
#include <math.h>
#include <string.h>

/* ---- kernels on raw buffers ---- */

/* dst[r, c] = src[i0 + ir r + ic c, j0 + jr r + jc c]; outside the source: fill. Covers
   flips, 90-degree rotations and crops/pads (an integer affine map of the pixel grid). */
static void remap_int(const float *src, int64_t h, int64_t w, int64_t ch, float *dst,
                      int64_t oh, int64_t ow, int64_t i0, int64_t ir, int64_t ic, int64_t j0,
                      int64_t jr, int64_t jc, float fill)
{
    for (int64_t r = 0; r < oh; r++) {
        for (int64_t c = 0; c < ow; c++) {
            int64_t i = i0 + ir * r + ic * c, j = j0 + jr * r + jc * c;
            float *d = dst + (r * ow + c) * ch;
            if (i < 0 || i >= h || j < 0 || j >= w) {
                for (int64_t k = 0; k < ch; k++) d[k] = fill;
            } else {
                const float *s = src + (i * w + j) * ch;
                for (int64_t k = 0; k < ch; k++) d[k] = s[k];
            }
        }
    }
}

/* The integer map of a flip or of a rotation by k*90 degrees counter-clockwise. */
typedef struct {
    int64_t oh, ow, i0, ir, ic, j0, jr, jc;
} int_map;

static int_map flip_map(int32_t axis, int64_t h, int64_t w)
{
    if (axis == NAD_FLIP_HORIZONTAL) return (int_map){h, w, 0, 1, 0, w - 1, 0, -1};
    return (int_map){h, w, h - 1, -1, 0, 0, 0, 1};
}

static int_map rot_map(int32_t k, int64_t h, int64_t w)
{
    switch (((k % 4) + 4) % 4) {
    case 1: /* out[r, c] = in[c, W-1-r] */
        return (int_map){w, h, 0, 0, 1, w - 1, -1, 0};
    case 2: /* out[r, c] = in[H-1-r, W-1-c] */
        return (int_map){h, w, h - 1, -1, 0, w - 1, 0, -1};
    case 3: /* out[r, c] = in[H-1-c, r] */
        return (int_map){w, h, h - 1, 0, -1, 0, 1, 0};
    default:
        return (int_map){h, w, 0, 1, 0, 0, 0, 1};
    }
}

static void apply_map(const int_map *m, const float *src, int64_t h, int64_t w, int64_t ch,
                      float *dst, float fill)
{
    remap_int(src, h, w, ch, dst, m->oh, m->ow, m->i0, m->ir, m->ic, m->j0, m->jr, m->jc, fill);
}

/* PyTorch bilinear, align_corners=False: src = (dst + 0.5) * in / out - 0.5, clamped at 0.
   Also the loader's final resize to the network's input size (internal.h). */
void nad_resample_bilinear(const float *src, int64_t h, int64_t w, int64_t ch, float *dst,
                            int64_t oh, int64_t ow)
{
    const float sh = (float)h / (float)oh, sw = (float)w / (float)ow;
    for (int64_t r = 0; r < oh; r++) {
        float y = ((float)r + 0.5f) * sh - 0.5f;
        if (y < 0) y = 0;
        int64_t y0 = (int64_t)y, y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        float fy = y - (float)y0;
        for (int64_t c = 0; c < ow; c++) {
            float x = ((float)c + 0.5f) * sw - 0.5f;
            if (x < 0) x = 0;
            int64_t x0 = (int64_t)x, x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            float fx = x - (float)x0;
            const float *a = src + (y0 * w + x0) * ch, *b = src + (y0 * w + x1) * ch;
            const float *e = src + (y1 * w + x0) * ch, *f = src + (y1 * w + x1) * ch;
            float *d = dst + (r * ow + c) * ch;
            for (int64_t k = 0; k < ch; k++)
                d[k] = (1 - fy) * ((1 - fx) * a[k] + fx * b[k]) + fy * ((1 - fx) * e[k] + fx * f[k]);
        }
    }
}

/* Nearest at the same pixel centres: source index floor((i + 0.5) * in / out), so a mask
   stays aligned with its bilinearly resized image. */
void nad_resample_nearest(const float *src, int64_t h, int64_t w, float *dst, int64_t oh,
                           int64_t ow)
{
    for (int64_t r = 0; r < oh; r++) {
        int64_t i = (int64_t)(((double)r + 0.5) * (double)h / (double)oh);
        if (i > h - 1) i = h - 1;
        for (int64_t c = 0; c < ow; c++) {
            int64_t j = (int64_t)(((double)c + 0.5) * (double)w / (double)ow);
            if (j > w - 1) j = w - 1;
            dst[r * ow + c] = src[i * w + j];
        }
    }
}

/* The inverse affine map in pixel-index coordinates: source = cen + m (out - cen - t). */
typedef struct {
    double m00, m01, m10, m11, tx, ty, cx, cy;
} affine_inv;

static int affine_invert(const nad_affine_params *p, int64_t h, int64_t w, affine_inv *out)
{
    const double d2r = 3.14159265358979323846 / 180.0;
    double th = p->rotate_deg * d2r, shx = tan(p->shear_x_deg * d2r);
    double shy = tan(p->shear_y_deg * d2r), s = p->scale;
    /* A = R(th) [[1, shx], [shy, 1]] s */
    double c = cos(th), sn = sin(th);
    double a00 = s * (c - sn * shy), a01 = s * (c * shx - sn);
    double a10 = s * (sn + c * shy), a11 = s * (sn * shx + c);
    double det = a00 * a11 - a01 * a10;
    if (!(fabs(det) > 1e-12)) return -1;
    out->m00 = a11 / det;
    out->m01 = -a01 / det;
    out->m10 = -a10 / det;
    out->m11 = a00 / det;
    out->tx = p->translate_x * (double)w;
    out->ty = p->translate_y * (double)h;
    out->cx = 0.5 * (double)(w - 1);
    out->cy = 0.5 * (double)(h - 1);
    return 0;
}

/* Bilinear image / nearest mask through the inverse map. A source point is inside when its
   nearest pixel is (x in [-0.5, W-0.5)), so the image's fill region is exactly the mask's
   ignore region; inside, bilinear neighbours beyond the edge are clamped. */
static void affine_kernel(const affine_inv *a, float fill, const float *src, const float *msrc,
                          int64_t h, int64_t w, int64_t ch, float *dst, float *mdst)
{
    for (int64_t r = 0; r < h; r++) {
        double oy = (double)r - a->cy - a->ty;
        for (int64_t c = 0; c < w; c++) {
            double ox = (double)c - a->cx - a->tx;
            double x = a->cx + a->m00 * ox + a->m01 * oy;
            double y = a->cy + a->m10 * ox + a->m11 * oy;
            float *d = dst + (r * w + c) * ch;
            if (!(x >= -0.5 && x < (double)w - 0.5 && y >= -0.5 && y < (double)h - 0.5)) {
                for (int64_t k = 0; k < ch; k++) d[k] = fill;
                if (mdst) mdst[r * w + c] = (float)NAD_MASK_IGNORE;
                continue;
            }
            int64_t xn = (int64_t)floor(x + 0.5), yn = (int64_t)floor(y + 0.5);
            if (xn > w - 1) xn = w - 1;
            if (yn > h - 1) yn = h - 1;
            if (mdst) mdst[r * w + c] = msrc[yn * w + xn];
            double xf = floor(x), yf = floor(y);
            float fx = (float)(x - xf), fy = (float)(y - yf);
            int64_t x0 = (int64_t)xf, y0 = (int64_t)yf, x1 = x0 + 1, y1 = y0 + 1;
            x0 = x0 < 0 ? 0 : x0;
            y0 = y0 < 0 ? 0 : y0;
            x1 = x1 > w - 1 ? w - 1 : x1;
            y1 = y1 > h - 1 ? h - 1 : y1;
            const float *p00 = src + (y0 * w + x0) * ch, *p01 = src + (y0 * w + x1) * ch;
            const float *p10 = src + (y1 * w + x0) * ch, *p11 = src + (y1 * w + x1) * ch;
            for (int64_t k = 0; k < ch; k++)
                d[k] = (1 - fy) * ((1 - fx) * p00[k] + fx * p01[k]) +
                       fy * ((1 - fx) * p10[k] + fx * p11[k]);
        }
    }
}

static inline float clamp01(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

static void contrast_kernel(float alpha, const float *x, int64_t npix, int64_t ch, float *y)
{
    for (int64_t k = 0; k < ch; k++) {
        double sum = 0;
        for (int64_t i = 0; i < npix; i++) sum += x[i * ch + k];
        float m = (float)(sum / (double)npix);
        for (int64_t i = 0; i < npix; i++) y[i * ch + k] = clamp01(m + alpha * (x[i * ch + k] - m));
    }
}

static void brightness_kernel(float delta, const float *x, int64_t n, float *y)
{
    for (int64_t i = 0; i < n; i++) y[i] = clamp01(x[i] + delta);
}

enum { BLUR_MAX_RADIUS = 31 };

/* Separable Gaussian, replicated borders: tmp = rows pass of x, y = columns pass of tmp. */
static void blur_kernel(float sigma, const float *x, int64_t h, int64_t w, int64_t ch,
                        float *tmp, float *y)
{
    int64_t rad = (int64_t)ceilf(3.0f * sigma);
    if (rad > BLUR_MAX_RADIUS) rad = BLUR_MAX_RADIUS;
    if (rad < 1) rad = 1;
    float g[2 * BLUR_MAX_RADIUS + 1];
    float sum = 0;
    for (int64_t i = -rad; i <= rad; i++) sum += g[i + rad] = expf(-0.5f * (float)(i * i) / (sigma * sigma));
    for (int64_t i = 0; i <= 2 * rad; i++) g[i] /= sum;
    for (int64_t r = 0; r < h; r++) {
        for (int64_t c = 0; c < w; c++) {
            float *d = tmp + (r * w + c) * ch;
            for (int64_t k = 0; k < ch; k++) d[k] = 0;
            for (int64_t t = -rad; t <= rad; t++) {
                int64_t j = c + t;
                j = j < 0 ? 0 : (j >= w ? w - 1 : j);
                const float *s = x + (r * w + j) * ch;
                for (int64_t k = 0; k < ch; k++) d[k] += g[t + rad] * s[k];
            }
        }
    }
    for (int64_t r = 0; r < h; r++) {
        float *d = y + r * w * ch;
        for (int64_t q = 0; q < w * ch; q++) d[q] = 0;
        for (int64_t t = -rad; t <= rad; t++) {
            int64_t i = r + t;
            i = i < 0 ? 0 : (i >= h ? h - 1 : i);
            const float *s = tmp + i * w * ch;
            for (int64_t q = 0; q < w * ch; q++) d[q] += g[t + rad] * s[q];
        }
    }
    for (int64_t q = 0; q < h * w * ch; q++) y[q] = clamp01(y[q]);
}

/* y = x + amount (x - box3(x)); x must not alias y (the caller copies first). */
static void sharpen_kernel(float amount, const float *x, int64_t h, int64_t w, int64_t ch,
                           float *y)
{
    for (int64_t r = 0; r < h; r++) {
        for (int64_t c = 0; c < w; c++) {
            for (int64_t k = 0; k < ch; k++) {
                float s = 0;
                for (int64_t dr = -1; dr <= 1; dr++) {
                    int64_t i = r + dr;
                    i = i < 0 ? 0 : (i >= h ? h - 1 : i);
                    for (int64_t dc = -1; dc <= 1; dc++) {
                        int64_t j = c + dc;
                        j = j < 0 ? 0 : (j >= w ? w - 1 : j);
                        s += x[(i * w + j) * ch + k];
                    }
                }
                float v = x[(r * w + c) * ch + k];
                y[(r * w + c) * ch + k] = clamp01(v + amount * (v - s * (1.0f / 9.0f)));
            }
        }
    }
}

static void noise_kernel(nad_rng *rng, float std, const float *x, int64_t n, float *y)
{
    for (int64_t i = 0; i < n; i++) {
        /* Box-Muller on two draws */
        double u1 = ((double)(nad_rng_next_u64(rng) >> 11) + 1.0) / 9007199254740993.0;
        double u2 = (double)(nad_rng_next_u64(rng) >> 11) / 9007199254740992.0;
        double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
        y[i] = clamp01(x[i] + std * (float)z);
    }
}

static void dropout_kernel(nad_rng *rng, float rate, const float *x, int64_t npix, int64_t ch,
                           float *y)
{
    for (int64_t i = 0; i < npix; i++) {
        int drop = nad_rng_next_double(rng) < (double)rate;
        for (int64_t k = 0; k < ch; k++) y[i * ch + k] = drop ? 0.0f : x[i * ch + k];
    }
}

static void normalize_kernel(const float *mean, const float *std, const float *x, int64_t npix,
                             int64_t ch, float *y)
{
    for (int64_t i = 0; i < npix; i++)
        for (int64_t k = 0; k < ch; k++) y[i * ch + k] = (x[i * ch + k] - mean[k]) / std[k];
}

/* ---- checks shared by the public functions ---- */

static int check_image(const char *fn, const nad_tensor *img)
{
    int rc = nad_check_contig(fn, "img", img);
    if (rc || (rc = nad_check_ndim(fn, "img", img, 3))) return rc;
    if (img->size[0] < 1 || img->size[1] < 1 || img->size[2] < 1) {
        char b[96];
        return nad_fail(NAD_EINVAL, "%s: img %s is empty", fn, nad_shape_str(img, b, sizeof b));
    }
    return 0;
}

/* img [H,W,C]; mask NULL or [H,W] with mask_out given; outputs distinct from inputs. */
static int check_pair(const char *fn, const nad_tensor *img, const nad_tensor *mask,
                      const nad_tensor *img_out, const nad_tensor *mask_out, bool distinct)
{
    int rc = check_image(fn, img);
    if (rc || (rc = nad_check_tensor(fn, "img_out", img_out))) return rc;
    if (distinct && nad_tensor_same_storage(img, img_out))
        return nad_fail(NAD_EINVAL, "%s: img_out shares storage with img", fn);
    if (!mask) return 0;
    if ((rc = nad_check_contig(fn, "mask", mask)) || (rc = nad_check_ndim(fn, "mask", mask, 2)))
        return rc;
    if (mask->size[0] != img->size[0] || mask->size[1] != img->size[1]) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: mask is %s but img is %s", fn,
                        nad_shape_str(mask, b1, sizeof b1), nad_shape_str(img, b2, sizeof b2));
    }
    if (!mask_out) return nad_fail(NAD_EINVAL, "%s: mask is given but mask_out is NULL", fn);
    if (distinct && (nad_tensor_same_storage(mask, mask_out) ||
                     nad_tensor_same_storage(img, mask_out) ||
                     nad_tensor_same_storage(img_out, mask_out)))
        return nad_fail(NAD_EINVAL, "%s: mask_out shares storage with another argument", fn);
    return 0;
}

/* Resizes img_out to [oh, ow, C] and mask_out (when mask) to [oh, ow]. */
static int resize_outputs(const nad_tensor *img, const nad_tensor *mask, int64_t oh, int64_t ow,
                          nad_tensor *img_out, nad_tensor *mask_out)
{
    int64_t s[3] = {oh, ow, img->size[2]};
    int rc = nad_tensor_resize(img_out, 3, s);
    if (!rc && mask) rc = nad_tensor_resize(mask_out, 2, s);
    return rc;
}

static int run_map(const char *fn, const int_map *m, float fill, const nad_tensor *img,
                   const nad_tensor *mask, nad_tensor *img_out, nad_tensor *mask_out)
{
    int64_t h = img->size[0], w = img->size[1], ch = img->size[2];
    int rc = resize_outputs(img, mask, m->oh, m->ow, img_out, mask_out);
    if (rc) return rc;
    apply_map(m, nad_data(img), h, w, ch, nad_data(img_out), fill);
    if (mask) apply_map(m, nad_data(mask), h, w, 1, nad_data(mask_out), (float)NAD_MASK_IGNORE);
    return 0;
}

/* ---- public geometric operations ---- */

int nad_augment_flip(int32_t axis, const nad_tensor *img, const nad_tensor *mask,
                     nad_tensor *img_out, nad_tensor *mask_out)
{
    const char *fn = "augment_flip";
    int rc = check_pair(fn, img, mask, img_out, mask_out, true);
    if (rc) return rc;
    if (axis != NAD_FLIP_HORIZONTAL && axis != NAD_FLIP_VERTICAL)
        return nad_fail(NAD_EINVAL, "%s: axis %d is neither NAD_FLIP_HORIZONTAL (0) nor "
                                    "NAD_FLIP_VERTICAL (1)", fn, axis);
    int_map m = flip_map(axis, img->size[0], img->size[1]);
    return run_map(fn, &m, 0, img, mask, img_out, mask_out);
}

int nad_augment_rot90(int32_t k, const nad_tensor *img, const nad_tensor *mask,
                      nad_tensor *img_out, nad_tensor *mask_out)
{
    int rc = check_pair("augment_rot90", img, mask, img_out, mask_out, true);
    if (rc) return rc;
    int_map m = rot_map(k, img->size[0], img->size[1]);
    return run_map("augment_rot90", &m, 0, img, mask, img_out, mask_out);
}

int nad_augment_resize(int32_t out_h, int32_t out_w, const nad_tensor *img,
                       const nad_tensor *mask, nad_tensor *img_out, nad_tensor *mask_out)
{
    const char *fn = "augment_resize";
    int rc = check_pair(fn, img, mask, img_out, mask_out, true);
    if (rc) return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d is not positive", fn, out_h, out_w);
    if ((rc = resize_outputs(img, mask, out_h, out_w, img_out, mask_out))) return rc;
    int64_t h = img->size[0], w = img->size[1];
    nad_resample_bilinear(nad_data(img), h, w, img->size[2], nad_data(img_out), out_h, out_w);
    if (mask) nad_resample_nearest(nad_data(mask), h, w, nad_data(mask_out), out_h, out_w);
    return 0;
}

int nad_augment_crop(int32_t top, int32_t left, int32_t out_h, int32_t out_w, float pad_value,
                     const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                     nad_tensor *mask_out)
{
    const char *fn = "augment_crop";
    int rc = check_pair(fn, img, mask, img_out, mask_out, true);
    if (rc) return rc;
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d is not positive", fn, out_h, out_w);
    int_map m = {out_h, out_w, top, 1, 0, left, 0, 1};
    return run_map(fn, &m, pad_value, img, mask, img_out, mask_out);
}

/* uniform integer in [0, n] */
static int64_t rand_upto(nad_rng *rng, int64_t n)
{
    int64_t v = (int64_t)(nad_rng_next_double(rng) * (double)(n + 1));
    return v > n ? n : v;
}

/* Window start along one dim: inside a larger image, or a negative offset into the pad. */
static int64_t crop_start(nad_rng *rng, int64_t size, int64_t out)
{
    return size >= out ? rand_upto(rng, size - out) : -rand_upto(rng, out - size);
}

int nad_augment_random_crop(nad_rng *rng, int32_t out_h, int32_t out_w, float pad_value,
                            const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                            nad_tensor *mask_out)
{
    const char *fn = "augment_random_crop";
    int rc = check_pair(fn, img, mask, img_out, mask_out, true);
    if (rc) return rc;
    if (!rng) return nad_fail(NAD_EINVAL, "%s: rng is NULL", fn);
    if (out_h < 1 || out_w < 1)
        return nad_fail(NAD_EINVAL, "%s: output size %dx%d is not positive", fn, out_h, out_w);
    int64_t top = crop_start(rng, img->size[0], out_h), left = crop_start(rng, img->size[1], out_w);
    int_map m = {out_h, out_w, top, 1, 0, left, 0, 1};
    return run_map(fn, &m, pad_value, img, mask, img_out, mask_out);
}

static int check_affine(const char *fn, const nad_affine_params *p, int64_t h, int64_t w,
                        affine_inv *inv)
{
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if (!(p->scale > 0) || !isfinite(p->scale))
        return nad_fail(NAD_EINVAL, "%s: scale %g is not positive", fn, p->scale);
    if (!(fabsf(p->shear_x_deg) < 80 && fabsf(p->shear_y_deg) < 80))
        return nad_fail(NAD_EINVAL, "%s: shear (%g, %g) degrees is outside (-80, 80)", fn,
                        p->shear_x_deg, p->shear_y_deg);
    if (!isfinite(p->translate_x) || !isfinite(p->translate_y) || !isfinite(p->rotate_deg))
        return nad_fail(NAD_EINVAL, "%s: translate and rotate must be finite", fn);
    if (affine_invert(p, h, w, inv))
        return nad_fail(NAD_EINVAL, "%s: the shear and rotation give a singular map", fn);
    return 0;
}

int nad_augment_affine(const nad_affine_params *p, const nad_tensor *img, const nad_tensor *mask,
                       nad_tensor *img_out, nad_tensor *mask_out)
{
    const char *fn = "augment_affine";
    int rc = check_pair(fn, img, mask, img_out, mask_out, true);
    if (rc) return rc;
    affine_inv inv;
    int64_t h = img->size[0], w = img->size[1];
    if ((rc = check_affine(fn, p, h, w, &inv))) return rc;
    if ((rc = resize_outputs(img, mask, h, w, img_out, mask_out))) return rc;
    affine_kernel(&inv, p->fill, nad_data(img), mask ? nad_data(mask) : NULL, h, w, img->size[2],
                  nad_data(img_out), mask ? nad_data(mask_out) : NULL);
    return 0;
}

/* ---- public photometric operations ---- */

/* floats of scratch from ws, or NULL with "<fn>: ..." set */
static float *scratch(const char *fn, nad_workspace *ws, size_t floats)
{
    if (!ws) {
        nad_fail(NAD_EINVAL, "%s: ws is NULL", fn);
        return NULL;
    }
    float *p = nad_workspace_get(ws, floats * sizeof(float));
    if (!p) nad_fail(NAD_ENOMEM, "%s: out of memory for %zu floats of scratch", fn, floats);
    return p;
}

static int check_photo(const char *fn, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_image(fn, x);
    if (rc || (rc = nad_check_tensor(fn, "y", y))) return rc;
    if (y != x && nad_tensor_same_storage(x, y))
        return nad_fail(NAD_EINVAL, "%s: y shares storage with x without being x", fn);
    return 0;
}

static int prepare_y(const nad_tensor *x, nad_tensor *y)
{
    return y == x ? 0 : nad_resize_as(y, x);
}

int nad_augment_contrast(float alpha, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_contrast", x, y);
    if (rc) return rc;
    if (!isfinite(alpha)) return nad_fail(NAD_EINVAL, "augment_contrast: alpha is not finite");
    if ((rc = prepare_y(x, y))) return rc;
    contrast_kernel(alpha, nad_data(x), x->size[0] * x->size[1], x->size[2], nad_data(y));
    return 0;
}

int nad_augment_brightness(float delta, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_brightness", x, y);
    if (rc) return rc;
    if (!isfinite(delta)) return nad_fail(NAD_EINVAL, "augment_brightness: delta is not finite");
    if ((rc = prepare_y(x, y))) return rc;
    brightness_kernel(delta, nad_data(x), nad_numel(x), nad_data(y));
    return 0;
}

int nad_augment_blur(nad_workspace *ws, float sigma, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_blur", x, y);
    if (rc) return rc;
    if (!(sigma > 0) || !isfinite(sigma))
        return nad_fail(NAD_EINVAL, "augment_blur: sigma %g is not positive", sigma);
    float *tmp = scratch("augment_blur", ws, (size_t)nad_numel(x));
    if (!tmp) return ws ? NAD_ENOMEM : NAD_EINVAL;
    if ((rc = prepare_y(x, y))) return rc;
    blur_kernel(sigma, nad_data(x), x->size[0], x->size[1], x->size[2], tmp, nad_data(y));
    return 0;
}

int nad_augment_sharpen(nad_workspace *ws, float amount, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_sharpen", x, y);
    if (rc) return rc;
    if (!isfinite(amount)) return nad_fail(NAD_EINVAL, "augment_sharpen: amount is not finite");
    size_t n = (size_t)nad_numel(x);
    float *tmp = scratch("augment_sharpen", ws, n);
    if (!tmp) return ws ? NAD_ENOMEM : NAD_EINVAL;
    if ((rc = prepare_y(x, y))) return rc;
    memcpy(tmp, nad_data(x), n * sizeof(float));
    sharpen_kernel(amount, tmp, x->size[0], x->size[1], x->size[2], nad_data(y));
    return 0;
}

int nad_augment_noise(nad_rng *rng, float std, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_noise", x, y);
    if (rc) return rc;
    if (!rng) return nad_fail(NAD_EINVAL, "augment_noise: rng is NULL");
    if (!(std >= 0) || !isfinite(std))
        return nad_fail(NAD_EINVAL, "augment_noise: std %g is negative", std);
    if ((rc = prepare_y(x, y))) return rc;
    noise_kernel(rng, std, nad_data(x), nad_numel(x), nad_data(y));
    return 0;
}

int nad_augment_dropout(nad_rng *rng, float rate, const nad_tensor *x, nad_tensor *y)
{
    int rc = check_photo("augment_dropout", x, y);
    if (rc) return rc;
    if (!rng) return nad_fail(NAD_EINVAL, "augment_dropout: rng is NULL");
    if (!(rate >= 0 && rate <= 1))
        return nad_fail(NAD_EINVAL, "augment_dropout: rate %g is outside [0, 1]", rate);
    if ((rc = prepare_y(x, y))) return rc;
    dropout_kernel(rng, rate, nad_data(x), x->size[0] * x->size[1], x->size[2], nad_data(y));
    return 0;
}

static int check_mean_std(const char *fn, const float *mean, const float *std, int64_t ch)
{
    if (!mean || !std) return nad_fail(NAD_EINVAL, "%s: mean or std is NULL", fn);
    for (int64_t k = 0; k < ch; k++)
        if (!(std[k] != 0) || !isfinite(std[k]) || !isfinite(mean[k]))
            return nad_fail(NAD_EINVAL, "%s: std[%lld] = %g (mean %g) is zero or not finite", fn,
                            (long long)k, std[k], mean[k]);
    return 0;
}

int nad_augment_normalize(const float *mean, const float *std, const nad_tensor *x,
                          nad_tensor *y)
{
    const char *fn = "augment_normalize";
    int rc = check_photo(fn, x, y);
    if (rc || (rc = check_mean_std(fn, mean, std, x->size[2]))) return rc;
    if ((rc = prepare_y(x, y))) return rc;
    normalize_kernel(mean, std, nad_data(x), x->size[0] * x->size[1], x->size[2], nad_data(y));
    return 0;
}

/* ---- the pipeline ---- */

static float uniform(nad_rng *rng, float lo, float hi)
{
    return lo + (hi - lo) * (float)nad_rng_next_double(rng);
}

static int check_prob(const char *fn, const char *name, float p)
{
    if (p >= 0 && p <= 1) return 0;
    return nad_fail(NAD_EINVAL, "%s: %s %g is outside [0, 1]", fn, name, p);
}

static int check_range(const char *fn, const char *name, float lo, float hi, float min)
{
    if (isfinite(lo) && isfinite(hi) && lo <= hi && lo >= min) return 0;
    return nad_fail(NAD_EINVAL, "%s: %s range [%g, %g] is not ordered or is below %g", fn, name,
                    lo, hi, min);
}

static int check_params(const char *fn, const nad_augment_params *p, int64_t ch)
{
    int rc;
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if (p->resize_h < 0 || p->resize_w < 0 || (p->resize_h == 0) != (p->resize_w == 0))
        return nad_fail(NAD_EINVAL, "%s: resize %dx%d: give both sizes > 0 or both 0", fn,
                        p->resize_h, p->resize_w);
    if (p->crop_h < 0 || p->crop_w < 0 || (p->crop_h == 0) != (p->crop_w == 0))
        return nad_fail(NAD_EINVAL, "%s: crop %dx%d: give both sizes > 0 or both 0", fn,
                        p->crop_h, p->crop_w);
    if ((rc = check_prob(fn, "p_hflip", p->p_hflip)) || (rc = check_prob(fn, "p_vflip", p->p_vflip)) ||
        (rc = check_prob(fn, "p_rot90", p->p_rot90)) || (rc = check_prob(fn, "p_affine", p->p_affine)) ||
        (rc = check_prob(fn, "p_contrast", p->p_contrast)) ||
        (rc = check_prob(fn, "p_brightness", p->p_brightness)) ||
        (rc = check_prob(fn, "p_blur", p->p_blur)) || (rc = check_prob(fn, "p_sharpen", p->p_sharpen)) ||
        (rc = check_prob(fn, "p_noise", p->p_noise)) || (rc = check_prob(fn, "p_dropout", p->p_dropout)))
        return rc;
    if (p->p_affine > 0) {
        if (!(p->scale_lo == 0 && p->scale_hi == 0) &&
            (rc = check_range(fn, "scale", p->scale_lo, p->scale_hi, 1e-3f)))
            return rc;
        if (!(p->translate >= 0 && p->translate <= 1))
            return nad_fail(NAD_EINVAL, "%s: translate %g is outside [0, 1]", fn, p->translate);
        if (!(p->shear_deg >= 0 && p->shear_deg < 80))
            return nad_fail(NAD_EINVAL, "%s: shear_deg %g is outside [0, 80)", fn, p->shear_deg);
        if (!(p->rotate_deg >= 0 && p->rotate_deg <= 180))
            return nad_fail(NAD_EINVAL, "%s: rotate_deg %g is outside [0, 180]", fn, p->rotate_deg);
        if (!isfinite(p->fill)) return nad_fail(NAD_EINVAL, "%s: fill is not finite", fn);
    }
    if ((p->p_contrast > 0 && (rc = check_range(fn, "contrast", p->contrast_lo, p->contrast_hi, -INFINITY))) ||
        (p->p_brightness > 0 && (rc = check_range(fn, "brightness", p->brightness_lo, p->brightness_hi, -INFINITY))) ||
        (p->p_blur > 0 && (rc = check_range(fn, "blur_sigma", p->blur_sigma_lo, p->blur_sigma_hi, 1e-3f))) ||
        (p->p_sharpen > 0 && (rc = check_range(fn, "sharpen", p->sharpen_lo, p->sharpen_hi, -INFINITY))) ||
        (p->p_noise > 0 && (rc = check_range(fn, "noise_std", p->noise_std_lo, p->noise_std_hi, 0))) ||
        (p->p_dropout > 0 && (rc = check_range(fn, "dropout", p->dropout_lo, p->dropout_hi, 0))))
        return rc;
    if (p->p_dropout > 0 && p->dropout_hi > 1)
        return nad_fail(NAD_EINVAL, "%s: dropout range [%g, %g] goes above 1", fn, p->dropout_lo,
                        p->dropout_hi);
    if (p->normalize) {
        if (ch > NAD_AUGMENT_MAX_CHANNELS)
            return nad_fail(NAD_EINVAL, "%s: normalize takes at most %d channels, img has %lld",
                            fn, NAD_AUGMENT_MAX_CHANNELS, (long long)ch);
        if ((rc = check_mean_std(fn, p->mean, p->std, ch))) return rc;
    }
    return 0;
}

/* Two image and two mask buffers that the steps ping-pong between, plus scratch. */
typedef struct {
    float *img, *img2, *msk, *msk2, *tmp;
    int64_t h, w, ch;
} pipe_state;

static void swap_img(pipe_state *s)
{
    float *t = s->img;
    s->img = s->img2;
    s->img2 = t;
}

static void swap_msk(pipe_state *s)
{
    float *t = s->msk;
    s->msk = s->msk2;
    s->msk2 = t;
}

static void pipe_map(pipe_state *s, const int_map *m, float fill)
{
    apply_map(m, s->img, s->h, s->w, s->ch, s->img2, fill);
    swap_img(s);
    if (s->msk) {
        apply_map(m, s->msk, s->h, s->w, 1, s->msk2, (float)NAD_MASK_IGNORE);
        swap_msk(s);
    }
    s->h = m->oh;
    s->w = m->ow;
}

int nad_augment_apply(nad_workspace *ws, nad_rng *rng, const nad_augment_params *p,
                      const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                      nad_tensor *mask_out)
{
    const char *fn = "augment_apply";
    int rc = check_pair(fn, img, mask, img_out, mask_out, false);
    if (rc) return rc;
    if (!rng) return nad_fail(NAD_EINVAL, "%s: rng is NULL", fn);
    int64_t ch = img->size[2];
    if ((rc = check_params(fn, p, ch))) return rc;

    /* the largest intermediate size bounds every buffer */
    int64_t h = img->size[0], w = img->size[1], maxpix = h * w;
    if (p->resize_h) {
        h = p->resize_h;
        w = p->resize_w;
        maxpix = maxpix > h * w ? maxpix : h * w;
    }
    if (p->crop_h) {
        h = p->crop_h;
        w = p->crop_w;
        maxpix = maxpix > h * w ? maxpix : h * w;
    }
    size_t imgn = (size_t)(maxpix * ch), mskn = mask ? (size_t)maxpix : 0;
    /* round each part to 16 floats so every buffer stays 64-byte aligned */
    imgn = (imgn + 15) & ~(size_t)15;
    mskn = (mskn + 15) & ~(size_t)15;
    float *base = scratch(fn, ws, 3 * imgn + 2 * mskn);
    if (!base) return ws ? NAD_ENOMEM : NAD_EINVAL;
    pipe_state s = {base, base + imgn, mask ? base + 2 * imgn : NULL,
                    mask ? base + 2 * imgn + mskn : NULL, base + 2 * imgn + 2 * mskn,
                    img->size[0], img->size[1], ch};
    memcpy(s.img, nad_data(img), (size_t)nad_numel(img) * sizeof(float));
    if (mask) memcpy(s.msk, nad_data(mask), (size_t)nad_numel(mask) * sizeof(float));

    if (p->resize_h && (p->resize_h != s.h || p->resize_w != s.w)) {
        nad_resample_bilinear(s.img, s.h, s.w, ch, s.img2, p->resize_h, p->resize_w);
        swap_img(&s);
        if (mask) {
            nad_resample_nearest(s.msk, s.h, s.w, s.msk2, p->resize_h, p->resize_w);
            swap_msk(&s);
        }
        s.h = p->resize_h;
        s.w = p->resize_w;
    }
    if (p->crop_h) {
        int64_t top = crop_start(rng, s.h, p->crop_h), left = crop_start(rng, s.w, p->crop_w);
        int_map m = {p->crop_h, p->crop_w, top, 1, 0, left, 0, 1};
        pipe_map(&s, &m, p->pad_value);
    }
    if (p->p_hflip > 0 && nad_rng_next_double(rng) < p->p_hflip) {
        int_map m = flip_map(NAD_FLIP_HORIZONTAL, s.h, s.w);
        pipe_map(&s, &m, 0);
    }
    if (p->p_vflip > 0 && nad_rng_next_double(rng) < p->p_vflip) {
        int_map m = flip_map(NAD_FLIP_VERTICAL, s.h, s.w);
        pipe_map(&s, &m, 0);
    }
    if (p->p_rot90 > 0 && nad_rng_next_double(rng) < p->p_rot90) {
        int32_t k = s.h == s.w ? 1 + (int32_t)rand_upto(rng, 2) : 2;
        int_map m = rot_map(k, s.h, s.w);
        pipe_map(&s, &m, 0);
    }
    if (p->p_affine > 0 && nad_rng_next_double(rng) < p->p_affine) {
        nad_affine_params a = {1, 0, 0, 0, 0, 0, p->fill};
        if (p->scale_lo > 0) a.scale = uniform(rng, p->scale_lo, p->scale_hi);
        a.translate_x = uniform(rng, -p->translate, p->translate);
        a.translate_y = uniform(rng, -p->translate, p->translate);
        a.shear_x_deg = uniform(rng, -p->shear_deg, p->shear_deg);
        a.rotate_deg = uniform(rng, -p->rotate_deg, p->rotate_deg);
        affine_inv inv;
        if (affine_invert(&a, s.h, s.w, &inv) == 0) { /* ranges checked: never singular */
            affine_kernel(&inv, a.fill, s.img, s.msk, s.h, s.w, ch, s.img2, s.msk2);
            swap_img(&s);
            if (mask) swap_msk(&s);
        }
    }
    int64_t npix = s.h * s.w, n = npix * ch;
    if (p->p_contrast > 0 && nad_rng_next_double(rng) < p->p_contrast)
        contrast_kernel(uniform(rng, p->contrast_lo, p->contrast_hi), s.img, npix, ch, s.img);
    if (p->p_brightness > 0 && nad_rng_next_double(rng) < p->p_brightness)
        brightness_kernel(uniform(rng, p->brightness_lo, p->brightness_hi), s.img, n, s.img);
    if (p->p_blur > 0 && nad_rng_next_double(rng) < p->p_blur)
        blur_kernel(uniform(rng, p->blur_sigma_lo, p->blur_sigma_hi), s.img, s.h, s.w, ch, s.tmp,
                    s.img);
    if (p->p_sharpen > 0 && nad_rng_next_double(rng) < p->p_sharpen) {
        sharpen_kernel(uniform(rng, p->sharpen_lo, p->sharpen_hi), s.img, s.h, s.w, ch, s.img2);
        swap_img(&s);
    }
    if (p->p_noise > 0 && nad_rng_next_double(rng) < p->p_noise)
        noise_kernel(rng, uniform(rng, p->noise_std_lo, p->noise_std_hi), s.img, n, s.img);
    if (p->p_dropout > 0 && nad_rng_next_double(rng) < p->p_dropout)
        dropout_kernel(rng, uniform(rng, p->dropout_lo, p->dropout_hi), s.img, npix, ch, s.img);
    if (p->normalize) normalize_kernel(p->mean, p->std, s.img, npix, ch, s.img);

    if ((rc = resize_outputs(img, mask, s.h, s.w, img_out, mask_out))) return rc;
    memcpy(nad_data(img_out), s.img, (size_t)n * sizeof(float));
    if (mask) memcpy(nad_data(mask_out), s.msk, (size_t)npix * sizeof(float));
    return 0;
}
