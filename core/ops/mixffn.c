/* mixffn.c: the Mix-FFN of an encoder block for inference, fused in row bands:
   y = r + fc2(GELU(dw3x3(fc1(x)))). Run as three operators, its hidden maps (ratio x C wide,
   4x the block's) go to memory and back four times: fc1 writes one, the depthwise conv reads
   it and writes another, fc2 reads that. Here each thread takes whole images (or, with fewer
   images than threads, row ranges of one) and goes down them a band of B rows at a time:
   fc1 for the band's rows and the one below it (the row above is kept from the band before),
   the depthwise conv + GELU for the band, fc2 into y with the residual added: the hidden rows
   stay in cache. The sums are those of the three operators (the same kernels), grouped in
   fewer rows per call. Training keeps the operators: the backward reads the hidden maps. */
#include "conv2d.h"
#include <string.h>

/* floats of one band's fc1 rows (and again of its activations): 256 KiB each, the pair in L2;
   but at least MIN_BAND rows, as each band moves the two rows it shares with the next to the
   front of its buffer (wide maps, e.g. 80 x 256 floats a row, gave 1-row bands: 2 rows moved
   per row made; 6 rows: middle subnet, 320x320, D=64, 0.370-0.402 -> 0.362-0.376 s) */
enum { BAND_FLOATS = 1 << 16, MIN_BAND = 6 };

/* A [rows, cols] weight view with unit stride along cols; *ld its row stride */
static int check_weight(const char *fn, const char *name, const nad_tensor *w, int64_t rows,
                        int64_t cols, int64_t *ld)
{
    int rc = nad_check_tensor(fn, name, w);
    if (rc || (rc = nad_check_ndim(fn, name, w, 2))) return rc;
    if (w->size[0] != rows || w->size[1] != cols) {
        char buf[96];
        return nad_fail(NAD_EINVAL, "%s: %s is %s, expected [%lld,%lld]", fn, name,
                        nad_shape_str(w, buf, sizeof buf), (long long)rows, (long long)cols);
    }
    if (cols > 1 && w->stride[1] != 1)
        return nad_fail(NAD_EINVAL, "%s: %s's last dim must have unit stride", fn, name);
    *ld = rows > 1 ? w->stride[0] : cols;
    if (*ld < cols)
        return nad_fail(NAD_EINVAL, "%s: %s's rows overlap (row stride %lld < %lld)", fn, name,
                        (long long)*ld, (long long)cols);
    return 0;
}

static int check_bias(const char *fn, const char *name, const nad_tensor *b, int64_t n)
{
    if (!b) return 0;
    int rc = nad_check_tensor(fn, name, b);
    if (rc || (rc = nad_check_ndim(fn, name, b, 1))) return rc;
    if (b->size[0] != n)
        return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, expected %lld", fn, name,
                        (long long)b->size[0], (long long)n);
    return 0;
}

typedef struct ffn {
    int64_t h, w, c, hd, band;     /* map rows and columns, channels, hidden channels, B */
    const float *x, *r, *w1, *b1, *w2, *b2;
    int64_t ldw1, ldw2, bs1, bs2; /* weight row strides, bias strides */
    const float *taps, *bd;       /* depthwise taps [9][hd] and bias (contiguous) */
    float *y;
    /* with the block's LayerNorm before fc1 (lg non-NULL): its gamma, beta and eps */
    const float *lg, *lb;
    int64_t lgs, lbs;
    float eps;
} ffn;

/* A thread's work item: rows [lo, hi) across the batch. Computed in place (y = x) with an
   image split between threads, the rows just outside an item belong to its neighbours, which
   may write them first: copies taken before any item starts (above, below; NULL otherwise). */
typedef struct item {
    int64_t lo, hi;
    const float *above, *below;
} item;

/* a thread's buffers: fc1's rows, the activations, the normalised input rows and their
   statistics */
typedef struct bufs {
    float *hid, *act, *xn, *stats;
} bufs;

static const float *x_row(const ffn *f, const item *it, int64_t r)
{
    if (it && it->above && r < it->lo) return it->above;
    if (it && it->below && r >= it->hi) return it->below;
    return f->x + r * f->w * f->c;
}

/* The three steps on runs of map rows (W pixels each), rows counted across the batch. */

/* hid = fc1 of the rows [first, first + rows), normalised first (into b->xn) where the block's
   LayerNorm is fused in: its rows' bits, as the map's normalisation is row by row */
static void fc1_rows(const ffn *f, const item *it, int64_t first, int64_t rows, const bufs *b)
{
    const float *a = f->x + first * f->w * f->c;
    if (f->lg) {
        for (int64_t i = 0; i < rows; i++)
            nad_layernorm_rows(x_row(f, it, first + i), b->xn + i * f->w * f->c, f->w, f->c,
                               f->lg, f->lgs, f->lb, f->lbs, f->eps, b->stats, b->stats + f->w);
        a = b->xn;
    }
    nad_gemm_nt_weights(rows * f->w, f->hd, f->c, a, f->c, f->w1, f->ldw1, f->b1, f->bs1, false,
                        b->hid, f->hd);
}

/* act rows [q0, q1) = GELU(dw3x3(hid)), hid holding n maps of h rows; rows beyond them count
   as the conv's zero padding */
static void dw_gelu_rows(const ffn *f, int64_t n, int64_t h, int64_t q0, int64_t q1,
                         const float *hid, float *act)
{
    const int64_t row = f->w * f->hd;
    geom g = {.n = n, .h = h, .w = f->w, .ci = f->hd, .co = f->hd, .k = 3, .ho = h, .wo = f->w,
              .s = 1, .pad = 1, .d = 1, .g = f->hd};
    for (int64_t q = q0; q < q1; q++) {
        nad_dw_forward_row(&g, hid, f->taps, f->bd, q, act);
        nad_gelu_span(act + q * row, act + q * row, row);
    }
}

/* y rows [first, first + rows) = r + fc2(act), or fc2(act) without r */
static void fc2_rows(const ffn *f, int64_t first, int64_t rows, const float *act)
{
    const int64_t m = rows * f->w;
    float *yo = f->y + first * f->w * f->c;
    if (f->r && f->r != f->y)
        memcpy(yo, f->r + first * f->w * f->c, (size_t)(m * f->c) * sizeof(float));
    nad_gemm_nt_weights(m, f->c, f->hd, act, f->hd, f->w2, f->ldw2, f->b2, f->bs2, f->r != NULL,
                        yo, f->c);
}

/* Rows [h0, h1) of image n, a band at a time; hid holds B + 2 rows of fc1's output, act B + 1
   rows of activations (indexed like hid). */
static void ffn_rows(const ffn *f, const item *it, int64_t n, int64_t h0, int64_t h1,
                     const bufs *b)
{
    float *hid = b->hid, *act = b->act;
    const int64_t row = f->w * f->hd, img = n * f->h;
    int64_t lo = h0 > 0 ? h0 - 1 : 0, have = 0; /* hid holds fc1 rows [lo, lo + have) */
    for (int64_t r0 = h0; r0 < h1; r0 += f->band) {
        const int64_t r1 = r0 + f->band < h1 ? r0 + f->band : h1;
        const int64_t need_lo = r0 > 0 ? r0 - 1 : 0, need_hi = r1 + 1 < f->h ? r1 + 1 : f->h;
        if (need_lo > lo) { /* keep the rows the next band shares with this one */
            int64_t drop = need_lo - lo < have ? need_lo - lo : have;
            memmove(hid, hid + drop * row, (size_t)((have - drop) * row) * sizeof(float));
            have -= drop, lo = need_lo;
        }
        if (lo + have < need_hi) {
            bufs at = *b;
            at.hid = hid + have * row;
            fc1_rows(f, it, img + lo + have, need_hi - lo - have, &at);
        }
        have = need_hi - lo;
        /* hid ends before the map does only one row past the band, which the conv reads */
        dw_gelu_rows(f, 1, have, r0 - lo, r1 - lo, hid, act);
        fc2_rows(f, img + r0, r1 - r0, act + (r0 - lo) * row);
    }
}

/* Maps so small that all their hidden rows fit one band: the three steps over the whole batch
   at once, as the operators do them (the same products, so the same bits: a per-image product
   of fewer than 12 rows would go to OpenBLAS and round differently). */
static void whole_batch(const ffn *f, int64_t n, const bufs *b)
{
    fc1_rows(f, NULL, 0, n * f->h, b);
    dw_gelu_rows(f, n, f->h, 0, n * f->h, b->hid, b->act);
    fc2_rows(f, 0, n * f->h, b->act);
}

/* the block's LayerNorm before fc1, or none (ln NULL) */
/* the work items of one call: row ranges of images, each thread with its own buffers */
typedef struct item_loop {
    const ffn *f;
    float *bufs0;
    int64_t per_thread, xn_floats, per_image, H, rowc;
    const float *halo; /* the rows around each item, copied before any item wrote y, or NULL */
} item_loop;

static void run_items(void *ctx, int64_t begin, int64_t end, int thread)
{
    const item_loop *l = ctx;
    const ffn *f = l->f;
    const int64_t row = f->w * f->hd;
    float *mine = l->bufs0 + thread * l->per_thread;
    bufs b = {mine, mine + (f->band + 2) * row, mine + 2 * (f->band + 2) * row,
              mine + 2 * (f->band + 2) * row + l->xn_floats};
    for (int64_t it = begin; it < end; it++) {
        const int64_t n = it / l->per_image, p = it % l->per_image;
        const int64_t h0 = l->H * p / l->per_image, h1 = l->H * (p + 1) / l->per_image;
        item t = {n * l->H + h0, n * l->H + h1, NULL, NULL};
        if (l->halo) t.above = l->halo + 2 * it * l->rowc, t.below = l->halo + (2 * it + 1) * l->rowc;
        ffn_rows(f, &t, n, h0, h1, &b);
    }
}

typedef struct ln_args {
    float eps;
    const nad_tensor *gamma, *beta;
} ln_args;

static int mixffn(const char *fn, nad_workspace *ws, const ln_args *ln, const nad_tensor *x,
                  const nad_tensor *w1, const nad_tensor *b1, const nad_tensor *wd,
                  const nad_tensor *bd, const nad_tensor *w2, const nad_tensor *b2,
                  const nad_tensor *r, nad_tensor *y)
{
    int rc = nad_check_tensor(fn, "x", x);
    if (rc || (rc = nad_check_contig(fn, "x", x)) || (rc = nad_check_ndim(fn, "x", x, 4)))
        return rc;
    if ((rc = nad_check_tensor(fn, "w1", w1)) || (rc = nad_check_ndim(fn, "w1", w1, 2))) return rc;
    const int64_t N = x->size[0], H = x->size[1], W = x->size[2], C = x->size[3];
    const int64_t hd = w1->size[0];
    if (hd < 1) return nad_fail(NAD_EINVAL, "%s: w1 has no rows (hidden channels)", fn);
    ffn f = {.h = H, .w = W, .c = C, .hd = hd};
    if ((rc = check_weight(fn, "w1", w1, hd, C, &f.ldw1)) ||
        (rc = check_weight(fn, "w2", w2, C, hd, &f.ldw2)) || (rc = check_bias(fn, "b1", b1, hd)) ||
        (rc = check_bias(fn, "bd", bd, hd)) || (rc = check_bias(fn, "b2", b2, C)) ||
        (rc = nad_check_tensor(fn, "wd", wd)) || (rc = nad_check_ndim(fn, "wd", wd, 4)))
        return rc;
    if (wd->size[0] != hd || wd->size[1] != 3 || wd->size[2] != 3 || wd->size[3] != 1) {
        char buf[96];
        return nad_fail(NAD_EINVAL, "%s: wd is %s, expected [%lld,3,3,1]", fn,
                        nad_shape_str(wd, buf, sizeof buf), (long long)hd);
    }
    if (ln) {
        if ((rc = check_bias(fn, "gamma", ln->gamma, C)) || (rc = check_bias(fn, "beta", ln->beta, C)))
            return rc;
        if (!(ln->eps >= 0)) return nad_fail(NAD_EINVAL, "%s: eps = %g, expected >= 0", fn, ln->eps);
    }
    if (r && ((rc = nad_check_tensor(fn, "r", r)) || (rc = nad_check_contig(fn, "r", r)) ||
              (rc = nad_check_same_shape(fn, "r", r, "x", x))))
        return rc;
    if ((rc = nad_check_tensor(fn, "y", y))) return rc;
    /* in place (y = x = r) only with the LayerNorm fused in, which reads x a row at a time */
    const bool in_place = ln && y == x;
    if ((!in_place && nad_tensor_same_storage(x, y)) ||
        (r && r != y && nad_tensor_same_storage(r, y)))
        return nad_fail(NAD_EINVAL, "%s: y must not share storage with x (or with r, unless it is r)", fn);

    const int threads = nad_get_num_threads();
    const int64_t row = W > 0 ? W * hd : 1;
    f.band = BAND_FLOATS / row - 2 > MIN_BAND ? BAND_FLOATS / row - 2 : MIN_BAND;
    const bool whole = N * H * row <= BAND_FLOATS; /* the whole batch is one band */
    /* per thread: hid and act, B + 2 rows each; the normalised rows fc1 reads (the whole
       batch's in one band) and two statistics per pixel of a row */
    const int64_t xn_floats = ln ? (whole ? N * H : f.band + 2) * W * C : 0;
    const int64_t per_thread = 2 * (f.band + 2) * row + xn_floats + (ln ? 2 * W : 0);
    /* work items: whole images, or each image in `parts` row ranges when there are fewer
       images than threads (each range computes one fc1 row above it again) */
    const int64_t parts = N < threads ? (threads + N - 1) / N : 1;
    const int64_t items = N * (parts < H ? parts : H);
    const int64_t per_image = items / N;
    const bool halos = in_place && per_image > 1 && !whole;
    size_t floats = (size_t)(9 * hd + hd + threads * per_thread + (halos ? items * 2 * W * C : 0));
    float *base = nad_workspace_get(ws, floats * sizeof(float));
    if (!base) return nad_fail(NAD_ENOMEM, "%s: %s", fn, nad_last_error());
    if ((rc = nad_resize_as(y, x)) || (rc = nad_check_contig(fn, "y", y))) return rc;
    if (nad_numel(x) == 0) return 0;

    geom g = {.co = hd, .k = 3};
    float *taps = base, *bias = base + 9 * hd, *bufs0 = base + 10 * hd;
    float *halo = bufs0 + threads * per_thread;
    nad_dw_pack_taps(&g, wd, false, taps);
    if (bd)
        for (int64_t c = 0; c < hd; c++) bias[c] = nad_data(bd)[c * bd->stride[0]];
    f.x = nad_data(x), f.r = r ? nad_data(r) : NULL, f.y = nad_data(y);
    f.w1 = nad_data(w1), f.w2 = nad_data(w2), f.taps = taps, f.bd = bd ? bias : NULL;
    f.b1 = b1 ? nad_data(b1) : NULL, f.bs1 = b1 ? b1->stride[0] : 0;
    f.b2 = b2 ? nad_data(b2) : NULL, f.bs2 = b2 ? b2->stride[0] : 0;
    if (ln) {
        f.lg = nad_data(ln->gamma), f.lgs = ln->gamma->stride[0], f.eps = ln->eps;
        f.lb = nad_data(ln->beta), f.lbs = ln->beta->stride[0];
    }

    if (whole) {
        bufs b = {bufs0, bufs0 + (f.band + 2) * row, bufs0 + 2 * (f.band + 2) * row,
                  bufs0 + 2 * (f.band + 2) * row + xn_floats};
        whole_batch(&f, N, &b);
        return 0;
    }
    const int64_t rowc = W * C;
    if (halos) /* the rows around each item, before any item writes y over x */
        for (int64_t it = 0; it < items; it++) {
            const int64_t n = it / per_image, p = it % per_image;
            const int64_t h0 = H * p / per_image, h1 = H * (p + 1) / per_image;
            if (h0 > 0) memcpy(halo + 2 * it * rowc, f.x + (n * H + h0 - 1) * rowc, (size_t)rowc * sizeof(float));
            if (h1 < H) memcpy(halo + (2 * it + 1) * rowc, f.x + (n * H + h1) * rowc, (size_t)rowc * sizeof(float));
        }
    const double fmas = (double)N * H * W * hd * (2.0 * C + 9.0);
    item_loop loop = {&f, bufs0, per_thread, xn_floats, per_image, H, rowc, halos ? halo : NULL};
    nad_parallel_for(items, fmas > NAD_PAR_FMAS, run_items, &loop);
    return 0;
}

int nad_mixffn_forward(nad_workspace *ws, const nad_tensor *x, const nad_tensor *w1,
                       const nad_tensor *b1, const nad_tensor *wd, const nad_tensor *bd,
                       const nad_tensor *w2, const nad_tensor *b2, const nad_tensor *r,
                       nad_tensor *y)
{
    return mixffn("mixffn_forward", ws, NULL, x, w1, b1, wd, bd, w2, b2, r, y);
}

int nad_mixffn_ln_forward(nad_workspace *ws, float eps, const nad_tensor *gamma,
                          const nad_tensor *beta, const nad_tensor *x, const nad_tensor *w1,
                          const nad_tensor *b1, const nad_tensor *wd, const nad_tensor *bd,
                          const nad_tensor *w2, const nad_tensor *b2, nad_tensor *y)
{
    if (!gamma || !beta) return nad_fail(NAD_EINVAL, "mixffn_ln_forward: gamma or beta is NULL");
    ln_args ln = {eps, gamma, beta};
    return mixffn("mixffn_ln_forward", ws, &ln, x, w1, b1, wd, bd, w2, b2, x, y);
}
