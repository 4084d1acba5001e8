/* conv2d_gelu_backward.c: the backward of act = GELU(dwconv(x) + b) for a depthwise stride-1
   convolution (Mix-FFN's dw3x3 in training) in one pass over its rows.

   Unfused it is three passes over maps of the hidden width: GELU's backward reads dact and the
   pre-activation and writes the gradient at the conv's output (da); the conv's input gradient
   reads da and writes dx; its weight gradient reads da and x again. Here da is made a band of
   rows at a time into a buffer that stays in cache, and both gradients read it there: dact,
   pre and x are read once and dx written once.

   The work is the conv's backward's own split: parts of whole rows (across the batch), each
   with its own weight-gradient sums added in part order afterwards, the same ranges as
   nad_conv2d_backward's. dx is the forward kernel run on da with the taps turned by 180
   degrees (as nad_conv2d_backward does for stride 1), da is GELU's backward's function, so the
   results are those of nad_gelu_backward then nad_conv2d_backward, bit for bit where a row is
   a whole number of vectors (GELU's gradient may round a value in a vector's tail, which here
   falls at row ends, 1 ulp differently).

   dx may be dact itself (the Mix-FFN's backward writes its dx over the dact it has consumed):
   a part overwrites dact rows only after making da from them, but the rows just outside a
   part are read by its neighbour, which may run first; those halo rows are copied out before
   any part starts. */
#include "conv2d.h"
#include <string.h>

/* The rows of one part: the halo rows of dact copied before the parts run (up = the rows
   above its first row, down = those below its last, inside the same image) */
typedef struct part_rows {
    int64_t q0, q1;            /* rows [q0, q1) across the batch: n * h + row */
    const float *up, *down;
    int64_t up0, n_up, n_down; /* up holds rows [up0, q0), down rows [q1, q1 + n_down) */
} part_rows;

typedef struct job {
    const geom *g;       /* the convolution (depthwise, stride 1, Ho = H) */
    int64_t above;       /* rows of da above an output row its dx reads: d (K-1) - pad */
    int64_t below;       /* and below: pad */
    const float *x, *pre, *dact, *wt; /* wt: taps turned by 180 degrees, [K*K][C] */
    float *dx;
    int64_t band;        /* rows of dx per band */
} job;

/* the dact row r (across the batch) as part pr may read it: its own rows in place, its
   neighbours' from the halo copies */
static const float *dact_row(const job *j, const part_rows *pr, int64_t r)
{
    const int64_t row = j->g->w * j->g->ci;
    if (r < pr->q0) return pr->up + (r - pr->up0) * row;
    if (r >= pr->q1) return pr->down + (r - pr->q1) * row;
    return j->dact + r * row;
}

/* Rows [h0, h1) of image n, all inside part pr: da rows into buf (band + above + below rows,
   the ones a band shares with the next kept), then dx rows and the weight-gradient sums of
   the da rows [h0, h1). */
static void image_rows(const job *j, const part_rows *pr, int64_t n, int64_t h0, int64_t h1,
                       float *buf, float *dwt, float *dbt)
{
    const geom *g = j->g;
    const int64_t row = g->w * g->ci, img = n * g->h;
    int64_t lo = h0 - j->above > 0 ? h0 - j->above : 0, have = 0; /* buf: da rows [lo, lo + have) */
    for (int64_t r0 = h0; r0 < h1; r0 += j->band) {
        const int64_t r1 = r0 + j->band < h1 ? r0 + j->band : h1;
        const int64_t need_lo = r0 - j->above > 0 ? r0 - j->above : 0;
        const int64_t need_hi = r1 + j->below < g->h ? r1 + j->below : g->h;
        if (need_lo > lo) {
            int64_t drop = need_lo - lo < have ? need_lo - lo : have;
            memmove(buf, buf + drop * row, (size_t)((have - drop) * row) * sizeof(float));
            have -= drop, lo = need_lo;
        }
        for (; lo + have < need_hi; have++) {
            const int64_t r = img + lo + have;
            nad_gelu_grad_span(j->pre + r * row, dact_row(j, pr, r), buf + have * row, row);
        }
        /* dx rows [r0, r1): the forward kernel over the held da rows as a map of `have` rows
           (rows outside it are the image's border, where the conv reads zeros) */
        geom t = *g;
        t.n = 1, t.h = t.ho = have, t.pad = j->above;
        for (int64_t q = r0; q < r1; q++)
            nad_dw_forward_row(&t, buf, j->wt, NULL, q - lo, j->dx + (img + lo) * row);
        for (int64_t q = r0; q < r1; q++)
            if (dwt || dbt) nad_dw_dw_row(g, j->x, buf + (q - lo) * row, img + q, dwt, dbt);
    }
}

static void run_part(const job *j, const part_rows *pr, float *buf, float *dwt, float *dbt)
{
    const int64_t h = j->g->h;
    for (int64_t r = pr->q0; r < pr->q1;) {
        const int64_t n = r / h, end = (n + 1) * h < pr->q1 ? (n + 1) * h : pr->q1;
        image_rows(j, pr, n, r - n * h, end - n * h, buf, dwt, dbt);
        r = end;
    }
}

/* the parts, each with its own buffer and weight-gradient sums (slot t of bufs, dws, dbs) */
typedef struct parts_loop {
    const job *j;
    const part_rows *parts;
    float *bufs, *dws, *dbs;
    int64_t buf_floats;
} parts_loop;

static void run_parts(void *ctx, int64_t t0, int64_t t1, int thread)
{
    const parts_loop *l = ctx;
    const int64_t kk = l->j->g->kk, c = l->j->g->ci;
    for (int64_t t = t0; t < t1; t++) {
        float *a = l->dws ? l->dws + t * kk * c : NULL, *s = l->dbs ? l->dbs + t * c : NULL;
        if (a) memset(a, 0, (size_t)(kk * c) * sizeof(float));
        if (s) memset(s, 0, (size_t)c * sizeof(float));
        run_part(l->j, &l->parts[t], l->bufs + t * l->buf_floats, a, s);
    }
}

int nad_conv2d_gelu_backward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                             const nad_tensor *w, const nad_tensor *pre, const nad_tensor *dact,
                             nad_tensor *dx, nad_tensor *dw, nad_tensor *db)
{
    const char *fn = "conv2d_gelu_backward";
    geom g;
    int rc = nad_conv_geom(fn, p, x, w, &g);
    if (rc) return rc;
    if (g.path != PATH_DEPTHWISE || g.s != 1 || g.pad > g.d * (g.k - 1) || g.ho != g.h ||
        g.wo != g.w)
        return nad_fail(NAD_EINVAL,
                        "%s: only depthwise stride-1 convolutions keeping the map's size "
                        "(groups %d, stride %d, pad %d, dilation %d, K %lld)", fn, p->groups,
                        p->stride, p->pad, p->dilation, (long long)g.k);
    if ((rc = nad_check_contig(fn, "pre", pre)) || (rc = nad_check_contig(fn, "dact", dact)) ||
        (rc = nad_check_same_shape(fn, "pre", pre, "x", x)) ||
        (rc = nad_check_same_shape(fn, "dact", dact, "x", x)))
        return rc;
    if (!dx) return nad_fail(NAD_EINVAL, "%s: dx is NULL", fn);
    if (dw && (rc = nad_check_same_shape(fn, "dw", dw, "w", w))) return rc;
    if (db && (rc = nad_conv_check_vec(fn, "db", db, g.co))) return rc;
    if (nad_tensor_same_storage(dx, x) || nad_tensor_same_storage(dx, w) ||
        nad_tensor_same_storage(dx, pre) ||
        (nad_tensor_same_storage(dx, dact) && nad_data(dx) != nad_data(dact)))
        return nad_fail(NAD_EINVAL, "%s: dx must be dact itself or share no storage with x, w, "
                        "pre or dact", fn);

    const int64_t c = g.ci, row = g.w * c, nq = g.n * g.h;
    const int64_t above = g.d * (g.k - 1) - g.pad, below = g.pad;
    const int64_t nparts = nad_get_num_threads();
    /* bands of about 64 Ki floats of da (L2) */
    int64_t band = (1 << 16) / row - above - below;
    if (band < 1) band = 1;
    const int64_t buf_rows = band + above + below;
    size_t used = 0;
    const size_t o_w = nad_conv_carve(&used, g.kk * c);
    const size_t o_halo = nad_conv_carve(&used, nparts * (above + below) * row);
    const size_t o_buf = nad_conv_carve(&used, nparts * buf_rows * row);
    const size_t o_dw = dw ? nad_conv_carve(&used, nparts * g.kk * c) : 0;
    const size_t o_db = db ? nad_conv_carve(&used, nparts * c) : 0;
    const size_t o_parts = nad_conv_carve(&used, (int64_t)((nparts * sizeof(part_rows) + 3) / 4));
    float *base = nad_workspace_get(ws, used * sizeof(float));
    if (!base) return nad_fail(NAD_ENOMEM, "%s: %s", fn, nad_last_error());
    if ((rc = nad_resize_as(dx, x)) || (rc = nad_check_contig(fn, "dx", dx))) return rc;
    if (nq == 0 || row == 0) return 0;

    float *wt = base + o_w;
    nad_dw_pack_taps(&g, w, true, wt);
    job j = {.g = &g, .above = above, .below = below, .x = nad_data(x), .pre = nad_data(pre),
             .dact = nad_data(dact), .wt = wt, .dx = nad_data(dx), .band = band};

    /* the parts and their halo rows (copied before any part writes dx over dact) */
    part_rows *parts = (part_rows *)(base + o_parts);
    for (int64_t t = 0; t < nparts; t++) {
        part_rows *pr = &parts[t];
        pr->q0 = nq * t / nparts, pr->q1 = nq * (t + 1) / nparts;
        float *halo = base + o_halo + t * (above + below) * row;
        int64_t first = pr->q0 / g.h * g.h, end = pr->q1 > 0 ? ((pr->q1 - 1) / g.h + 1) * g.h : 0;
        pr->up0 = pr->q0 - above > first ? pr->q0 - above : first;
        pr->n_up = pr->q1 > pr->q0 ? pr->q0 - pr->up0 : 0;
        pr->n_down = pr->q1 > pr->q0 ? (pr->q1 + below < end ? below : end - pr->q1) : 0;
        pr->up = halo, pr->down = halo + above * row;
        if (pr->n_up)
            memcpy(halo, j.dact + pr->up0 * row, (size_t)(pr->n_up * row) * sizeof(float));
        if (pr->n_down)
            memcpy(halo + above * row, j.dact + pr->q1 * row,
                   (size_t)(pr->n_down * row) * sizeof(float));
    }
    parts_loop l = {&j, parts, base + o_buf, dw ? base + o_dw : NULL, db ? base + o_db : NULL,
                    buf_rows * row};
    nad_parallel_for(nparts, nq * row > NAD_PAR_FLOATS / 4, run_parts, &l);

    /* the parts' sums in part order, then into dw and db (nad_conv2d_backward's order) */
    nad_dw_add_parts(&g, nparts, dw ? base + o_dw : NULL, db ? base + o_db : NULL, dw, db);
    return 0;
}
