/* conv2d.c: 2-D convolution on channels-last maps, x[N,H,W,Ci] * w[Co,K,K,Ci/groups], forward
   and backward. Five paths: 1x1 stride-1 as plain GEMMs on x, depthwise as direct loops over
   contiguous channels (conv2d_depthwise.c), grouped with few outputs per group as loops over
   the outputs (conv2d_grouped.c), few channels as loops over 16-pixel vectors of planar rows
   (conv2d_small.c), the rest as GEMMs over the (padded) input read in place (with the
   AVX-512 kernel; conv2d_implicit.c) or NHWC im2col in bounded chunks (conv2d_im2col.c).
   Used by the patch embeddings, the conv mixer, Mix-FFN's depthwise conv, the decoder (5x5
   super-kernel views) and the head. */
#include "conv2d.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* floats of im2col columns per chunk (16 MiB): bounds the workspace, keeps GEMMs large */
enum { COLS_BUDGET = 4 << 20 };

/* ---- argument checks ---- */

static int check_params(const char *fn, const nad_conv2d_params *p)
{
    if (!p) return nad_fail(NAD_EINVAL, "%s: params is NULL", fn);
    if (p->stride < 1) return nad_fail(NAD_EINVAL, "%s: stride is %d, expected >= 1", fn, p->stride);
    if (p->pad < 0) return nad_fail(NAD_EINVAL, "%s: pad is %d, expected >= 0", fn, p->pad);
    if (p->dilation < 1)
        return nad_fail(NAD_EINVAL, "%s: dilation is %d, expected >= 1", fn, p->dilation);
    if (p->groups < 1) return nad_fail(NAD_EINVAL, "%s: groups is %d, expected >= 1", fn, p->groups);
    return 0;
}

int nad_conv_geom(const char *fn, const nad_conv2d_params *p, const nad_tensor *x,
                  const nad_tensor *w, geom *g)
{
    int rc = check_params(fn, p);
    if (rc || (rc = nad_check_contig(fn, "x", x)) || (rc = nad_check_ndim(fn, "x", x, 4)) ||
        (rc = nad_check_ndim(fn, "w", w, 4)))
        return rc;
    char buf[96];
    if (w->size[1] != w->size[2] || w->size[1] < 1 || w->size[0] < 1 || w->size[3] < 1)
        return nad_fail(NAD_EINVAL, "%s: w is %s, expected [Co,K,K,Ci/groups] with K >= 1", fn,
                        nad_shape_str(w, buf, sizeof buf));
    *g = (geom){.n = x->size[0], .h = x->size[1], .w = x->size[2], .ci = x->size[3],
                .co = w->size[0], .k = w->size[1], .s = p->stride, .pad = p->pad,
                .d = p->dilation, .g = p->groups};
    if (g->ci % g->g)
        return nad_fail(NAD_EINVAL, "%s: groups %d does not divide x's %lld channels", fn,
                        p->groups, (long long)g->ci);
    if (g->co % g->g)
        return nad_fail(NAD_EINVAL, "%s: groups %d does not divide w's %lld output channels", fn,
                        p->groups, (long long)g->co);
    if (w->size[3] * g->g != g->ci)
        return nad_fail(NAD_EINVAL, "%s: x has %lld channels, w expects %lld", fn,
                        (long long)g->ci, (long long)(w->size[3] * g->g));
    int64_t span = g->d * (g->k - 1) + 1;
    if (g->h + 2 * g->pad < span || g->w + 2 * g->pad < span)
        return nad_fail(NAD_EINVAL,
                        "%s: x is %lldx%lld, too small for kernel %lld dilation %lld pad %lld", fn,
                        (long long)g->h, (long long)g->w, (long long)g->k, (long long)g->d,
                        (long long)g->pad);
    g->ho = (g->h + 2 * g->pad - span) / g->s + 1;
    g->wo = (g->w + 2 * g->pad - span) / g->s + 1;
    g->cig = g->ci / g->g;
    g->cog = g->co / g->g;
    g->kk = g->k * g->k;
    g->kcg = g->kk * g->cig;
    g->rows = g->n * g->ho * g->wo;
    if (g->g == g->ci && g->co == g->ci)
        g->path = PATH_DEPTHWISE;
    else if (g->k == 1 && g->s == 1 && g->pad == 0)
        g->path = PATH_1X1;
    else if (g->g > 1 && g->cog <= GROUPED_MAX_COG)
        g->path = PATH_GROUPED;
    else if (nad_sm_ok(g))
        g->path = PATH_SMALL;
    else
        g->path = PATH_GEMM;
    int64_t per_row = g->wo * g->kk * g->ci;
    g->chunk = COLS_BUDGET / per_row;
    if (g->chunk < 1) g->chunk = 1;
    if (g->chunk > g->n * g->ho) g->chunk = g->n * g->ho;
    return 0;
}

int nad_conv_check_vec(const char *fn, const char *name, const nad_tensor *v, int64_t n)
{
    int rc = nad_check_ndim(fn, name, v, 1);
    if (rc) return rc;
    if (v->size[0] != n)
        return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, w has %lld output channels", fn,
                        name, (long long)v->size[0], (long long)n);
    return 0;
}

/* ---- weights as [Co][K*K*Cig] rows ---- */

/* The leading dimension of a weight view read as contiguous rows [Co][K*K*Cig] (a leading
   slice W[:co] qualifies), or 0 when it must be packed. */
static int64_t row_ld(const nad_tensor *w, const geom *g)
{
    const int64_t *st = w->stride, *sz = w->size;
    bool rows = (sz[3] == 1 || st[3] == 1) && (sz[2] == 1 || st[2] == sz[3]) &&
                (sz[1] == 1 || st[1] == sz[2] * sz[3]);
    if (!rows) return 0;
    int64_t ld = sz[0] == 1 ? g->kcg : st[0];
    return ld >= g->kcg ? ld : 0;
}

/* dst[Co][K*K*Cig] = w (any view) */
static void pack_rows(const geom *g, const nad_tensor *w, float *dst)
{
    const float *src = nad_data(w);
    #pragma omp parallel for schedule(static) if (g->co * g->kcg > NAD_PAR_FLOATS)
    for (int64_t o = 0; o < g->co; o++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++)
                for (int64_t c = 0; c < g->cig; c++)
                    dst[(o * g->kk + kh * g->k + kw) * g->cig + c] = src[w_off(w, o, kh, kw, c)];
}

/* w (any view) += src[Co][K*K*Cig] */
static void add_rows(const geom *g, const float *src, nad_tensor *w)
{
    float *dst = nad_data(w);
    for (int64_t o = 0; o < g->co; o++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++)
                for (int64_t c = 0; c < g->cig; c++)
                    dst[w_off(w, o, kh, kw, c)] += src[(o * g->kk + kh * g->k + kw) * g->cig + c];
}

/* ---- workspace carving: one block, float offsets rounded to 64 bytes ---- */

size_t nad_conv_carve(size_t *used, int64_t floats)
{
    size_t at = *used;
    *used += ((size_t)floats + 15) & ~(size_t)15;
    return at;
}

/* ---- forward ---- */

/* y = a w^T + bias: weights read from parameter memory (in_params) go through the frozen
   weights' panel cache, a workspace copy of them never does */
static void gemm_nt_w(bool in_params, int64_t m, int64_t n, int64_t k, const float *a,
                      int64_t lda, const float *w, int64_t ldw, const float *bias,
                      int64_t bias_stride, float *y, int64_t ldy)
{
    if (in_params)
        nad_gemm_nt_weights(m, n, k, a, lda, w, ldw, bias, bias_stride, false, y, ldy);
    else
        nad_gemm_nt(m, n, k, a, lda, w, ldw, bias, bias_stride, false, y, ldy);
}

/* the few-channel path's planar rows of a map src [n][h][w][c] (padded by pad) into dst */
typedef struct planar_loop {
    const float *src;
    int64_t h, w, c, pad, wpl;
    float *dst;
} planar_loop;

static void planar_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const planar_loop *l = ctx;
    for (int64_t r = r0; r < r1; r++)
        nad_sm_planar_row(l->src, l->h, l->w, l->c, l->pad, l->wpl, r, l->dst);
}

/* conv_forward's loops on the direct paths: output rows (q = image * Ho + row) of the
   depthwise and few-channel paths (the latter from the planar input xs), and the grouped
   path's images (each thread gathering its own into its slot of xs) or one image's rows */
typedef struct fwd_loop {
    const geom *g;
    const float *xd, *w, *bias;
    float *yd, *ad, *xs; /* output, its GELU (or NULL), gathered or planar input */
    int64_t n;
} fwd_loop;

static void dw_rows(void *ctx, int64_t q0, int64_t q1, int thread)
{
    const fwd_loop *l = ctx;
    const int64_t row = l->g->wo * l->g->co;
    for (int64_t q = q0; q < q1; q++) {
        nad_dw_forward_row(l->g, l->xd, l->w, l->bias, q, l->yd);
        if (l->ad) nad_gelu_span(l->yd + q * row, l->ad + q * row, row);
    }
}

static void gr_images(void *ctx, int64_t n0, int64_t n1, int thread)
{
    const fwd_loop *l = ctx;
    const geom *g = l->g;
    const int64_t img = g->h * g->w * g->ci, out_img = g->ho * g->wo * g->co;
    float *mine = l->xs + thread * g->h * g->w * g->cig * g->co;
    for (int64_t n = n0; n < n1; n++) {
        nad_gr_gather_image(g, l->xd + n * img, mine);
        for (int64_t ho = 0; ho < g->ho; ho++)
            nad_gr_forward_row(g, mine, l->w, l->bias, ho, l->yd + n * out_img);
    }
}

static void gr_rows(void *ctx, int64_t h0, int64_t h1, int thread)
{
    const fwd_loop *l = ctx;
    const geom *g = l->g;
    for (int64_t ho = h0; ho < h1; ho++)
        nad_gr_forward_row(g, l->xs, l->w, l->bias, ho, l->yd + l->n * g->ho * g->wo * g->co);
}


static void sm_rows(void *ctx, int64_t q0, int64_t q1, int thread)
{
    const fwd_loop *l = ctx;
    for (int64_t q = q0; q < q1; q++) nad_sm_forward_row(l->g, l->xs, l->w, l->bias, q, l->yd);
}

/* y = conv(x, w) + b, and with act: act = GELU(y). The depthwise path applies GELU to each
   row as it is made (still in cache); the others over the whole output after. With act, y may
   be NULL: the pre-activation is then not kept (act holds it until GELU runs in place). */
static int conv_forward(const char *fn, nad_workspace *ws, const nad_conv2d_params *p,
                        const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                        nad_tensor *y, nad_tensor *act)
{
    geom g;
    int rc = nad_conv_geom(fn, p, x, w, &g);
    if (rc) return rc;
    if (b && (rc = nad_conv_check_vec(fn, "b", b, g.co))) return rc;
    if (y && (rc = nad_check_tensor(fn, "y", y))) return rc;
    if (act && (rc = nad_check_tensor(fn, "act", act))) return rc;
    if (y && (nad_tensor_same_storage(x, y) || nad_tensor_same_storage(w, y)))
        return nad_fail(NAD_EINVAL, "%s: y must not share storage with x or w", fn);
    if (act && (nad_tensor_same_storage(x, act) || nad_tensor_same_storage(w, act) ||
                (y && nad_tensor_same_storage(y, act))))
        return nad_fail(NAD_EINVAL, "%s: act must not share storage with x, w or y", fn);
    nad_tensor *out = y ? y : act; /* where the convolution writes */

    const bool direct = g.path == PATH_DEPTHWISE || g.path == PATH_GROUPED || g.path == PATH_SMALL;
    int64_t ldw = direct ? 0 : row_ld(w, &g);
    size_t used = 0, o_w = 0, o_b = 0, o_cols = 0;
    if (g.path == PATH_DEPTHWISE) o_w = nad_conv_carve(&used, g.kk * g.co);
    else if (g.path == PATH_GROUPED || g.path == PATH_SMALL) o_w = nad_conv_carve(&used, g.kk * g.cig * g.co);
    else if (!ldw) o_w = nad_conv_carve(&used, g.co * g.kcg);
    o_b = nad_conv_carve(&used, g.co);
    bool implicit = nad_implicit_ok(&g);
    if (implicit) o_cols = nad_conv_carve(&used, nad_implicit_floats(&g));
    else if (g.path == PATH_GEMM) o_cols = nad_conv_carve(&used, g.chunk * g.wo * g.kk * g.ci);
    if (g.path == PATH_GROUPED) /* the gathered image, one per thread when threads take images */
        o_cols = nad_conv_carve(&used, g.h * g.w * g.cig * g.co *
                                           (nad_conv_images_to_threads(&g) ? nad_get_num_threads() : 1));
    if (g.path == PATH_SMALL) o_cols = nad_conv_carve(&used, nad_sm_input_floats(&g));
    float *base = nad_workspace_get(ws, used * sizeof(float));
    if (!base) return nad_fail(NAD_ENOMEM, "%s: %s", fn, nad_last_error());
    int64_t ysz[4] = {g.n, g.ho, g.wo, g.co};
    if (y && ((rc = nad_tensor_resize(y, 4, ysz)) || (rc = nad_check_contig(fn, "y", y)))) return rc;
    if (act && ((rc = nad_tensor_resize(act, 4, ysz)) || (rc = nad_check_contig(fn, "act", act))))
        return rc;
    if (g.rows == 0) return 0;

    const float *xd = nad_data(x), *wd = nad_data(w);
    float *yd = nad_data(out), *ad = act ? nad_data(act) : NULL, *bias = NULL;
    if (b && direct) { /* their kernels read it contiguous */
        bias = base + o_b;
        const float *bd = nad_data(b);
        for (int64_t c = 0; c < g.co; c++) bias[c] = bd[c * b->stride[0]];
    }

    if (g.path == PATH_DEPTHWISE) {
        float *wt = base + o_w;
        nad_dw_pack_taps(&g, w, false, wt);
        fwd_loop l = {.g = &g, .xd = xd, .w = wt, .bias = bias, .yd = yd, .ad = ad};
        nad_parallel_for(g.n * g.ho, g.rows * g.ci > NAD_PAR_FLOATS / 2, dw_rows, &l);
        return 0;
    }
    if (g.path == PATH_GROUPED) {
        float *wg = base + o_w, *xg = base + o_cols;
        const int64_t img = g.h * g.w * g.ci;
        nad_gr_pack_weights(&g, w, wg);
        fwd_loop l = {.g = &g, .xd = xd, .w = wg, .bias = bias, .yd = yd, .xs = xg};
        if (nad_conv_images_to_threads(&g)) { /* each thread gathers its own images */
            nad_parallel_for(g.n, true, gr_images, &l);
            return act ? nad_gelu_forward(out, act) : 0;
        }
        for (l.n = 0; l.n < g.n; l.n++) {
            nad_gr_gather_image(&g, xd + l.n * img, xg);
            nad_parallel_for(g.ho, g.ho * g.wo * g.kk * g.cig * g.co > NAD_PAR_FMAS / 4, gr_rows, &l);
        }
        return act ? nad_gelu_forward(out, act) : 0;
    }
    if (g.path == PATH_SMALL) {
        const int64_t hp = g.h + 2 * g.pad, wpl = nad_sm_plane_width(&g);
        float *wp = base + o_w, *xp = base + o_cols;
        nad_sm_pack_weights(&g, w, false, wp);
        const bool par = g.rows * g.kk * g.ci * g.co > NAD_PAR_FMAS / 4;
        planar_loop pl = {xd, g.h, g.w, g.ci, g.pad, wpl, xp};
        nad_parallel_for(g.n * hp, par, planar_rows, &pl);
        fwd_loop l = {.g = &g, .w = wp, .bias = bias, .yd = yd, .xs = xp};
        nad_parallel_for(g.n * g.ho, par, sm_rows, &l);
        return act ? nad_gelu_forward(out, act) : 0;
    }
    /* the GEMM paths read the bias in place (any stride); w too where its rows allow
       (in_params: while the weights are frozen their packed panels are then cached, keyed by
       these addresses; a workspace copy never is) */
    const float *bp = b ? nad_data(b) : NULL;
    const int64_t bs = b ? b->stride[0] : 0;
    const bool in_params = ldw != 0;
    if (!ldw) {
        pack_rows(&g, w, base + o_w);
        wd = base + o_w;
        ldw = g.kcg;
    }
    if (g.path == PATH_1X1) {
        /* y_g[rows, Cog] = x_g[rows, Cig] w_g[Cog, Cig]^T, x read in place (lda = Ci) */
        for (int64_t gr = 0; gr < g.g; gr++)
            gemm_nt_w(in_params, g.rows, g.cog, g.cig, xd + gr * g.cig, g.ci, wd + gr * g.cog * ldw,
                      ldw, bp ? bp + gr * g.cog * bs : NULL, bs, yd + gr * g.cog, g.co);
        return act ? nad_gelu_forward(out, act) : 0;
    }
    if (implicit) {
        nad_panel pn;
        if (!(in_params ? nad_panel_pack_weights : nad_panel_pack)(&pn, true, g.co, g.kcg, wd, ldw,
                                                                   bp, bs, IMPLICIT_PANEL_MAX))
            return nad_fail(NAD_ENOMEM, "%s: out of memory for the packed weights", fn);
        nad_implicit_forward(&g, &pn, xd, base + o_cols, yd);
        return act ? nad_gelu_forward(out, act) : 0;
    }
    /* y_g[R, Cog] = cols_g[R, K K Cig] w_g[Cog, K K Cig]^T per chunk of R output pixels */
    float *cols = base + o_cols;
    const int64_t ldc = g.g * g.kcg;
    for (int64_t q0 = 0; q0 < g.n * g.ho; q0 += g.chunk) {
        int64_t q1 = q0 + g.chunk < g.n * g.ho ? q0 + g.chunk : g.n * g.ho;
        int64_t r0 = q0 * g.wo, nr = (q1 - q0) * g.wo;
        nad_im2col(&g, xd, q0, q1, cols);
        for (int64_t gr = 0; gr < g.g; gr++)
            gemm_nt_w(in_params, nr, g.cog, g.kcg, cols + gr * g.kcg, ldc, wd + gr * g.cog * ldw,
                      ldw, bp ? bp + gr * g.cog * bs : NULL, bs, yd + r0 * g.co + gr * g.cog, g.co);
    }
    return act ? nad_gelu_forward(out, act) : 0;
}

int nad_conv2d_forward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                       const nad_tensor *w, const nad_tensor *b, nad_tensor *y)
{
    if (!y) return nad_fail(NAD_EINVAL, "conv2d_forward: y is NULL");
    return conv_forward("conv2d_forward", ws, p, x, w, b, y, NULL);
}

int nad_conv2d_gelu_forward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                            const nad_tensor *w, const nad_tensor *b, nad_tensor *y,
                            nad_tensor *act)
{
    if (!act) return nad_fail(NAD_EINVAL, "conv2d_gelu_forward: act is NULL");
    return conv_forward("conv2d_gelu_forward", ws, p, x, w, b, y, act);
}

/* ---- backward ---- */

/* the few-channel path's weight-gradient sums in fixed parts of the output rows */
typedef struct sm_dw_loop {
    const geom *g;
    const float *xp, *dp;
    float *a;
    int64_t nq, nparts, per;
} sm_dw_loop;

static void sm_dw_parts(void *ctx, int64_t t0, int64_t t1, int thread)
{
    const sm_dw_loop *l = ctx;
    for (int64_t t = t0; t < t1; t++) {
        memset(l->a + t * l->per, 0, (size_t)l->per * sizeof(float));
        for (int64_t q = l->nq * t / l->nparts; q < l->nq * (t + 1) / l->nparts; q++)
            nad_sm_dw_row(l->g, l->xp, l->dp, q, l->a + t * l->per);
    }
}

/* The few-channel path's dx (a convolution of dy with the flipped weights, written) and dw
   (lane-wise sums per part, then added to dw in a fixed order); offsets into base as carved by
   nad_conv2d_backward. */
static void small_backward(const geom *g, const nad_tensor *w, const float *xd, const float *dyd,
                           float *dxd, nad_tensor *dw, int64_t nparts, float *base, size_t o_w,
                           size_t o_pad, size_t o_xp, size_t o_dyp, size_t o_dw)
{
    const int64_t fmas = g->rows * g->kk * g->ci * g->co;
    if (dxd) {
        geom tg = nad_conv_transposed(g);
        const int64_t wpl = nad_sm_plane_width(&tg), hp = tg.h + 2 * tg.pad;
        float *wp = base + o_w, *dp = base + o_pad;
        nad_sm_pack_weights(g, w, true, wp);
        planar_loop pl = {dyd, tg.h, tg.w, tg.ci, tg.pad, wpl, dp};
        nad_parallel_for(tg.n * hp, fmas > NAD_PAR_FMAS / 4, planar_rows, &pl);
        fwd_loop l = {.g = &tg, .w = wp, .yd = dxd, .xs = dp};
        nad_parallel_for(tg.n * tg.ho, fmas > NAD_PAR_FMAS / 4, sm_rows, &l);
    }
    if (!dw) return;
    const int64_t wpl = nad_sm_plane_width(g), hp = g->h + 2 * g->pad, nq = g->n * g->ho;
    const int64_t wpo = nad_sm_dy_width(g), per = g->co * g->kk * g->ci * VL;
    float *xp = base + o_xp, *dp = base + o_dyp, *a = base + o_dw;
    const bool par = fmas > NAD_PAR_FMAS / 4;
    planar_loop px = {xd, g->h, g->w, g->ci, g->pad, wpl, xp};
    planar_loop pd = {dyd, g->ho, g->wo, g->co, 0, wpo, dp};
    nad_parallel_for(g->n * hp, par, planar_rows, &px);
    nad_parallel_for(nq, par, planar_rows, &pd);
    sm_dw_loop l = {g, xp, dp, a, nq, nparts, per};
    nad_parallel_for(nparts, par, sm_dw_parts, &l);
    for (int64_t t = 1; t < nparts; t++)
        for (int64_t i = 0; i < per; i++) a[i] += a[t * per + i];
    float *o = nad_data(dw);
    for (int64_t c = 0; c < g->co; c++)
        for (int64_t kh = 0; kh < g->k; kh++)
            for (int64_t kw = 0; kw < g->k; kw++)
                for (int64_t j = 0; j < g->ci; j++) {
                    const float *lanes = a + (((c * g->k + kh) * g->k + kw) * g->ci + j) * VL;
                    float s = 0;
                    for (int l = 0; l < VL; l++) s += lanes[l];
                    o[w_off(dw, c, kh, kw, j)] += s;
                }
}

/* the depthwise dx's input rows: the forward of the turned taps (stride 1; g is then the
   transposed geometry) or the gather */
typedef struct dw_dx_loop {
    const geom *g;
    const float *dyd, *wt;
    float *dxd;
} dw_dx_loop;

static void dw_dx_turned(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const dw_dx_loop *l = ctx;
    for (int64_t pr = r0; pr < r1; pr++) nad_dw_forward_row(l->g, l->dyd, l->wt, NULL, pr, l->dxd);
}

static void dw_dx_gathered(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const dw_dx_loop *l = ctx;
    for (int64_t pr = r0; pr < r1; pr++) nad_dw_dx_row(l->g, l->dyd, l->wt, pr, l->dxd);
}

/* The GEMM paths: y[r, o] = b[o] + sum_j cols[r, j] w[o, j] (per group), so
   db[o] += sum_r dy[r, o];  dw[o, j] += sum_r dy[r, o] cols[r, j];
   dcols[r, j] = sum_o dy[r, o] w[o, j], and dx = col2im(dcols) (each column entry adds back
   into the input pixel it was read from). */
/* the depthwise weight gradients' fixed parts of the rows */
typedef struct dw_dw_parts_loop {
    geom g;
    const float *xd, *dyd;
    float *pw, *pb;
    int64_t nq, nparts;
} dw_dw_parts_loop;

static void dw_dw_parts(void *ctx, int64_t begin, int64_t end, int thread)
{
    const dw_dw_parts_loop *l = ctx;
    const geom g = l->g;
    const float *xd = l->xd, *dyd = l->dyd;
    float *pw = l->pw, *pb = l->pb;
    const int64_t nq = l->nq, nparts = l->nparts;
    for (int64_t t = begin; t < end; t++) {
        float *a = pw ? pw + t * g.kk * g.co : NULL, *s = pb ? pb + t * g.co : NULL;
        if (a) memset(a, 0, (size_t)(g.kk * g.co) * sizeof(float));
        if (s) memset(s, 0, (size_t)g.co * sizeof(float));
        for (int64_t q = nq * t / nparts; q < nq * (t + 1) / nparts; q++)
            nad_dw_dw_row(&g, xd, dyd + q * g.wo * g.co, q, a, s);
    }
}

/* the grouped dx's input rows, of whole images (threads take images) or of image n; each
   thread with its row of scratch (cig co floats) in tmp */
typedef struct gr_dx_loop {
    const geom *g;
    const float *dyd, *wg;
    float *tmp, *dxd;
    int64_t n;
} gr_dx_loop;

static void gr_dx_image_rows(const gr_dx_loop *l, int64_t n, int64_t h0, int64_t h1, int thread)
{
    const geom *g = l->g;
    const int64_t cg = g->cig * g->co;
    for (int64_t hi = h0; hi < h1; hi++)
        nad_gr_dx_row(g, l->dyd + n * g->ho * g->wo * g->co, l->wg, hi, l->tmp + thread * cg,
                      l->dxd + n * g->h * g->w * g->ci);
}

static void gr_dx_images(void *ctx, int64_t n0, int64_t n1, int thread)
{
    const gr_dx_loop *l = ctx;
    for (int64_t n = n0; n < n1; n++) gr_dx_image_rows(l, n, 0, l->g->h, thread);
}

static void gr_dx_rows(void *ctx, int64_t h0, int64_t h1, int thread)
{
    const gr_dx_loop *l = ctx;
    gr_dx_image_rows(l, l->n, h0, h1, thread);
}

/* the grouped weight gradients' fixed parts of one image's output rows */
typedef struct gr_dw_loop {
    const geom *g;
    const float *xg, *dyn;
    float *pw;
    int64_t nparts;
} gr_dw_loop;

static void gr_dw_parts(void *ctx, int64_t t0, int64_t t1, int thread)
{
    const gr_dw_loop *l = ctx;
    const geom *g = l->g;
    for (int64_t t = t0; t < t1; t++)
        for (int64_t ho = g->ho * t / l->nparts; ho < g->ho * (t + 1) / l->nparts; ho++)
            nad_gr_dw_row(g, l->xg, l->dyn, ho, l->pw + t * g->kk * g->cig * g->co);
}

int nad_conv2d_backward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                        const nad_tensor *w, const nad_tensor *dy, nad_tensor *dx,
                        nad_tensor *dw, nad_tensor *db)
{
    const char *fn = "conv2d_backward";
    geom g;
    int rc = nad_conv_geom(fn, p, x, w, &g);
    if (rc || (rc = nad_check_contig(fn, "dy", dy))) return rc;
    if (dy->ndim != 4 || dy->size[0] != g.n || dy->size[1] != g.ho || dy->size[2] != g.wo ||
        dy->size[3] != g.co) {
        char b1[96];
        return nad_fail(NAD_EINVAL, "%s: dy is %s, expected [%lld,%lld,%lld,%lld]", fn,
                        nad_shape_str(dy, b1, sizeof b1), (long long)g.n, (long long)g.ho,
                        (long long)g.wo, (long long)g.co);
    }
    if (dw && (rc = nad_check_same_shape(fn, "dw", dw, "w", w))) return rc;
    if (db && (rc = nad_conv_check_vec(fn, "db", db, g.co))) return rc;
    if (dx && (nad_tensor_same_storage(dx, x) || nad_tensor_same_storage(dx, dy) ||
               nad_tensor_same_storage(dx, w)))
        return nad_fail(NAD_EINVAL, "%s: dx must not share storage with x, w or dy", fn);

    const int64_t nparts = omp_get_max_threads();
    int64_t ldw = 0, lddw = 0;
    size_t used = 0, o_w = 0, o_dw = 0, o_db = 0, o_cols = 0, o_wt = 0, o_pad = 0, o_dyp = 0;
    bool implicit_dx = dx && nad_implicit_dx_ok(&g);
    if (g.path == PATH_DEPTHWISE) {
        if (dx) o_w = nad_conv_carve(&used, g.kk * g.co);
        if (dw) o_dw = nad_conv_carve(&used, nparts * g.kk * g.co);
        if (db) o_db = nad_conv_carve(&used, nparts * g.co);
    } else if (g.path == PATH_GROUPED) {
        const int64_t cg = g.cig * g.co;
        if (dx) o_w = nad_conv_carve(&used, g.kk * cg + nparts * cg); /* wg, then one t[] per thread */
        if (dw) o_dw = nad_conv_carve(&used, nparts * g.kk * cg);
        if (dw) o_cols = nad_conv_carve(&used, g.h * g.w * cg);
        if (db) o_db = nad_conv_carve(&used, nparts * g.co);
    } else if (g.path == PATH_SMALL) {
        if (dx) {
            geom tg = nad_conv_transposed(&g);
            o_w = nad_conv_carve(&used, g.kk * g.ci * g.co);
            o_pad = nad_conv_carve(&used, nad_sm_input_floats(&tg)); /* dy, planar and padded */
        }
        if (dw) {
            o_cols = nad_conv_carve(&used, nad_sm_input_floats(&g));                /* x, planar */
            o_dyp = nad_conv_carve(&used, g.n * g.ho * g.co * nad_sm_dy_width(&g)); /* dy, planar */
            o_dw = nad_conv_carve(&used, nparts * g.co * g.kk * g.ci * VL);
        }
        if (db) o_db = nad_conv_carve(&used, nparts * g.co);
    } else {
        if (dx && !(ldw = row_ld(w, &g))) o_w = nad_conv_carve(&used, g.co * g.kcg);
        if (dw && !(lddw = row_ld(dw, &g))) o_dw = nad_conv_carve(&used, g.co * g.kcg);
        if (db) o_db = nad_conv_carve(&used, nparts * g.co);
        if (g.path == PATH_GEMM && (dw || (dx && !implicit_dx)))
            o_cols = nad_conv_carve(&used, g.chunk * g.wo * g.kk * g.ci);
        if (dx && implicit_dx) {
            geom t = nad_conv_transposed(&g);
            o_wt = nad_conv_carve(&used, g.kk * g.co * g.ci);
            o_pad = nad_conv_carve(&used, nad_implicit_floats(&t));
        }
    }
    float *base = nad_workspace_get(ws, (used ? used : 16) * sizeof(float));
    if (!base) return nad_fail(NAD_ENOMEM, "%s: %s", fn, nad_last_error());
    if (dx && ((rc = nad_resize_as(dx, x)) || (rc = nad_check_contig(fn, "dx", dx)))) return rc;
    if (g.rows == 0) {
        if (dx) memset(nad_data(dx), 0, (size_t)nad_numel(dx) * sizeof(float));
        return 0;
    }

    const float *xd = nad_data(x), *wd = nad_data(w), *dyd = nad_data(dy);
    float *dxd = dx ? nad_data(dx) : NULL;

    if (g.path == PATH_DEPTHWISE) {
        /* dx[hi, wi, c] = sum dy[ho, wo, c] w[c, tap]; dw[c, tap] += sum dy[ho, wo, c] x[hi, wi, c] */
        if (dx) {
            float *wt = base + o_w;
            const bool as_conv = g.s == 1 && g.pad <= g.d * (g.k - 1);
            nad_dw_pack_taps(&g, w, as_conv, wt);
            if (as_conv) {
                /* stride 1: dx is dy's depthwise conv with the taps turned by 180 degrees and
                   padding d (K - 1) - pad, so the forward's rows make it with their sums in
                   registers (the gather below keeps them in memory: 2x slower) */
                geom t = nad_conv_transposed(&g);
                dw_dx_loop l = {&t, dyd, wt, dxd};
                nad_parallel_for(g.n * g.h, g.rows * g.ci > NAD_PAR_FLOATS / 2, dw_dx_turned, &l);
            } else {
                dw_dx_loop l = {&g, dyd, wt, dxd};
                nad_parallel_for(g.n * g.h, g.rows * g.ci > NAD_PAR_FLOATS / 2, dw_dx_gathered, &l);
            }
        }
        if (dw || db) {
            float *pw = dw ? base + o_dw : NULL, *pb = db ? base + o_db : NULL;
            const int64_t nq = g.n * g.ho;
            dw_dw_parts_loop l = {g, xd, dyd, pw, pb, nq, nparts};
            nad_parallel_for(nparts, g.rows * g.ci > NAD_PAR_FLOATS / 2, dw_dw_parts, &l);
            nad_dw_add_parts(&g, nparts, pw, pb, dw, db);
        }
        return 0;
    }
    if (g.path == PATH_GROUPED) {
        /* y[o] = sum_{tap, j} xg[j][o] wg[tap][j][o]: dx[gr Cig + j] = sum over o in group gr
           and taps of dy[o] wg[tap][j][o];  dw[o, tap, j] += sum dy[o] xg[tap pixel][j][o] */
        const int64_t cg = g.cig * g.co, img = g.h * g.w;
        if (db) nad_add_colsum(dyd, g.rows, g.co, nparts, base + o_db, db);
        if (dx) {
            float *wg = base + o_w, *tmp = wg + g.kk * cg;
            nad_gr_pack_weights(&g, w, wg);
            gr_dx_loop l = {&g, dyd, wg, tmp, dxd, 0};
            if (nad_conv_images_to_threads(&g)) {
                nad_parallel_for(g.n, true, gr_dx_images, &l);
            } else {
                for (l.n = 0; l.n < g.n; l.n++)
                    nad_parallel_for(g.h, g.ho * g.wo * g.kk * cg > NAD_PAR_FMAS / 4, gr_dx_rows, &l);
            }
        }
        if (dw) {
            float *pw = base + o_dw, *xg = base + o_cols;
            memset(pw, 0, (size_t)(nparts * g.kk * cg) * sizeof(float));
            for (int64_t n = 0; n < g.n; n++) {
                nad_gr_gather_image(&g, xd + n * img * g.ci, xg);
                const float *dyn = dyd + n * g.ho * g.wo * g.co;
                gr_dw_loop l = {&g, xg, dyn, pw, nparts};
                nad_parallel_for(nparts, g.ho * g.wo * g.kk * cg > NAD_PAR_FMAS / 4, gr_dw_parts, &l);
            }
            for (int64_t t = 1; t < nparts; t++)
                for (int64_t i = 0; i < g.kk * cg; i++) pw[i] += pw[t * g.kk * cg + i];
            float *o = nad_data(dw);
            for (int64_t c = 0; c < g.co; c++)
                for (int64_t kh = 0; kh < g.k; kh++)
                    for (int64_t kw = 0; kw < g.k; kw++)
                        for (int64_t j = 0; j < g.cig; j++)
                            o[w_off(dw, c, kh, kw, j)] += pw[((kh * g.k + kw) * g.cig + j) * g.co + c];
        }
        return 0;
    }

    if (g.path == PATH_SMALL) {
        small_backward(&g, w, xd, dyd, dxd, dw, nparts, base, o_w, o_pad, o_cols, o_dyp, o_dw);
        if (db) nad_add_colsum(dyd, g.rows, g.co, nparts, base + o_db, db);
        return 0;
    }
    if (db) nad_add_colsum(dyd, g.rows, g.co, nparts, base + o_db, db);
    float *dwp = NULL;
    bool dw_packed = dw && !lddw;
    if (dw) {
        if (!dw_packed) {
            dwp = nad_data(dw);
        } else {
            /* dw is a view that is not [Co][K K Cig] rows: accumulate here, add at the end */
            dwp = base + o_dw;
            lddw = g.kcg;
            memset(dwp, 0, (size_t)(g.co * g.kcg) * sizeof(float));
        }
    }
    if (dx && !ldw) {
        pack_rows(&g, w, base + o_w);
        wd = base + o_w;
        ldw = g.kcg;
    }
    if (g.path == PATH_1X1) {
        /* dx_g[rows, Cig] = dy_g[rows, Cog] w_g[Cog, Cig];  dw_g += dy_g^T x_g */
        for (int64_t gr = 0; gr < g.g; gr++) {
            if (dw)
                nad_gemm_tn_acc(g.cog, g.cig, g.rows, dyd + gr * g.cog, g.co, xd + gr * g.cig,
                                g.ci, dwp + gr * g.cog * lddw, lddw);
            if (dx)
                nad_gemm_nn(g.rows, g.cig, g.cog, dyd + gr * g.cog, g.co, wd + gr * g.cog * ldw,
                            ldw, NULL, 0, false, dxd + gr * g.cig, g.ci);
        }
    } else if (dx || dw) {
        if (implicit_dx) {
            geom t = nad_conv_transposed(&g);
            nad_panel pn;
            nad_conv_flip_weights(&g, wd, ldw, base + o_wt);
            if (!nad_panel_pack(&pn, false, t.co, t.kcg, base + o_wt, t.co, NULL, 0,
                                IMPLICIT_PANEL_MAX))
                return nad_fail(NAD_ENOMEM, "%s: out of memory for the packed weights", fn);
            nad_implicit_forward(&t, &pn, dyd, base + o_pad, dxd);
        }
        bool dx_cols = dx && !implicit_dx; /* dx through im2col columns and col2im */
        float *cols = base + o_cols;
        const int64_t ldc = g.g * g.kcg, nq = g.n * g.ho;
        if (dx_cols) {
            int64_t n = nad_numel(dx);
            #pragma omp parallel for schedule(static) if (n > NAD_PAR_FLOATS)
            for (int64_t i = 0; i < n; i++) dxd[i] = 0;
        }
        for (int64_t q0 = 0; q0 < nq; q0 += g.chunk) {
            int64_t q1 = q0 + g.chunk < nq ? q0 + g.chunk : nq;
            int64_t r0 = q0 * g.wo, nr = (q1 - q0) * g.wo;
            const float *dyc = dyd + r0 * g.co;
            if (dw) {
                nad_im2col(&g, xd, q0, q1, cols);
                for (int64_t gr = 0; gr < g.g; gr++)
                    nad_gemm_tn_acc(g.cog, g.kcg, nr, dyc + gr * g.cog, g.co, cols + gr * g.kcg,
                                    ldc, dwp + gr * g.cog * lddw, lddw);
            }
            if (dx_cols) {
                for (int64_t gr = 0; gr < g.g; gr++)
                    nad_gemm_nn(nr, g.kcg, g.cog, dyc + gr * g.cog, g.co, wd + gr * g.cog * ldw,
                                ldw, NULL, 0, false, cols + gr * g.kcg, ldc);
                nad_col2im_add(&g, cols, q0, q1, dxd);
            }
        }
    }
    if (dw_packed) add_rows(&g, dwp, dw);
    return 0;
}
