/* synth.c: generated defect images: steel-like or tile-like grey textures with scratches,
   pits, cracks, patches or inclusions drawn into the image and its mask. Used by the
   embedded default data set and the tests. Sample i depends on (seed, i) only: its random
   stream starts at counter i * 2^32 of the seed's generator, and its noise fields hash
   pixel coordinates with keys drawn from that stream. */
#include "../internal.h"
#include <math.h>
#include <string.h>

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A hash of (key, x, y) in [0, 1). */
static inline float hash01(uint64_t key, int64_t x, int64_t y)
{
    uint64_t h = mix64(key ^ ((uint64_t)x * 0x9e3779b97f4a7c15ULL) ^
                       ((uint64_t)y * 0xc2b2ae3d27d4eb4fULL));
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* Smooth value noise in [0, 1): lattice hashes, smoothstep interpolation. */
static float value_noise(uint64_t key, float x, float y)
{
    float xf = floorf(x), yf = floorf(y);
    int64_t xi = (int64_t)xf, yi = (int64_t)yf;
    float tx = x - xf, ty = y - yf;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    float a = hash01(key, xi, yi), b = hash01(key, xi + 1, yi);
    float c = hash01(key, xi, yi + 1), d = hash01(key, xi + 1, yi + 1);
    return (1 - ty) * ((1 - tx) * a + tx * b) + ty * ((1 - tx) * c + tx * d);
}

/* Three octaves, centred: roughly in [-0.5, 0.5]. */
static float fbm(uint64_t key, float x, float y)
{
    float s = value_noise(key, x, y) + 0.5f * value_noise(key + 1, 2.03f * x, 2.03f * y) +
              0.25f * value_noise(key + 2, 4.07f * x, 4.07f * y);
    return s / 1.75f - 0.5f;
}

/* Standard normal from two hashes (Box-Muller). */
static float hash_normal(uint64_t key, int64_t x, int64_t y)
{
    float u1 = hash01(key, x, y) + (1.0f / 33554432.0f), u2 = hash01(key + 7, x, y);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}

typedef struct {
    nad_rng rng;
    int64_t h, w;
    float *img, *mask, *cov;
    int32_t surface;
    float axis; /* the steel's streak direction (radians); defects like inclusions follow it */
} synth_ctx;

static float unif(synth_ctx *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)nad_rng_next_double(&s->rng);
}

static float sign(synth_ctx *s, float p_positive) { return unif(s, 0, 1) < p_positive ? 1.0f : -1.0f; }

static int64_t randint(synth_ctx *s, int64_t lo, int64_t hi)
{
    int64_t v = lo + (int64_t)(nad_rng_next_double(&s->rng) * (double)(hi - lo + 1));
    return v > hi ? hi : v;
}

/* ---- surfaces ---- */

static void texture(synth_ctx *s)
{
    uint64_t k1 = nad_rng_next_u64(&s->rng), k2 = nad_rng_next_u64(&s->rng);
    uint64_t k3 = nad_rng_next_u64(&s->rng);
    float size = (float)(s->h > s->w ? s->h : s->w);
    float base = unif(s, 0.35f, 0.65f), shade = unif(s, 0.05f, 0.18f), shade_len = size * unif(s, 0.4f, 1.0f);
    if (s->surface == NAD_SYNTH_STEEL) {
        float horizontal = unif(s, 0, 1) < 0.5f ? 1.0f : 0.0f;
        s->axis = horizontal ? 0.0f : 1.5707963f;
        float streak = unif(s, 0.04f, 0.12f), streak_w = unif(s, 1.0f, 3.5f);
        float streak_len = size * unif(s, 0.3f, 1.2f), grain = unif(s, 0.01f, 0.04f);
        for (int64_t r = 0; r < s->h; r++) {
            for (int64_t c = 0; c < s->w; c++) {
                float u = horizontal ? (float)c : (float)r, v = horizontal ? (float)r : (float)c;
                float val = base + streak * 2 * fbm(k1, u / streak_len, v / streak_w) +
                            shade * 2 * fbm(k2, (float)c / shade_len, (float)r / shade_len) +
                            grain * 2 * (value_noise(k3, (float)c * 0.7f, (float)r * 0.7f) - 0.5f);
                s->img[r * s->w + c] = val;
            }
        }
    } else {
        s->axis = unif(s, 0, 3.1415926f);
        float grain = unif(s, 0.04f, 0.1f), mottle = unif(s, 0.04f, 0.1f);
        float mottle_len = unif(s, 3.0f, 8.0f);
        float gx = unif(s, -0.15f, 0.15f) / size, gy = unif(s, -0.15f, 0.15f) / size;
        for (int64_t r = 0; r < s->h; r++) {
            for (int64_t c = 0; c < s->w; c++) {
                float val = base + gx * (float)(c - s->w / 2) + gy * (float)(r - s->h / 2) +
                            shade * 2 * fbm(k2, (float)c / shade_len, (float)r / shade_len) +
                            mottle * 2 * fbm(k1, (float)c / mottle_len, (float)r / mottle_len) +
                            grain * 2 * (hash01(k3, c, r) - 0.5f);
                s->img[r * s->w + c] = val;
            }
        }
    }
}

/* ---- coverage primitives: cov = max(cov, coverage of the shape), in [0, 1] ---- */

static void draw_segment(synth_ctx *s, float x0, float y0, float x1, float y1, float hw)
{
    float dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    int64_t c0 = (int64_t)floorf(fminf(x0, x1) - hw - 1), c1 = (int64_t)ceilf(fmaxf(x0, x1) + hw + 1);
    int64_t r0 = (int64_t)floorf(fminf(y0, y1) - hw - 1), r1 = (int64_t)ceilf(fmaxf(y0, y1) + hw + 1);
    if (c0 < 0) c0 = 0;
    if (r0 < 0) r0 = 0;
    if (c1 > s->w - 1) c1 = s->w - 1;
    if (r1 > s->h - 1) r1 = s->h - 1;
    for (int64_t r = r0; r <= r1; r++) {
        for (int64_t c = c0; c <= c1; c++) {
            float px = (float)c - x0, py = (float)r - y0;
            float t = len2 > 0 ? (px * dx + py * dy) / len2 : 0;
            t = t < 0 ? 0 : (t > 1 ? 1 : t);
            float ex = px - t * dx, ey = py - t * dy;
            float cv = hw + 0.5f - sqrtf(ex * ex + ey * ey);
            cv = cv < 0 ? 0 : (cv > 1 ? 1 : cv);
            float *o = s->cov + r * s->w + c;
            if (cv > *o) *o = cv;
        }
    }
}

/* An ellipse (half-axes a along angle, b across) whose radius wobbles with harmonics 2..5
   of relative amplitude up to `wobble`; edge is the width of the soft rim in pixels. */
static void draw_blob(synth_ctx *s, float cx, float cy, float a, float b, float angle,
                      float wobble, float edge)
{
    float amp[4], ph[4];
    for (int i = 0; i < 4; i++) {
        amp[i] = unif(s, 0, wobble) / (float)(i + 1);
        ph[i] = unif(s, 0, 6.2831853f);
    }
    float ca = cosf(angle), sa = sinf(angle), reach = a * (1 + 2 * wobble) + edge + 1;
    float sharp = fminf(a, b) / edge;
    int64_t c0 = (int64_t)floorf(cx - reach), c1 = (int64_t)ceilf(cx + reach);
    int64_t r0 = (int64_t)floorf(cy - reach), r1 = (int64_t)ceilf(cy + reach);
    if (c0 < 0) c0 = 0;
    if (r0 < 0) r0 = 0;
    if (c1 > s->w - 1) c1 = s->w - 1;
    if (r1 > s->h - 1) r1 = s->h - 1;
    for (int64_t r = r0; r <= r1; r++) {
        for (int64_t c = c0; c <= c1; c++) {
            float dx = (float)c - cx, dy = (float)r - cy;
            float u = (ca * dx + sa * dy) / a, v = (-sa * dx + ca * dy) / b;
            float rho = sqrtf(u * u + v * v), phi = atan2f(v, u), rad = 1;
            for (int i = 0; i < 4; i++) rad += amp[i] * sinf((float)(i + 2) * phi + ph[i]);
            float cv = (rad - rho) * sharp + 0.5f;
            cv = cv < 0 ? 0 : (cv > 1 ? 1 : cv);
            float *o = s->cov + r * s->w + c;
            if (cv > *o) *o = cv;
        }
    }
}

/* img += delta * cov; mask = label where cov >= 0.5 (or at the strongest pixel if none is);
   cov is cleared for the next instance. */
static void stamp(synth_ctx *s, float delta, float label)
{
    int64_t n = s->h * s->w, best = 0, marked = 0;
    for (int64_t i = 0; i < n; i++) {
        float cv = s->cov[i];
        if (cv <= 0) continue;
        s->img[i] += delta * cv;
        if (cv >= 0.5f) {
            s->mask[i] = label;
            marked++;
        }
        if (cv > s->cov[best]) best = i;
    }
    if (!marked && s->cov[best] > 0) s->mask[best] = label;
    memset(s->cov, 0, (size_t)n * sizeof(float));
}

/* ---- defects ---- */

/* A start point away from the border, heading roughly toward the centre, so that a long
   line crosses the image instead of leaving it at once. */
static void line_start(synth_ctx *s, float *x, float *y, float *ang)
{
    *x = unif(s, 0.1f, 0.9f) * (float)(s->w - 1);
    *y = unif(s, 0.1f, 0.9f) * (float)(s->h - 1);
    *ang = atan2f(0.5f * (float)(s->h - 1) - *y, 0.5f * (float)(s->w - 1) - *x) + unif(s, -1.0f, 1.0f);
}

static void scratch(synth_ctx *s, float label)
{
    float size = (float)(s->h < s->w ? s->h : s->w);
    int64_t count = randint(s, 1, 3);
    for (int64_t k = 0; k < count; k++) {
        float x0, y0, ang, len = size * unif(s, 0.35f, 0.9f);
        line_start(s, &x0, &y0, &ang);
        float bend = unif(s, -0.35f, 0.35f) * len, hw = unif(s, 0.5f, 1.25f);
        float x2 = x0 + len * cosf(ang), y2 = y0 + len * sinf(ang);
        float x1 = 0.5f * (x0 + x2) - bend * sinf(ang), y1 = 0.5f * (y0 + y2) + bend * cosf(ang);
        float px = x0, py = y0;
        for (int i = 1; i <= 24; i++) { /* the quadratic Bezier as 24 segments */
            float t = (float)i / 24, q = 1 - t;
            float qx = q * q * x0 + 2 * q * t * x1 + t * t * x2, qy = q * q * y0 + 2 * q * t * y1 + t * t * y2;
            draw_segment(s, px, py, qx, qy, hw);
            px = qx;
            py = qy;
        }
        stamp(s, sign(s, 0.6f) * unif(s, 0.08f, 0.3f), label);
    }
}

static void pits(synth_ctx *s, float label)
{
    int64_t count = randint(s, 2, 10);
    float depth = unif(s, 0.1f, 0.35f);
    float spread = 0.5f * (float)(s->h < s->w ? s->h : s->w) * unif(s, 0.2f, 0.9f);
    float cx = unif(s, 0, (float)s->w - 1), cy = unif(s, 0, (float)s->h - 1);
    for (int64_t k = 0; k < count; k++) {
        float x = cx + unif(s, -spread, spread), y = cy + unif(s, -spread, spread);
        x = fminf(fmaxf(x, 0), (float)s->w - 1);
        y = fminf(fmaxf(y, 0), (float)s->h - 1);
        float rad = unif(s, 1.5f, 5.0f);
        draw_blob(s, x, y, rad, rad * unif(s, 0.7f, 1.0f), unif(s, 0, 3.1415926f), 0.25f, 1.0f);
        stamp(s, -depth * unif(s, 0.7f, 1.0f), label);
    }
}

enum { CRACK_MAX_BRANCHES = 6 };

static void crack(synth_ctx *s, float label)
{
    typedef struct {
        float x, y, ang, len, hw;
    } branch;
    branch stack[CRACK_MAX_BRANCHES + 1];
    int top = 0, spawned = 0;
    float size = (float)(s->h < s->w ? s->h : s->w);
    float x0, y0, ang;
    line_start(s, &x0, &y0, &ang);
    stack[top++] = (branch){x0, y0, ang, size * unif(s, 0.35f, 0.8f), unif(s, 0.5f, 1.0f)};
    while (top > 0) {
        branch b = stack[--top];
        float heading = b.ang, x = b.x, y = b.y;
        for (float done = 0; done < b.len; done += 2.0f) {
            /* jagged: a random turn each step, pulled back toward the branch's heading */
            heading += unif(s, -0.6f, 0.6f) + 0.3f * (b.ang - heading);
            float nx = x + 2.0f * cosf(heading), ny = y + 2.0f * sinf(heading);
            draw_segment(s, x, y, nx, ny, b.hw);
            x = nx;
            y = ny;
            if (spawned < CRACK_MAX_BRANCHES && unif(s, 0, 1) < 0.06f) {
                spawned++;
                stack[top++] = (branch){x, y, heading + sign(s, 0.5f) * unif(s, 0.4f, 1.1f),
                                        (b.len - done) * unif(s, 0.2f, 0.6f), fmaxf(0.5f, 0.8f * b.hw)};
            }
        }
    }
    stamp(s, -unif(s, 0.15f, 0.4f), label);
}

static void patch(synth_ctx *s, float label)
{
    float size = (float)(s->h < s->w ? s->h : s->w);
    int64_t count = randint(s, 1, 2);
    for (int64_t k = 0; k < count; k++) {
        float a = size * unif(s, 0.12f, 0.3f), b = a * unif(s, 0.5f, 1.0f);
        draw_blob(s, unif(s, 0, (float)s->w - 1), unif(s, 0, (float)s->h - 1), a, b,
                  unif(s, 0, 3.1415926f), 0.3f, fmaxf(2.0f, 0.25f * b));
        stamp(s, sign(s, 0.5f) * unif(s, 0.04f, 0.12f), label);
    }
}

static void inclusions(synth_ctx *s, float label)
{
    int64_t count = randint(s, 3, 10);
    float delta = sign(s, 0.35f) * unif(s, 0.15f, 0.35f);
    float spread = 0.5f * (float)(s->h < s->w ? s->h : s->w) * unif(s, 0.3f, 0.9f);
    float cx = unif(s, 0, (float)s->w - 1), cy = unif(s, 0, (float)s->h - 1);
    for (int64_t k = 0; k < count; k++) {
        float x = fminf(fmaxf(cx + unif(s, -spread, spread), 0), (float)s->w - 1);
        float y = fminf(fmaxf(cy + unif(s, -spread, spread), 0), (float)s->h - 1);
        float a = unif(s, 2.0f, 7.0f), b = unif(s, 0.7f, 1.5f);
        draw_blob(s, x, y, a, b, s->axis + unif(s, -0.2f, 0.2f), 0.1f, 0.7f);
        stamp(s, delta * unif(s, 0.7f, 1.0f), label);
    }
}

/* ---- the sample ---- */

int nad_synth_sample(nad_workspace *ws, const nad_synth_params *p, uint64_t seed, int64_t index,
                     nad_tensor *img, nad_tensor *mask, int32_t *label)
{
    const char *fn = "synth_sample";
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if (p->height < 8 || p->width < 8)
        return nad_fail(NAD_EINVAL, "%s: size %dx%d is below 8x8", fn, p->height, p->width);
    if (p->surface < NAD_SYNTH_STEEL || p->surface > NAD_SYNTH_MIXED)
        return nad_fail(NAD_EINVAL, "%s: surface %d is not STEEL (0), TILE (1) or MIXED (2)", fn,
                        p->surface);
    if (p->class_mask >> NAD_SYNTH_NUM_CLASSES)
        return nad_fail(NAD_EINVAL, "%s: class_mask 0x%x selects classes beyond %d", fn,
                        (unsigned)p->class_mask, NAD_SYNTH_NUM_CLASSES - 1);
    if (index < 0) return nad_fail(NAD_EINVAL, "%s: index %lld is negative", fn, (long long)index);
    int rc = nad_check_tensor(fn, "img", img);
    if (rc) return rc;
    if (mask && nad_tensor_same_storage(img, mask))
        return nad_fail(NAD_EINVAL, "%s: mask shares storage with img", fn);
    if (!ws) return nad_fail(NAD_EINVAL, "%s: ws is NULL", fn);
    int64_t h = p->height, w = p->width;
    float *cov = nad_workspace_get(ws, (size_t)(2 * h * w) * sizeof(float));
    if (!cov) return nad_fail(NAD_ENOMEM, "%s: out of memory for scratch", fn);

    uint32_t sel = p->class_mask ? p->class_mask : 0x3Eu;
    int32_t classes[NAD_SYNTH_NUM_CLASSES], n = 0;
    for (int32_t k = 0; k < NAD_SYNTH_NUM_CLASSES; k++)
        if (sel >> k & 1) classes[n++] = k;
    int32_t cls = classes[index % n], rank = 0;
    for (int32_t k = 1; k <= cls; k++) rank += (int32_t)(sel >> k & 1);
    if (cls == NAD_SYNTH_NONE) rank = 0;

    int64_t s3[3] = {h, w, 1};
    if ((rc = nad_tensor_resize(img, 3, s3))) return rc;
    if (mask && (rc = nad_tensor_resize(mask, 2, s3))) return rc;

    synth_ctx s = {{seed, (uint64_t)index << 32}, h, w, nad_data(img),
                   mask ? nad_data(mask) : cov + h * w, cov, p->surface, 0};
    memset(cov, 0, (size_t)(2 * h * w) * sizeof(float));
    memset(s.mask, 0, (size_t)(h * w) * sizeof(float));
    if (s.surface == NAD_SYNTH_MIXED) s.surface = unif(&s, 0, 1) < 0.5f ? NAD_SYNTH_STEEL : NAD_SYNTH_TILE;
    texture(&s);
    float lab = (float)rank;
    switch (cls) {
    case NAD_SYNTH_SCRATCH: scratch(&s, lab); break;
    case NAD_SYNTH_PIT: pits(&s, lab); break;
    case NAD_SYNTH_CRACK: crack(&s, lab); break;
    case NAD_SYNTH_PATCH: patch(&s, lab); break;
    case NAD_SYNTH_INCLUSION: inclusions(&s, lab); break;
    default: break;
    }
    /* sensor noise last, so defects are as noisy as the background */
    uint64_t nk = nad_rng_next_u64(&s.rng);
    float noise = unif(&s, 0.015f, 0.05f);
    for (int64_t r = 0; r < h; r++) {
        for (int64_t c = 0; c < w; c++) {
            float v = s.img[r * w + c] + noise * hash_normal(nk, c, r);
            s.img[r * w + c] = v < 0 ? 0 : (v > 1 ? 1 : v);
        }
    }
    if (label) *label = rank;
    return 0;
}
