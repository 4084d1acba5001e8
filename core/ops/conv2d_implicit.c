/* conv2d_implicit.c: conv2d's GEMM path without im2col (the AVX-512 kernel reading the padded
   input in place), forward and, for stride 1, the input gradient as a convolution of dy. */
#include "conv2d.h"
#include <string.h>

/* With the AVX-512 kernel (gemm.c) an output row (n, ho) is one product of Wo rows read
   straight from the input: image n is copied once into a zero-padded [Hp][Wp][Ci] buffer, and
   row wo's K K Ci inner elements are segments of it: with dilation 1 one per kernel row, K Ci
   contiguous floats at xp + ((ho s + kh) Wp + wo s) Ci; else one per tap, Ci floats at
   xp + ((ho s + kh d) Wp + wo s + kw d) Ci. This saves im2col's K K-fold copy of the input
   and its memory traffic. Groups == 1 only; segments under IMPLICIT_MIN_RUN floats and panels
   over IMPLICIT_PANEL_MAX floats keep im2col. */
enum { IMPLICIT_MIN_RUN = 4, IMPLICIT_MIN_CI = 16, MAX_SEGS = 64 };

/* segments per kernel (above) and their offsets in the padded input, row stride wp */
static int segments(const geom *g, int64_t wp, int64_t *off)
{
    if (g->d == 1) {
        for (int64_t kh = 0; kh < g->k; kh++) off[kh] = kh * wp * g->ci;
        return (int)g->k;
    }
    for (int64_t kh = 0; kh < g->k; kh++)
        for (int64_t kw = 0; kw < g->k; kw++) off[kh * g->k + kw] = (kh * g->d * wp + kw * g->d) * g->ci;
    return (int)g->kk;
}

bool nad_implicit_ok(const geom *g)
{
    int64_t run = g->d == 1 ? g->k * g->ci : g->ci, nseg = g->d == 1 ? g->k : g->kk;
    return g->path == PATH_GEMM && g->g == 1 && run >= IMPLICIT_MIN_RUN && nseg <= MAX_SEGS &&
           (g->kcg + 1) * ((g->co + 15) / 16 * 16) <= IMPLICIT_PANEL_MAX && nad_panel_available();
}

/* floats of the padded image (0 when pad == 0: the input is read in place) */
static int64_t padded_floats(const geom *g)
{
    return g->pad ? (g->h + 2 * g->pad) * (g->w + 2 * g->pad) * g->ci : 0;
}

/* A sleeping worker joins each parallel loop late (20-70 us, internal.h), and a batch's images
   one at a time took one or two loops each: with at least as many images as threads (and an
   even share for each), threads take whole images in one loop instead. Rows are computed
   alike either way, so the bits are the same. */
bool nad_conv_images_to_threads(const geom *g)
{
    const int threads = nad_get_num_threads();
    return threads > 1 && (g->n % threads == 0 || g->n >= 4 * threads) &&
           g->rows * g->kcg * g->co > NAD_PAR_FMAS;
}

/* floats of implicit_forward's padded buffer: one image, or one per thread (above) */
int64_t nad_implicit_floats(const geom *g)
{
    return padded_floats(g) * (nad_conv_images_to_threads(g) ? nad_get_num_threads() : 1);
}

/* image n zero-padded into xp (rows [r0, r1) of the padded image) */
static void pad_rows(const geom *g, const float *xn, float *xp, int64_t r0, int64_t r1)
{
    const int64_t pad = g->pad, wp = g->w + 2 * pad, ci = g->ci;
    for (int64_t r = r0; r < r1; r++) {
        float *row = xp + r * wp * ci;
        if (r < pad || r >= pad + g->h) {
            memset(row, 0, (size_t)(wp * ci) * sizeof(float));
            continue;
        }
        memset(row, 0, (size_t)(pad * ci) * sizeof(float));
        memcpy(row + pad * ci, xn + (r - pad) * g->w * ci, (size_t)(g->w * ci) * sizeof(float));
        memset(row + (pad + g->w) * ci, 0, (size_t)(pad * ci) * sizeof(float));
    }
}

/* output row ho of one image from its (padded) input src: Wo rows of one product */
static void output_row(const geom *g, const nad_panel *pn, int nseg, const int64_t *off,
                       const float *src, int64_t ho, float *yn)
{
    const int64_t wp = g->w + 2 * g->pad;
    nad_panel_rows(pn, g->wo, src + ho * g->s * wp * g->ci, g->s * g->ci, nseg, off, false,
                   yn + ho * g->wo * g->co, g->co);
}

/* one call's loops: whole images (each thread padding its own into xp, thread slot t at
   t * padded_floats), or rows of image n (padded into xp first: pad_rows, then out_rows) */
typedef struct fwd_loop {
    const geom *g;
    const nad_panel *pn;
    const int64_t *off;
    int nseg;
    const float *xd, *src;
    float *xp, *yd;
    int64_t n;
} fwd_loop;

static void images(void *ctx, int64_t begin, int64_t end, int thread)
{
    const fwd_loop *l = ctx;
    const geom *g = l->g;
    const int64_t img = g->h * g->w * g->ci, out = g->ho * g->wo * g->co;
    for (int64_t n = begin; n < end; n++) {
        const float *src = l->xd + n * img;
        if (g->pad) {
            float *mine = l->xp + thread * padded_floats(g);
            pad_rows(g, src, mine, 0, g->h + 2 * g->pad);
            src = mine;
        }
        for (int64_t ho = 0; ho < g->ho; ho++) output_row(g, l->pn, l->nseg, l->off, src, ho, l->yd + n * out);
    }
}

static void padded_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const fwd_loop *l = ctx;
    pad_rows(l->g, l->src, l->xp, begin, end);
}

static void out_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const fwd_loop *l = ctx;
    const geom *g = l->g;
    for (int64_t ho = begin; ho < end; ho++)
        output_row(g, l->pn, l->nseg, l->off, l->src, ho, l->yd + l->n * g->ho * g->wo * g->co);
}

void nad_implicit_forward(const geom *g, const nad_panel *pn, const float *xd, float *xp,
                          float *yd)
{
    const int64_t pad = g->pad, wp = g->w + 2 * pad, hp = g->h + 2 * pad;
    const int64_t img = g->h * g->w * g->ci;
    int64_t off[MAX_SEGS];
    fwd_loop l = {g, pn, off, segments(g, wp, off), xd, NULL, xp, yd, 0};
    if (nad_conv_images_to_threads(g)) {
        nad_parallel_for(g->n, true, images, &l);
        return;
    }
    for (l.n = 0; l.n < g->n; l.n++) {
        l.src = xd + l.n * img;
        if (pad) {
            nad_parallel_for(hp, hp * wp * g->ci > NAD_PAR_FLOATS, padded_rows, &l);
            l.src = xp;
        }
        nad_parallel_for(g->ho, g->ho * g->wo * g->kcg * g->co > NAD_PAR_FMAS, out_rows, &l);
    }
}

/* dx of a stride-1 convolution is itself a convolution of dy, computed the same way (no
   im2col, no col2im, no zeroing of dx): dx = dy (*) W' with W'[Ci][kh][kw][Co] =
   W[Co][K-1-kh][K-1-kw][Ci] and padding d (K - 1) - pad, so every input pixel gathers the
   outputs that read it. */
bool nad_implicit_dx_ok(const geom *g)
{
    return g->path == PATH_GEMM && g->g == 1 && g->s == 1 && g->co >= IMPLICIT_MIN_CI &&
           g->kk <= MAX_SEGS && g->d * (g->k - 1) >= g->pad &&
           (g->kk * g->co + 1) * ((g->ci + 15) / 16 * 16) <= IMPLICIT_PANEL_MAX &&
           nad_panel_available();
}

/* the convolution that maps dy to dx (see implicit_dx_ok) */
geom nad_conv_transposed(const geom *g)
{
    geom t = *g;
    t.h = g->ho, t.w = g->wo, t.ci = t.cig = g->co, t.co = t.cog = g->ci;
    t.pad = g->d * (g->k - 1) - g->pad;
    t.ho = g->h, t.wo = g->w;
    t.kcg = t.kk * t.ci;
    t.rows = t.n * t.ho * t.wo;
    return t;
}

/* wt[(kh K + kw) Co + o][c] = W[o][K-1-kh][K-1-kw][c], from W's rows (wd, ldw) */
void nad_conv_flip_weights(const geom *g, const float *wd, int64_t ldw, float *wt)
{
    for (int64_t tap = 0; tap < g->kk; tap++)
        for (int64_t o = 0; o < g->co; o++)
            memcpy(wt + (tap * g->co + o) * g->ci, wd + o * ldw + (g->kk - 1 - tap) * g->ci,
                   (size_t)g->ci * sizeof(float));
}
