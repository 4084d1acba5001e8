/* test_conv2d.c: conv2d forward against a plain 7-loop reference (strides, pads, dilation,
   groups, depthwise, few channels, 1x1, weight views), backward against finite differences and
   reference loops (including chunked im2col), PyTorch reference files, and error messages. */
#include "check.h"
#include "internal.h" /* to build a strided (dilated) weight view the public API has no call for */
#include <criterion/criterion.h>

typedef struct cfg {
    int64_t n, h, w, ci, co, k;
    int32_t s, pad, d, g;
    int bias;
} cfg;

static nad_conv2d_params params_of(const cfg *c)
{
    return (nad_conv2d_params){c->s, c->pad, c->d, c->g};
}

static int64_t out_size(int64_t in, const cfg *c)
{
    return (in + 2 * c->pad - c->d * (c->k - 1) - 1) / c->s + 1;
}

/* element (i0, i1, i2, i3) of a 4-dim view, any strides */
static float *at4(const nad_tensor *t, int64_t a, int64_t b, int64_t c, int64_t d)
{
    return nad_tensor_data(t) + a * nad_tensor_stride(t, 0) + b * nad_tensor_stride(t, 1) +
           c * nad_tensor_stride(t, 2) + d * nad_tensor_stride(t, 3);
}

/* The plain definition: y[n,ho,wo,o] = b[o] + sum_{kh,kw,c} x[n,hi,wi,g*cig+c] w[o,kh,kw,c]. */
static nad_tensor *ref_forward(const cfg *c, const nad_tensor *x, const nad_tensor *w,
                               const nad_tensor *b)
{
    int64_t ho = out_size(c->h, c), wo = out_size(c->w, c);
    nad_tensor *y = tc_zeros(TC_SIZES(c->n, ho, wo, c->co));
    int64_t cig = c->ci / c->g, cog = c->co / c->g;
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t i = 0; i < ho; i++)
            for (int64_t j = 0; j < wo; j++)
                for (int64_t o = 0; o < c->co; o++) {
                    double acc = b ? *tc_at(b, o) : 0;
                    for (int64_t kh = 0; kh < c->k; kh++)
                        for (int64_t kw = 0; kw < c->k; kw++)
                            for (int64_t q = 0; q < cig; q++) {
                                int64_t hi = i * c->s - c->pad + kh * c->d;
                                int64_t wi = j * c->s - c->pad + kw * c->d;
                                if (hi < 0 || hi >= c->h || wi < 0 || wi >= c->w) continue;
                                acc += (double)*at4(x, n, hi, wi, (o / cog) * cig + q) *
                                       *at4(w, o, kh, kw, q);
                            }
                    *at4(y, n, i, j, o) = (float)acc;
                }
    return y;
}

/* Reference backward by the same loops: dx[x pixel] += dy w, dw += dy x (fresh tensors). */
static void ref_backward(const cfg *c, const nad_tensor *x, const nad_tensor *w,
                         const nad_tensor *dy, nad_tensor **dx, nad_tensor **dw)
{
    int64_t ho = out_size(c->h, c), wo = out_size(c->w, c);
    int64_t cig = c->ci / c->g, cog = c->co / c->g;
    *dx = tc_zeros(TC_SIZES(c->n, c->h, c->w, c->ci));
    *dw = tc_zeros(TC_SIZES(c->co, c->k, c->k, cig));
    for (int64_t n = 0; n < c->n; n++)
        for (int64_t i = 0; i < ho; i++)
            for (int64_t j = 0; j < wo; j++)
                for (int64_t o = 0; o < c->co; o++) {
                    float g = *at4(dy, n, i, j, o);
                    for (int64_t kh = 0; kh < c->k; kh++)
                        for (int64_t kw = 0; kw < c->k; kw++)
                            for (int64_t q = 0; q < cig; q++) {
                                int64_t hi = i * c->s - c->pad + kh * c->d;
                                int64_t wi = j * c->s - c->pad + kw * c->d;
                                if (hi < 0 || hi >= c->h || wi < 0 || wi >= c->w) continue;
                                int64_t ch = (o / cog) * cig + q;
                                *at4(*dx, n, hi, wi, ch) += g * *at4(w, o, kh, kw, q);
                                *at4(*dw, o, kh, kw, q) += g * *at4(x, n, hi, wi, ch);
                            }
                }
}

static nad_tensor *contiguous_copy(const nad_tensor *t)
{
    int64_t sz[NAD_MAX_DIMS];
    for (int32_t i = 0; i < nad_tensor_ndim(t); i++) sz[i] = nad_tensor_size(t, i);
    nad_tensor *c = nad_tensor_new(nad_tensor_ndim(t), sz);
    nad_tensor_copy(c, t);
    return c;
}

static void check_forward_ws(const cfg *c, uint64_t seed, nad_workspace *ws)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
    nad_tensor *w = tc_rand(&rng, TC_SIZES(c->co, c->k, c->k, c->ci / c->g));
    nad_tensor *b = c->bias ? tc_rand(&rng, TC_SIZES(c->co)) : NULL;
    nad_tensor *y = tc_empty();
    nad_conv2d_params p = params_of(c);
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, y), 0, "%s", nad_last_error());
    nad_tensor *want = ref_forward(c, x, w, b);
    cr_assert_eq(nad_tensor_ndim(y), 4);
    for (int32_t i = 0; i < 4; i++) cr_assert_eq(nad_tensor_size(y, i), nad_tensor_size(want, i));
    cr_assert(tc_close(y, want, 1e-5, 1e-5), "k%lld s%d pad%d d%d g%d", (long long)c->k, c->s,
              c->pad, c->d, c->g);
    nad_tensor_free(x);
    nad_tensor_free(w);
    nad_tensor_free(b);
    nad_tensor_free(y);
    nad_tensor_free(want);
}

static void check_forward(const cfg *c, uint64_t seed)
{
    nad_workspace *ws = nad_workspace_new(0);
    check_forward_ws(c, seed, ws);
    nad_workspace_free(ws);
}

Test(conv2d, forward_matches_loop_3x3_stride_pad_dilation)
{
    cfg cs[] = {
        {2, 6, 7, 5, 4, 3, 1, 1, 1, 1, 1}, /* same-size 3x3 */
        {2, 7, 6, 3, 5, 3, 2, 1, 1, 1, 0}, /* stride 2, no bias */
        {1, 9, 8, 4, 3, 3, 1, 2, 2, 1, 1}, /* dilation 2 */
        {1, 9, 9, 2, 3, 3, 4, 0, 1, 1, 1}, /* stride 4, no pad */
        {1, 8, 7, 3, 2, 5, 2, 2, 1, 1, 1}, /* 5x5 */
        {1, 3, 3, 2, 2, 3, 1, 0, 1, 1, 1}, /* one output pixel */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_forward(&cs[i], 10 + i);
}

/* Ci >= 16: the GEMM path reads the padded input in place (no im2col) where AVX-512 is there.
   One workspace for all: the padded buffer's borders must be zero again for each geometry. */
Test(conv2d, forward_matches_loop_without_im2col)
{
    cfg cs[] = {
        {2, 9, 11, 16, 20, 3, 1, 1, 1, 1, 1}, /* same-size 3x3, Co not a multiple of 16 */
        {1, 12, 13, 17, 8, 5, 1, 2, 1, 1, 1}, /* 5x5, pad 2 */
        {1, 10, 9, 24, 33, 3, 2, 1, 1, 1, 0}, /* stride 2, no bias */
        {1, 11, 10, 16, 64, 3, 1, 2, 2, 1, 1}, /* dilation 2 */
        {1, 9, 9, 32, 16, 3, 1, 0, 1, 1, 1},  /* no padding: the input read in place */
        {1, 3, 20, 16, 70, 3, 1, 1, 1, 1, 1}, /* rows of 20 pixels: full and leftover tiles */
    };
    nad_workspace *ws = nad_workspace_new(0);
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_forward_ws(&cs[i], 60 + i, ws);
    nad_workspace_free(ws);
}

Test(conv2d, forward_matches_loop_groups_and_depthwise)
{
    cfg cs[] = {
        {2, 6, 5, 6, 4, 3, 1, 1, 1, 2, 1},    /* groups 2 */
        {1, 7, 7, 6, 9, 3, 2, 2, 2, 3, 1},    /* groups 3, stride 2, dilation 2 */
        {2, 6, 7, 8, 8, 3, 1, 1, 1, 8, 1},    /* depthwise */
        {1, 9, 8, 5, 5, 3, 2, 2, 2, 5, 0},    /* depthwise, stride 2, dilation 2 */
        {1, 6, 6, 4, 4, 5, 1, 2, 1, 4, 1},    /* depthwise 5x5 */
        {1, 5, 5, 3, 6, 3, 1, 1, 1, 3, 1},    /* channel multiplier 2 (not depthwise) */
        {2, 4, 4, 288, 64, 3, 1, 1, 1, 32, 1}, /* the conv mixer's grouped conv */
        {1, 6, 5, 4, 18, 3, 2, 1, 1, 2, 1},    /* 9 outputs per group: per-group GEMMs */
        {1, 7, 6, 6, 20, 3, 1, 2, 2, 2, 0},    /* 10 per group, dilation 2 */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_forward(&cs[i], 20 + i);
}

Test(conv2d, forward_matches_loop_1x1_and_patch_embedding)
{
    cfg cs[] = {
        {2, 5, 6, 7, 3, 1, 1, 0, 1, 1, 1},   /* 1x1: one GEMM */
        {1, 4, 5, 6, 4, 1, 1, 0, 1, 2, 1},   /* grouped 1x1 */
        {1, 7, 6, 4, 3, 1, 2, 0, 1, 1, 1},   /* 1x1 stride 2 */
        {1, 4, 4, 3, 2, 1, 1, 1, 1, 1, 1},   /* 1x1 with padding */
        {2, 16, 20, 3, 8, 7, 4, 3, 1, 1, 1}, /* 7x7 stride 4 pad 3 */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_forward(&cs[i], 30 + i);
}

/* conv with weight view wv (and bias view bv) equals conv with contiguous copies of them */
static void check_view(const cfg *c, nad_tensor *wv, nad_tensor *bv, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
    nad_tensor *wc = contiguous_copy(wv), *bc = bv ? contiguous_copy(bv) : NULL;
    nad_tensor *y1 = tc_empty(), *y2 = tc_empty();
    nad_conv2d_params p = params_of(c);
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, wv, bv, y1), 0, "%s", nad_last_error());
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, wc, bc, y2), 0, "%s", nad_last_error());
    cr_assert(tc_close(y1, y2, 0, 0));
    nad_tensor *want = ref_forward(c, x, wc, bc);
    cr_assert(tc_close(y1, want, 1e-5, 1e-5));
    nad_tensor_free(x);
    nad_tensor_free(wc);
    nad_tensor_free(bc);
    nad_tensor_free(y1);
    nad_tensor_free(y2);
    nad_tensor_free(want);
    nad_workspace_free(ws);
}

/* a 3x3 view of the 5x5 kernel w5 taking every second tap (the dilated crop) */
static nad_tensor *dilated_crop(const nad_tensor *w5)
{
    nad_tensor *v = nad_tensor_view(w5);
    v->size[1] = v->size[2] = 3;
    v->stride[1] *= 2;
    v->stride[2] *= 2;
    return v;
}

Test(conv2d, forward_weight_views_match_contiguous_copies)
{
    nad_rng rng;
    nad_rng_init(&rng, 40);
    nad_tensor *big = tc_rand(&rng, TC_SIZES(9, 5, 5, 10)), *bbig = tc_rand(&rng, TC_SIZES(9));
    /* leading slice W[:4, :, :, :6] of a 5x5 supernet weight, bias b[:4] */
    nad_tensor *a = nad_tensor_narrow(big, 0, 0, 4), *sl = nad_tensor_narrow(a, 3, 0, 6);
    nad_tensor *bs = nad_tensor_narrow(bbig, 0, 0, 4);
    check_view(&(cfg){2, 6, 6, 6, 4, 5, 1, 2, 1, 1, 1}, sl, bs, 41);
    nad_tensor *half = nad_tensor_narrow(sl, 3, 0, 3); /* groups 2 */
    check_view(&(cfg){1, 7, 6, 6, 4, 5, 2, 1, 1, 2, 1}, half, bs, 42);
    /* centre crop 3x3 and centre tap 1x1 of the 5x5 kernel */
    nad_tensor *c1 = nad_tensor_narrow(sl, 1, 1, 3), *crop = nad_tensor_narrow(c1, 2, 1, 3);
    check_view(&(cfg){2, 6, 5, 6, 4, 3, 1, 1, 1, 1, 1}, crop, bs, 43);
    nad_tensor *t1 = nad_tensor_narrow(sl, 1, 2, 1), *tap = nad_tensor_narrow(t1, 2, 2, 1);
    check_view(&(cfg){2, 5, 5, 6, 4, 1, 1, 0, 1, 1, 1}, tap, NULL, 44);
    check_view(&(cfg){1, 7, 5, 6, 4, 1, 2, 0, 1, 1, 1}, tap, bs, 45);
    /* dilated crop: every second tap of the 5x5, run at dilation 2 */
    nad_tensor *dil = dilated_crop(sl);
    check_view(&(cfg){1, 8, 7, 6, 4, 3, 1, 2, 2, 1, 1}, dil, bs, 46);
    /* depthwise: centre crop of a leading slice of a larger 5x5 depthwise weight */
    nad_tensor *dwbig = tc_rand(&rng, TC_SIZES(12, 5, 5, 1));
    nad_tensor *d1 = nad_tensor_narrow(dwbig, 0, 0, 7), *d2 = nad_tensor_narrow(d1, 1, 1, 3);
    nad_tensor *dcrop = nad_tensor_narrow(d2, 2, 1, 3);
    check_view(&(cfg){2, 5, 6, 7, 7, 3, 1, 1, 1, 7, 0}, dcrop, NULL, 47);
    nad_tensor *vs[] = {a, sl, half, bs, c1, crop, t1, tap, dil, dwbig, d1, d2, dcrop, big, bbig};
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++) nad_tensor_free(vs[i]);
}

/* ---- backward ---- */

typedef struct grad_ctx {
    cfg c;
    nad_workspace *ws;
    nad_tensor *x, *w, *b, *y, *r;
} grad_ctx;

static double conv_loss(void *p)
{
    grad_ctx *g = p;
    nad_conv2d_params pr = params_of(&g->c);
    nad_conv2d_forward(g->ws, &pr, g->x, g->w, g->b, g->y);
    return tc_dot(g->y, g->r);
}

/* dx, dw, db against central differences of L = sum y r; w is used as given (a view of a
   larger tensor when wbig is set, to check the gradient lands only on the slice). */
static void check_grad(const cfg *c, int w_view, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    int64_t cig = c->ci / c->g;
    grad_ctx g = {*c, nad_workspace_new(0), NULL, NULL, NULL, tc_empty(), NULL};
    g.x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
    nad_tensor *wbig = NULL, *dwbig = NULL, *dw;
    if (w_view) {
        /* w = centre crop of a wider 5x5 weight W[:co, 1:1+k, 1:1+k, :cig] */
        wbig = tc_rand(&rng, TC_SIZES(c->co + 2, c->k + 2, c->k + 2, cig + 3));
        dwbig = tc_zeros(TC_SIZES(c->co + 2, c->k + 2, c->k + 2, cig + 3));
        nad_tensor *a = nad_tensor_narrow(wbig, 0, 0, c->co), *b = nad_tensor_narrow(a, 1, 1, c->k);
        nad_tensor *d = nad_tensor_narrow(b, 2, 1, c->k);
        g.w = nad_tensor_narrow(d, 3, 0, cig);
        nad_tensor_free(a), nad_tensor_free(b), nad_tensor_free(d);
        a = nad_tensor_narrow(dwbig, 0, 0, c->co), b = nad_tensor_narrow(a, 1, 1, c->k);
        d = nad_tensor_narrow(b, 2, 1, c->k);
        dw = nad_tensor_narrow(d, 3, 0, cig);
        nad_tensor_free(a), nad_tensor_free(b), nad_tensor_free(d);
    } else {
        g.w = tc_rand(&rng, TC_SIZES(c->co, c->k, c->k, cig));
        dw = tc_zeros(TC_SIZES(c->co, c->k, c->k, cig));
    }
    g.b = c->bias ? tc_rand(&rng, TC_SIZES(c->co)) : NULL;
    nad_tensor *db = tc_zeros(TC_SIZES(c->co)), *dx = tc_empty();
    g.r = tc_rand(&rng, TC_SIZES(c->n, out_size(c->h, c), out_size(c->w, c), c->co));
    nad_conv2d_params p = params_of(c);
    cr_assert_eq(nad_conv2d_backward(g.ws, &p, g.x, g.w, g.r, dx, dw, db), 0, "%s",
                 nad_last_error());
    cr_assert(tc_gradcheck(conv_loss, &g, g.x, dx, 1e-2, 1e-2, 1e-3), "dx");
    cr_assert(tc_gradcheck(conv_loss, &g, g.w, dw, 1e-2, 1e-2, 1e-3), "dw");
    if (g.b) cr_assert(tc_gradcheck(conv_loss, &g, g.b, db, 1e-2, 1e-2, 1e-3), "db");
    if (w_view) /* nothing outside the slice was touched */
        cr_assert_float_eq(nad_tensor_sum(dwbig), nad_tensor_sum(dw), 1e-3);
    nad_tensor_free(g.x), nad_tensor_free(g.w), nad_tensor_free(g.b), nad_tensor_free(g.y);
    nad_tensor_free(g.r), nad_tensor_free(dx), nad_tensor_free(db), nad_tensor_free(dw);
    nad_tensor_free(wbig), nad_tensor_free(dwbig);
    nad_workspace_free(g.ws);
}

Test(conv2d, backward_matches_finite_differences)
{
    cfg cs[] = {
        {2, 5, 4, 3, 4, 3, 1, 1, 1, 1, 1}, /* 3x3 */
        {1, 7, 6, 2, 3, 3, 2, 1, 1, 1, 1}, /* stride 2 */
        {1, 7, 7, 4, 2, 3, 2, 2, 2, 2, 1}, /* groups 2, stride 2, dilation 2 */
        {2, 5, 5, 4, 4, 3, 1, 1, 1, 4, 1}, /* depthwise */
        {1, 7, 6, 3, 3, 3, 2, 2, 2, 3, 1}, /* depthwise stride 2 dilation 2 */
        {2, 3, 4, 5, 3, 1, 1, 0, 1, 1, 1}, /* 1x1 */
        {1, 3, 4, 4, 6, 1, 1, 0, 1, 2, 1}, /* grouped 1x1 */
        {1, 9, 9, 2, 3, 5, 4, 2, 1, 1, 1}, /* 5x5 stride 4, like a patch embedding */
        {1, 6, 5, 4, 18, 3, 2, 1, 1, 2, 1}, /* 9 outputs per group: per-group GEMMs */
        {2, 4, 4, 18, 8, 3, 1, 1, 1, 2, 1}, /* grouped, 4 outputs per group, as the mixer */
        {2, 4, 18, 4, 4, 3, 1, 1, 1, 1, 1}, /* few channels: the head's K -> K */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_grad(&cs[i], 0, 50 + i);
}

Test(conv2d, backward_into_weight_views_matches_finite_differences)
{
    cfg cs[] = {
        {1, 5, 4, 3, 4, 3, 1, 1, 1, 1, 1},
        {1, 6, 5, 4, 2, 3, 2, 1, 1, 2, 0},
        {1, 5, 5, 3, 3, 3, 1, 1, 1, 3, 1}, /* depthwise */
        {1, 5, 6, 6, 6, 3, 2, 1, 1, 3, 1}, /* grouped, direct */
        {1, 5, 4, 4, 18, 3, 1, 1, 1, 2, 1}, /* grouped, GEMMs */
        {1, 3, 4, 5, 3, 1, 1, 0, 1, 1, 1}, /* 1x1: rows stay contiguous, dw written in place */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_grad(&cs[i], 1, 60 + i);
}

/* Against the reference loops at a size where im2col runs in several chunks that cut images
   mid-way (4608 floats per pixel, 32 pixels per row: 28 rows a chunk, then 4). */
/* forward and backward of c against the plain loops (ref_forward, ref_backward) */
static void check_against_loops(const cfg *c, uint64_t seed)
{
    nad_rng rng;
    nad_rng_init(&rng, seed);
    nad_workspace *ws = nad_workspace_new(0);
    int64_t ho = out_size(c->h, c), wo = out_size(c->w, c);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
    nad_tensor *w = tc_rand(&rng, TC_SIZES(c->co, c->k, c->k, c->ci / c->g));
    nad_tensor *b = tc_rand(&rng, TC_SIZES(c->co));
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(c->n, ho, wo, c->co));
    nad_tensor *y = tc_empty(), *dx = tc_empty();
    nad_tensor *dw = tc_zeros(TC_SIZES(c->co, c->k, c->k, c->ci / c->g));
    nad_conv2d_params p = params_of(c);
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, y), 0, "%s", nad_last_error());
    nad_tensor *want = ref_forward(c, x, w, b);
    cr_assert(tc_close(y, want, 1e-4, 1e-4), "y: k%lld s%d pad%d d%d g%d", (long long)c->k, c->s,
              c->pad, c->d, c->g);
    cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, dx, dw, NULL), 0, "%s", nad_last_error());
    nad_tensor *rdx, *rdw;
    ref_backward(c, x, w, dy, &rdx, &rdw);
    cr_assert(tc_close(dx, rdx, 1e-4, 1e-4), "dx: k%lld s%d pad%d d%d g%d", (long long)c->k,
              c->s, c->pad, c->d, c->g);
    cr_assert(tc_close(dw, rdw, 1e-4, 1e-3), "dw: k%lld s%d pad%d d%d g%d", (long long)c->k,
              c->s, c->pad, c->d, c->g);
    nad_tensor *ts[] = {x, w, b, dy, y, dx, dw, want, rdx, rdw};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
}

Test(conv2d, backward_matches_loops_across_im2col_chunks)
{
    cfg c = {1, 32, 32, 512, 2, 3, 1, 1, 1, 1, 1};
    check_against_loops(&c, 70);
}

/* stride 1 with Co >= 16: dx is computed as a convolution of dy with the flipped weights
   (no im2col / col2im) where AVX-512 is there; padding below, at and above d (K - 1) / 2 */
Test(conv2d, backward_dx_as_flipped_convolution_matches_loops)
{
    cfg cs[] = {
        {2, 9, 11, 5, 16, 3, 1, 1, 1, 1, 1},   /* same-size 3x3, few input channels */
        {1, 10, 9, 20, 24, 5, 1, 2, 1, 1, 1},  /* 5x5 */
        {1, 11, 10, 16, 17, 3, 1, 2, 2, 1, 1}, /* dilation 2 */
        {1, 9, 9, 7, 32, 3, 1, 0, 1, 1, 1},    /* no padding: dy padded by 2 */
        {1, 8, 8, 16, 16, 3, 1, 2, 1, 1, 0},   /* pad 2 = d (K - 1): dy read in place */
        {1, 6, 6, 16, 16, 3, 1, 3, 1, 1, 1},   /* pad 3 > d (K - 1): im2col and col2im */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_against_loops(&cs[i], 90 + i);
}

/* at most 8 input and output channels, stride 1 (the head's K -> K conv): 16-pixel vectors
   over planar rows, rows that end mid-vector, every accumulator count, pads 0 to d (K - 1),
   and the first shapes past the path's limits (9 channels, pad 3) */
Test(conv2d, few_channels_direct_matches_loops)
{
    cfg cs[] = {
        {2, 9, 21, 4, 4, 3, 1, 1, 1, 1, 1},  /* the head: rows of 16 + 5 pixels */
        {1, 7, 16, 1, 8, 3, 1, 1, 1, 1, 1},  /* one input channel, 8 outputs, one whole vector */
        {1, 6, 35, 8, 1, 3, 1, 0, 1, 1, 1},  /* 8 -> 1, no padding */
        {1, 8, 19, 5, 7, 3, 1, 2, 1, 1, 0},  /* pad 2 = d (K - 1): dy read with no border */
        {1, 9, 18, 3, 6, 3, 1, 2, 2, 1, 1},  /* dilation 2 */
        {1, 8, 17, 6, 2, 5, 1, 2, 1, 1, 1},  /* 5x5 */
        {1, 5, 3, 2, 3, 3, 1, 1, 1, 1, 1},   /* rows shorter than a vector */
        {1, 6, 20, 9, 4, 3, 1, 1, 1, 1, 1},  /* 9 inputs: the GEMM path */
        {1, 6, 6, 4, 4, 3, 1, 3, 1, 1, 1},   /* pad 3 > d (K - 1): the GEMM path */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_against_loops(&cs[i], 120 + i);
}

/* channels beyond one 16-wide vector, with and without a remainder, as Mix-FFN uses them */
Test(conv2d, depthwise_vector_blocks_match_loops)
{
    cfg cs[] = {
        {2, 9, 8, 32, 32, 3, 1, 1, 1, 32, 1}, /* two whole vectors */
        {1, 7, 9, 20, 20, 3, 1, 1, 1, 20, 1}, /* one vector + 4 channels */
        {1, 9, 8, 35, 35, 3, 2, 2, 2, 35, 1}, /* stride 2, dilation 2, remainder 3 */
        {1, 6, 7, 48, 48, 5, 1, 2, 1, 48, 1}, /* 5x5 */
        {1, 4, 5, 17, 17, 3, 1, 0, 1, 17, 1}, /* no padding */
        /* rows wide enough for the 3x3 stride-1 strips of 8 outputs */
        {2, 6, 21, 32, 32, 3, 1, 1, 1, 32, 1},  /* two strips, border pixels after */
        {1, 5, 19, 20, 20, 3, 1, 1, 1, 20, 1},  /* a remainder of 4 channels per strip pixel */
        {1, 4, 12, 16, 16, 3, 1, 0, 1, 16, 0},  /* no padding: one strip and 2 pixels, no bias */
        {1, 3, 10, 16, 16, 3, 1, 2, 1, 16, 1},  /* padding 2: the strip starts at column 2 */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) check_against_loops(&cs[i], 80 + i);
}

Test(conv2d, backward_accumulates_dw_db_and_skips_null_outputs)
{
    cfg cs[] = {
        {1, 5, 5, 3, 4, 3, 2, 1, 1, 1, 1}, /* im2col */
        {1, 5, 5, 4, 4, 3, 1, 1, 1, 4, 1}, /* depthwise */
        {1, 5, 5, 3, 4, 1, 1, 0, 1, 1, 1}, /* 1x1 */
        {2, 5, 5, 6, 4, 3, 1, 1, 1, 2, 1}, /* grouped, direct */
        {2, 5, 19, 3, 4, 3, 1, 1, 1, 1, 1}, /* few channels, direct */
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        cfg c = cs[k];
        nad_rng rng;
        nad_rng_init(&rng, 80 + k);
        nad_workspace *ws = nad_workspace_new(0);
        nad_tensor *x = tc_rand(&rng, TC_SIZES(c.n, c.h, c.w, c.ci));
        nad_tensor *w = tc_rand(&rng, TC_SIZES(c.co, c.k, c.k, c.ci / c.g));
        nad_tensor *dy = tc_rand(&rng, TC_SIZES(c.n, out_size(c.h, &c), out_size(c.w, &c), c.co));
        nad_tensor *dw1 = tc_zeros(TC_SIZES(c.co, c.k, c.k, c.ci / c.g)), *db1 = tc_zeros(TC_SIZES(c.co));
        nad_tensor *dw2 = tc_zeros(TC_SIZES(c.co, c.k, c.k, c.ci / c.g)), *db2 = tc_zeros(TC_SIZES(c.co));
        nad_tensor *dx = tc_empty();
        nad_conv2d_params p = params_of(&c);
        cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, NULL, dw1, db1), 0, "%s",
                     nad_last_error());
        cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, dx, dw2, db2), 0);
        cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, NULL, dw2, db2), 0);
        for (int64_t i = 0; i < nad_tensor_numel(dw1); i++)
            cr_assert_float_eq(*tc_at(dw2, i), 2 * *tc_at(dw1, i), 1e-5);
        for (int64_t i = 0; i < c.co; i++)
            cr_assert_float_eq(*tc_at(db2, i), 2 * *tc_at(db1, i), 1e-5);
        cr_assert(nad_tensor_sum(db1) != 0);
        /* dx only: dw and db untouched */
        nad_tensor *dx2 = tc_empty();
        cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, dx2, NULL, NULL), 0);
        cr_assert(tc_close(dx2, dx, 0, 0));
        nad_tensor *ts[] = {x, w, dy, dw1, db1, dw2, db2, dx, dx2};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
        nad_workspace_free(ws);
    }
}

/* ---- PyTorch references (tests/torch/gen_conv.py) ---- */

static void check_torch(const char *name, nad_conv2d_params p)
{
    nad_tensor *t[7] = {0};
    cr_assert_eq(tc_load_ref(name, t, 7), 7, "%s", name);
    nad_tensor *x = t[0], *w = t[1], *b = t[2];
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *y = tc_empty(), *dx = tc_empty();
    nad_tensor *dw = tc_zeros(TC_SIZES(nad_tensor_size(w, 0), nad_tensor_size(w, 1),
                                       nad_tensor_size(w, 2), nad_tensor_size(w, 3)));
    nad_tensor *db = tc_zeros(TC_SIZES(nad_tensor_size(b, 0)));
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, y), 0, "%s", nad_last_error());
    cr_assert(tc_close(y, t[3], 1e-4, 1e-5), "%s y", name);
    /* the generator's loss is sum(y * y) / 2, so dy = y */
    cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, t[3], dx, dw, db), 0, "%s", nad_last_error());
    cr_assert(tc_close(dx, t[4], 1e-4, 1e-5), "%s dx", name);
    cr_assert(tc_close(dw, t[5], 1e-4, 1e-5), "%s dw", name);
    cr_assert(tc_close(db, t[6], 1e-4, 1e-5), "%s db", name);
    for (int i = 0; i < 7; i++) nad_tensor_free(t[i]);
    nad_tensor_free(y), nad_tensor_free(dx), nad_tensor_free(dw), nad_tensor_free(db);
    nad_workspace_free(ws);
}

Test(conv2d, matches_pytorch)
{
    check_torch("conv2d_grouped", (nad_conv2d_params){2, 2, 2, 2});
    check_torch("conv2d_depthwise", (nad_conv2d_params){1, 1, 1, 16});
    check_torch("conv2d_patch7", (nad_conv2d_params){4, 3, 1, 1});
}

/* ---- errors ---- */

Test(conv2d, rejects_bad_shapes_without_touching_outputs)
{
    nad_rng rng;
    nad_rng_init(&rng, 90);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 5, 5, 3)), *y = tc_empty();
    nad_tensor *w1 = tc_rand(&rng, TC_SIZES(4, 3, 3, 1));
    nad_conv2d_params p = {1, 1, 1, 1};
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w1, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_forward: x has 3 channels, w expects 1");
    cr_assert_eq(nad_tensor_numel(y), 0);

    nad_tensor *x6 = tc_rand(&rng, TC_SIZES(1, 5, 5, 6)), *w6 = tc_rand(&rng, TC_SIZES(4, 3, 3, 2));
    p.groups = 4;
    cr_assert_eq(nad_conv2d_forward(ws, &p, x6, w6, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_forward: groups 4 does not divide x's 6 channels");
    p.groups = 3;
    cr_assert_eq(nad_conv2d_forward(ws, &p, x6, w6, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "conv2d_forward: groups 3 does not divide w's 4 output channels");
    p = (nad_conv2d_params){0, 1, 1, 1};
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w1, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_forward: stride is 0, expected >= 1");

    nad_tensor *w3 = tc_rand(&rng, TC_SIZES(4, 3, 3, 3)), *b5 = tc_rand(&rng, TC_SIZES(5));
    p = (nad_conv2d_params){1, 0, 3, 1};
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w3, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(),
                     "conv2d_forward: x is 5x5, too small for kernel 3 dilation 3 pad 0");
    p = (nad_conv2d_params){1, 1, 1, 1};
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w3, b5, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_forward: b has 5 elements, w has 4 output channels");
    cr_assert_eq(nad_tensor_numel(y), 0);

    /* backward: dy of the wrong shape; dw and dx untouched */
    nad_tensor *dy = tc_rand(&rng, TC_SIZES(1, 4, 5, 4)), *dx = tc_empty();
    nad_tensor *dw = tc_zeros(TC_SIZES(4, 3, 3, 3));
    cr_assert_eq(nad_conv2d_backward(ws, &p, x, w3, dy, dx, dw, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_backward: dy is [1,4,5,4], expected [1,5,5,4]");
    cr_assert_eq(nad_tensor_numel(dx), 0);
    cr_assert_eq(nad_tensor_sum(dw), 0);
    nad_tensor *ts[] = {x, y, w1, x6, w6, w3, b5, dy, dx, dw};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) nad_tensor_free(ts[i]);
    nad_workspace_free(ws);
}

/* conv2d_gelu_forward equals conv2d_forward then gelu_forward, keeping y or not, on each path */
Test(conv2d, gelu_fused_matches_conv_then_gelu)
{
    cfg cs[] = {
        {2, 7, 6, 35, 35, 3, 1, 1, 1, 35, 1}, /* depthwise: fused per row */
        {1, 6, 5, 6, 4, 3, 2, 1, 1, 2, 1},   /* im2col + GEMM */
        {2, 4, 5, 8, 6, 1, 1, 0, 1, 1, 0},   /* 1x1 */
        {1, 4, 4, 288, 64, 3, 1, 1, 1, 32, 1}, /* grouped, as the conv mixer */
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const cfg *c = &cs[i];
        nad_rng rng;
        nad_rng_init(&rng, 90 + i);
        nad_workspace *ws = nad_workspace_new(0);
        nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
        nad_tensor *w = tc_rand(&rng, TC_SIZES(c->co, c->k, c->k, c->ci / c->g));
        nad_tensor *b = c->bias ? tc_rand(&rng, TC_SIZES(c->co)) : NULL;
        nad_tensor *y = tc_empty(), *act = tc_empty(), *want_y = tc_empty(), *want = tc_empty();
        nad_tensor *alone = tc_empty();
        nad_conv2d_params p = params_of(c);
        cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, want_y), 0, "%s", nad_last_error());
        cr_assert_eq(nad_gelu_forward(want_y, want), 0, "%s", nad_last_error());
        cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, x, w, b, y, act), 0, "%s", nad_last_error());
        cr_assert(tc_close(y, want_y, 1e-6, 1e-6), "y, case %zu", i);
        cr_assert(tc_close(act, want, 1e-6, 1e-6), "act, case %zu", i);
        cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, x, w, b, NULL, alone), 0, "%s",
                     nad_last_error());
        cr_assert(tc_close(alone, want, 1e-6, 1e-6), "act without y, case %zu", i);
        nad_tensor *ts[] = {x, w, b, y, act, want_y, want, alone};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
        nad_workspace_free(ws);
    }
}

Test(conv2d, gelu_fused_rejects_missing_or_aliased_outputs)
{
    cfg c = {1, 5, 5, 4, 4, 3, 1, 1, 1, 4, 1};
    nad_rng rng;
    nad_rng_init(&rng, 99);
    nad_workspace *ws = nad_workspace_new(0);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 5, 5, 4)), *w = tc_rand(&rng, TC_SIZES(4, 3, 3, 1));
    nad_tensor *y = tc_empty();
    nad_conv2d_params p = params_of(&c);
    cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, x, w, NULL, y, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_gelu_forward: act is NULL");
    cr_assert_eq(nad_conv2d_gelu_forward(ws, &p, x, w, NULL, y, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_gelu_forward: act must not share storage with x, w or y");
    cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, NULL, NULL), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_forward: y is NULL");
    nad_tensor_free(x);
    nad_tensor_free(w);
    nad_tensor_free(y);
    nad_workspace_free(ws);
}

/* conv2d_resized_forward: the resize written straight into the few-channel path's planar
   rows gives the bits of resize then conv2d_forward (up and down, both alignments, 2 to 8
   channels, 3x3 and 5x5, with and without bias, maps large enough for 2 threads); a
   convolution off that path is refused by name */
Test(conv2d, resized_forward_is_resize_then_conv)
{
    nad_rng rng;
    nad_rng_init(&rng, 77);
    nad_workspace *ws = nad_workspace_new(0);
    typedef struct { int n, h, w, c, k, pad, ho, wo, bias; } rcfg;
    const rcfg cs[] = {
        {2, 13, 11, 4, 3, 1, 50, 47, 0}, /* the head: K -> K 3x3 after a ~4x upsampling */
        {2, 50, 50, 4, 3, 1, 200, 200, 0},
        {1, 9, 12, 2, 3, 1, 20, 30, 1},
        {2, 16, 16, 6, 5, 2, 10, 9, 1},  /* downsampling, 5x5 */
        {1, 7, 8, 8, 3, 1, 33, 17, 1},
    };
    int32_t nt = nad_get_num_threads();
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++)
        for (int ac = 0; ac < 2; ac++)
            for (int threads = 1; threads <= 2; threads++) {
                const rcfg *c = &cs[i];
                nad_set_num_threads(threads);
                nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->c));
                nad_tensor *w = tc_rand(&rng, TC_SIZES(c->c, c->k, c->k, c->c));
                nad_tensor *b = c->bias ? tc_rand(&rng, TC_SIZES(c->c)) : NULL;
                nad_tensor *up = tc_empty(), *want = tc_empty(), *got = tc_empty();
                nad_conv2d_params p = {1, c->pad, 1, 1};
                cr_assert_eq(nad_resize_bilinear_forward(c->ho, c->wo, ac, x, up), 0, "%s", nad_last_error());
                cr_assert_eq(nad_conv2d_forward(ws, &p, up, w, b, want), 0, "%s", nad_last_error());
                cr_assert_eq(nad_conv2d_resized_forward(ws, &p, ac, x, c->ho, c->wo, w, b, got), 0, "%s",
                             nad_last_error());
                cr_assert(tc_close(got, want, 0, 0), "case %zu ac %d threads %d", i, ac, threads);
                nad_tensor *ts[] = {x, w, up, want, got};
                for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
                if (b) nad_tensor_free(b);
            }
    nad_set_num_threads(nt);
    nad_tensor *x = tc_rand(&rng, TC_SIZES(1, 4, 4, 16)), *w = tc_rand(&rng, TC_SIZES(16, 3, 3, 16));
    nad_tensor *y = tc_empty();
    nad_conv2d_params p = {1, 1, 1, 1};
    cr_assert_eq(nad_conv2d_resized_forward(ws, &p, 1, x, 8, 8, w, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_resized_forward: 16 -> 16 channels, stride 1, groups 1: "
                                       "not the few-channel path (2 to 8 channels, stride 1, groups 1); "
                                       "resize, then conv2d_forward");
    cr_assert_eq(nad_conv2d_resized_forward(ws, &p, 1, x, 0, 8, w, NULL, y), NAD_EINVAL);
    cr_assert_str_eq(nad_last_error(), "conv2d_resized_forward: output size 0x8 must be at least 1x1");
    nad_tensor_free(x);
    nad_tensor_free(w);
    nad_tensor_free(y);
    nad_workspace_free(ws);
}

static int same_bits(const nad_tensor *a, const nad_tensor *b)
{
    return nad_tensor_numel(a) == nad_tensor_numel(b) &&
           !memcmp(nad_tensor_data(a), nad_tensor_data(b), (size_t)nad_tensor_numel(a) * sizeof(float));
}

/* the implicit 3x3 path and the grouped one at 2 threads: whole images to threads in one
   region (batches of 2 and 4, padded and not) or each image's rows split (a batch of 3),
   forward and dx, the same bits as at 1 thread (and as the loops, to rounding) */
Test(conv2d, images_to_threads_keeps_the_bits)
{
    cfg cs[] = {
        {2, 20, 21, 32, 32, 3, 1, 1, 1, 1, 1},
        {4, 17, 16, 48, 40, 3, 1, 1, 1, 1, 0},
        {3, 20, 20, 32, 32, 3, 1, 1, 1, 1, 1},
        {2, 22, 22, 32, 24, 3, 1, 0, 1, 1, 1},
        {4, 16, 16, 288, 64, 3, 1, 1, 1, 32, 1}, /* grouped, as the conv mixer */
        {3, 20, 20, 288, 64, 3, 1, 1, 1, 32, 0},
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        const cfg *c = &cs[i];
        nad_rng rng;
        nad_rng_init(&rng, 150 + i);
        nad_workspace *ws = nad_workspace_new(0);
        int64_t ho = out_size(c->h, c), wo = out_size(c->w, c);
        nad_tensor *x = tc_rand(&rng, TC_SIZES(c->n, c->h, c->w, c->ci));
        nad_tensor *w = tc_rand(&rng, TC_SIZES(c->co, c->k, c->k, c->ci / c->g));
        nad_tensor *b = c->bias ? tc_rand(&rng, TC_SIZES(c->co)) : NULL;
        nad_tensor *dy = tc_rand(&rng, TC_SIZES(c->n, ho, wo, c->co));
        nad_tensor *y[2], *dx[2];
        nad_conv2d_params p = params_of(c);
        for (int t = 0; t < 2; t++) {
            nad_set_num_threads(t + 1);
            y[t] = tc_empty(), dx[t] = tc_empty();
            cr_assert_eq(nad_conv2d_forward(ws, &p, x, w, b, y[t]), 0, "%s", nad_last_error());
            cr_assert_eq(nad_conv2d_backward(ws, &p, x, w, dy, dx[t], NULL, NULL), 0, "%s",
                         nad_last_error());
        }
        nad_set_num_threads(1);
        cr_assert(same_bits(y[0], y[1]), "y, case %zu", i);
        cr_assert(same_bits(dx[0], dx[1]), "dx, case %zu", i);
        nad_tensor *want = ref_forward(c, x, w, b);
        cr_assert(tc_close(y[1], want, 1e-4, 1e-4), "y against the loops, case %zu", i);
        nad_tensor *ts[] = {x, w, b, dy, y[0], y[1], dx[0], dx[1], want};
        for (size_t j = 0; j < sizeof ts / sizeof ts[0]; j++) nad_tensor_free(ts[j]);
        nad_workspace_free(ws);
    }
}
