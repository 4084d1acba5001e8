/* linear.c: y = x w^T + b over the last dim, forward and backward, on the GEMM kernels of gemm.c.
   Used by attention (q, kv, proj), the Mix-FFN and the MLP mixer; x may be a column slice and
   w, b leading slices of larger supernet weights (weight entanglement). */
#include "../internal.h"
#include <string.h>

/* A tensor read as a row-major matrix: rows of `cols` unit-stride elements, `ld` apart. */
typedef struct {
    float *p;
    int64_t rows, cols, ld;
} rowmat;

/* t's leading dims must collapse into one strided row dim and its last dim have unit stride
   (x[:, :in] of a wider tensor qualifies). */
static int as_rowmat(const char *fn, const char *name, const nad_tensor *t, rowmat *m)
{
    int32_t nd = t->ndim;
    if (nd < 1) return nad_fail(NAD_EINVAL, "%s: %s has 0 dims, expected at least 1", fn, name);
    m->p = nad_data(t);
    m->cols = t->size[nd - 1];
    if (m->cols > 1 && t->stride[nd - 1] != 1)
        return nad_fail(NAD_EINVAL, "%s: %s's last dim must have unit stride", fn, name);
    m->rows = 1;
    m->ld = -1;
    int64_t expect = 0; /* the stride the next outer non-unit dim must have */
    for (int32_t d = nd - 2; d >= 0; d--) {
        m->rows *= t->size[d];
        if (t->size[d] == 1) continue;
        if (m->ld < 0) m->ld = t->stride[d];
        else if (t->stride[d] != expect)
            return nad_fail(NAD_EINVAL, "%s: %s's leading dims do not collapse into one row "
                                        "dim (copy it first)", fn, name);
        expect = t->stride[d] * t->size[d];
    }
    int64_t min_ld = m->cols > 1 ? m->cols : 1;
    if (m->ld < 0) m->ld = min_ld;
    if (m->rows > 1 && m->ld < min_ld)
        return nad_fail(NAD_EINVAL, "%s: %s's rows overlap (row stride %lld < %lld)", fn, name,
                        (long long)m->ld, (long long)min_ld);
    return 0;
}

/* A [out, in] weight (or its gradient) with unit stride along in. */
static int as_weight(const char *fn, const char *name, const nad_tensor *w, rowmat *m)
{
    int rc = nad_check_ndim(fn, name, w, 2);
    return rc ? rc : as_rowmat(fn, name, w, m);
}

static int check_bias(const char *fn, const char *name, const nad_tensor *b, int64_t out)
{
    int rc = nad_check_ndim(fn, name, b, 1);
    if (rc) return rc;
    if (b->size[0] != out)
        return nad_fail(NAD_EINVAL, "%s: %s has %lld elements, w has %lld outputs", fn, name,
                        (long long)b->size[0], (long long)out);
    return 0;
}

static int check_features(const char *fn, const rowmat *x, const rowmat *w)
{
    if (x->cols != w->cols)
        return nad_fail(NAD_EINVAL, "%s: x has %lld features, w expects %lld", fn,
                        (long long)x->cols, (long long)w->cols);
    return 0;
}

/* y = x w^T + b, or y += that with accumulate (y then keeps its shape, which must match) */
static int linear_forward(const char *fn, const nad_tensor *x, const nad_tensor *w,
                          const nad_tensor *b, bool accumulate, nad_tensor *y)
{
    rowmat xm = {0}, wm = {0};
    int rc = nad_check_tensor(fn, "x", x);
    if (rc || (rc = as_rowmat(fn, "x", x, &xm))) return rc;
    if ((rc = nad_check_tensor(fn, "w", w)) || (rc = as_weight(fn, "w", w, &wm))) return rc;
    if ((rc = check_features(fn, &xm, &wm))) return rc;
    int64_t out = wm.rows;
    if (b && (rc = check_bias(fn, "b", b, out))) return rc;
    if ((rc = nad_check_tensor(fn, "y", y))) return rc;
    int64_t sizes[NAD_MAX_DIMS];
    for (int32_t d = 0; d < x->ndim; d++) sizes[d] = x->size[d];
    sizes[x->ndim - 1] = out;
    if (accumulate) {
        bool same = y->ndim == x->ndim;
        for (int32_t d = 0; same && d < x->ndim; d++) same = y->size[d] == sizes[d];
        if (!same) {
            char b1[96], b2[96];
            return nad_fail(NAD_EINVAL, "%s: y is %s, x %s gives another output shape", fn,
                            nad_shape_str(y, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2));
        }
        if ((rc = nad_check_contig(fn, "y", y))) return rc;
        if (nad_tensor_same_storage(x, y) || nad_tensor_same_storage(w, y))
            return nad_fail(NAD_EINVAL, "%s: y must not share storage with x or w", fn);
    } else if ((rc = nad_tensor_resize(y, x->ndim, sizes))) {
        return rc;
    }

    float *yd = nad_data(y);
    int64_t rows = xm.rows;
    if (rows == 0 || out == 0) return 0;
    const float *bd = b ? nad_data(b) : NULL;
    int64_t bs = b ? b->stride[0] : 0;
    /* y = x w^T with the bias added in the same pass (xm.cols == 0 gives y = b, or 0) */
    nad_gemm_nt_weights(rows, out, xm.cols, xm.p, xm.ld, wm.p, wm.ld, bd, bs, accumulate, yd, out);
    return 0;
}

int nad_linear_forward(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                       nad_tensor *y)
{
    return linear_forward("linear_forward", x, w, b, false, y);
}

int nad_linear_forward_acc(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                           nad_tensor *y)
{
    return linear_forward("linear_forward_acc", x, w, b, true, y);
}

/* bias_grad's loop: blocks of BIAS_BLOCK columns */
enum { BIAS_BLOCK = 64 };

typedef struct bias_blocks_loop {
    const rowmat *dy;
    float *db;
    int64_t dbs;
} bias_blocks_loop;

static void bias_blocks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const bias_blocks_loop *l = ctx;
    const rowmat *dy = l->dy;
    float *db = l->db;
    const int64_t dbs = l->dbs;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t c0 = blk * BIAS_BLOCK, n = dy->cols - c0 < BIAS_BLOCK ? dy->cols - c0 : BIAS_BLOCK;
        double acc[BIAS_BLOCK] = {0}; /* many rows: sum in double */
        for (int64_t r = 0; r < dy->rows; r++) {
            const float *g = dy->p + r * dy->ld + c0;
            for (int64_t j = 0; j < n; j++) acc[j] += g[j];
        }
        for (int64_t j = 0; j < n; j++) db[(c0 + j) * dbs] += (float)acc[j];
    }
}

/* db[o] += sum_r dy[r, o], in column blocks so each block's sum is one thread's (the result
   does not depend on the thread count) and the inner loop runs along contiguous columns. */
static void bias_grad(const rowmat *dy, float *db, int64_t dbs)
{
    int64_t nblk = (dy->cols + BIAS_BLOCK - 1) / BIAS_BLOCK;
    bias_blocks_loop l = {dy, db, dbs};
    nad_parallel_for(nblk, dy->rows * dy->cols > NAD_PAR_FLOATS, bias_blocks, &l);
}

/* y = x w^T + b  =>  dx = dy w,  dw += dy^T x,  db += sum over rows of dy */
int nad_linear_backward(const nad_tensor *x, const nad_tensor *w, const nad_tensor *dy,
                        nad_tensor *dx, nad_tensor *dw, nad_tensor *db)
{
    const char *fn = "linear_backward";
    rowmat xm = {0}, wm = {0}, gm = {0}, dwm = {0};
    int rc = nad_check_tensor(fn, "x", x);
    if (rc || (rc = as_rowmat(fn, "x", x, &xm))) return rc;
    if ((rc = nad_check_tensor(fn, "w", w)) || (rc = as_weight(fn, "w", w, &wm))) return rc;
    if ((rc = check_features(fn, &xm, &wm))) return rc;
    int64_t out = wm.rows, in = wm.cols;
    if ((rc = nad_check_tensor(fn, "dy", dy))) return rc;
    bool shape_ok = dy->ndim == x->ndim && dy->size[dy->ndim - 1] == out;
    for (int32_t d = 0; shape_ok && d < x->ndim - 1; d++) shape_ok = dy->size[d] == x->size[d];
    if (!shape_ok) {
        char b1[96], b2[96];
        return nad_fail(NAD_EINVAL, "%s: dy is %s but x is %s and w has %lld outputs", fn,
                        nad_shape_str(dy, b1, sizeof b1), nad_shape_str(x, b2, sizeof b2),
                        (long long)out);
    }
    if ((rc = as_rowmat(fn, "dy", dy, &gm))) return rc;
    if (dw) {
        if ((rc = as_weight(fn, "dw", dw, &dwm))) return rc;
        if ((rc = nad_check_same_shape(fn, "dw", dw, "w", w))) return rc;
    }
    if (db && (rc = check_bias(fn, "db", db, out))) return rc;
    if (dx && (rc = nad_resize_as(dx, x))) return rc;

    int64_t rows = xm.rows;
    if (dx && rows > 0 && in > 0) {
        float *dxd = nad_data(dx);
        nad_gemm_nn(rows, in, out, gm.p, gm.ld, wm.p, wm.ld, NULL, 0, false, dxd, in);
    }
    /* the bias's sums inside the weight gradient's pass where its kernel runs (the same bits) */
    bool summed = dw && db && rows > 0 && out > 0 && in > 0 &&
                  nad_gemm_tn_acc_bias(out, in, rows, gm.p, gm.ld, xm.p, xm.ld, dwm.p, dwm.ld,
                                       nad_data(db), db->stride[0]);
    if (!summed && dw && rows > 0 && out > 0 && in > 0)
        nad_gemm_tn_acc(out, in, rows, gm.p, gm.ld, xm.p, xm.ld, dwm.p, dwm.ld);
    if (!summed && db && rows > 0) bias_grad(&gm, nad_data(db), db->stride[0]);
    return 0;
}
