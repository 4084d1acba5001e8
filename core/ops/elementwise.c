/* elementwise.c: y = alpha a + beta b, y = a * b (b broadcasting to a's shape) and its
   backward, y = s x. Any strides. Used for residuals, layer scales, the S2-MLPv2 split
   attention weights and the FPN's top-down sums. */
#include "../internal.h"
#include <string.h>

enum { PAR_MIN = NAD_PAR_FLOATS, COL_CHUNK = 256 };

/* b's strides seen from a's shape: a broadcast dim (b size 1, a size > 1) gets stride 0.
   Fails when b's shape does not broadcast to a's. */
static int broadcast_strides(const char *fn, const nad_tensor *a, const nad_tensor *b,
                             int64_t *bstride)
{
    bool ok = a->ndim == b->ndim;
    for (int32_t i = 0; ok && i < a->ndim; i++) {
        ok = b->size[i] == a->size[i] || b->size[i] == 1;
        bstride[i] = b->size[i] == a->size[i] ? b->stride[i] : 0;
    }
    if (ok) return 0;
    char b1[96], b2[96];
    return nad_fail(NAD_EINVAL, "%s: b %s does not broadcast to a %s (each size of b must "
                                "equal a's or be 1)",
                    fn, nad_shape_str(b, b1, sizeof b1), nad_shape_str(a, b2, sizeof b2));
}

/* Checks a, b and y and resizes y to a's shape (y may be a, or b when b has a's shape). */
static int check_binary(const char *fn, const nad_tensor *a, const nad_tensor *b, nad_tensor *y,
                        int64_t *bstride)
{
    int rc = nad_check_tensor(fn, "a", a);
    if (rc || (rc = nad_check_tensor(fn, "b", b)) || (rc = nad_check_tensor(fn, "y", y)))
        return rc;
    if ((rc = broadcast_strides(fn, a, b, bstride))) return rc;
    if (y == b && !nad_same_shape(a, b))
        return nad_fail(NAD_EINVAL, "%s: y is b, which is broadcast: it cannot hold the result",
                        fn);
    return y == a || y == b ? 0 : nad_resize_as(y, a);
}

typedef enum { OP_ADD, OP_MUL } binop;

/* Unit-stride spans in kernels compiled for AVX-512, AVX2 or the baseline (picked at load
   time). y may be a or b. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
add_span(float alpha, const float *a, float beta, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = alpha * a[i] + beta * b[i];
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
mul_span(const float *a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

enum { SPAN = 4096 }; /* contiguous work goes to threads in spans of this many floats */

/* binary_run's loops: spans of SPAN floats (all contiguous), or rows */
typedef struct binary_loop {
    binop op;
    float alpha, beta;
    const float *ad, *bd;
    float *yd;
    int64_t n;
    nad_rowiter ia, ib, iy;
} binary_loop;

static void binary_spans(void *ctx, int64_t begin, int64_t end, int thread)
{
    const binary_loop *l = ctx;
    for (int64_t i = begin * SPAN; i < end * SPAN && i < l->n; i += SPAN) {
        int64_t len = l->n - i < SPAN ? l->n - i : SPAN;
        if (l->op == OP_ADD) add_span(l->alpha, l->ad + i, l->beta, l->bd + i, l->yd + i, len);
        else mul_span(l->ad + i, l->bd + i, l->yd + i, len);
    }
}

static void binary_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const binary_loop *l = ctx;
    const float alpha = l->alpha, beta = l->beta;
    const int64_t len = l->ia.len, sa = l->ia.inner, sb = l->ib.inner, sy = l->iy.inner;
    for (int64_t r = begin; r < end; r++) {
        const float *ar = l->ad + nad_rowiter_offset(&l->ia, r);
        const float *br = l->bd + nad_rowiter_offset(&l->ib, r);
        float *yr = l->yd + nad_rowiter_offset(&l->iy, r);
        if (sa == 1 && sb == 1 && sy == 1) {
            if (l->op == OP_ADD) add_span(alpha, ar, beta, br, yr, len);
            else mul_span(ar, br, yr, len);
        } else if (sa == 1 && sb == 0 && sy == 1) {
            const float bv = br[0];
            if (l->op == OP_ADD)
                for (int64_t j = 0; j < len; j++) yr[j] = alpha * ar[j] + beta * bv;
            else
                for (int64_t j = 0; j < len; j++) yr[j] = ar[j] * bv;
        } else {
            for (int64_t j = 0; j < len; j++) {
                float av = ar[j * sa], bv = br[j * sb];
                yr[j * sy] = l->op == OP_ADD ? alpha * av + beta * bv : av * bv;
            }
        }
    }
}

/* The shared loop: y = op(a, b) over a's shape, rows split between threads. Reading an
   element before writing it keeps y == a or y == b (same view) correct. */
static void binary_run(binop op, float alpha, const nad_tensor *a, float beta,
                       const nad_tensor *b, const int64_t *bstride, nad_tensor *y)
{
    const float *ad = nad_data(a), *bd = nad_data(b);
    float *yd = nad_data(y);
    int64_t n = nad_numel(a);
    if (nad_is_contiguous(a) && nad_is_contiguous(y) && nad_is_contiguous(b) &&
        nad_numel(b) == n) {
        binary_loop l = {.op = op, .alpha = alpha, .beta = beta, .ad = ad, .bd = bd, .yd = yd,
                         .n = n};
        nad_parallel_for((n + SPAN - 1) / SPAN, n > PAR_MIN, binary_spans, &l);
        return;
    }
    binary_loop l = {.op = op, .alpha = alpha, .beta = beta, .ad = ad, .bd = bd, .yd = yd, .n = n};
    nad_rowiter_init(&l.ia, a);
    nad_rowiter_init_strides(&l.ib, a, bstride);
    nad_rowiter_init_strides(&l.iy, a, y->stride);
    nad_parallel_for(l.ia.rows, n > PAR_MIN, binary_rows, &l);
}

int nad_add(float alpha, const nad_tensor *a, float beta, const nad_tensor *b, nad_tensor *y)
{
    int64_t bstride[NAD_MAX_DIMS];
    int rc = check_binary("add", a, b, y, bstride);
    if (rc) return rc;
    binary_run(OP_ADD, alpha, a, beta, b, bstride, y);
    return 0;
}

int nad_mul(const nad_tensor *a, const nad_tensor *b, nad_tensor *y)
{
    int64_t bstride[NAD_MAX_DIMS];
    int rc = check_binary("mul", a, b, y, bstride);
    if (rc) return rc;
    binary_run(OP_MUL, 1, a, 0, b, bstride, y);
    return 0;
}

/* mul_backward_db's tasks: (row of db, chunk of its columns) pairs */
typedef struct db_loop {
    const nad_tensor *a, *dy, *db;
    const float *ad, *gd;
    float *bd;
    int64_t sa, sg, sb, len, nchunks, nred;
    int32_t nk, nr;
    bool col_bcast;
    int32_t kept[NAD_MAX_DIMS], red[NAD_MAX_DIMS];
} db_loop;

static void db_tasks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const db_loop *l = ctx;
    for (int64_t t = begin; t < end; t++) {
        int64_t rb = t / l->nchunks, c0 = (t % l->nchunks) * COL_CHUNK;
        int64_t c1 = l->col_bcast ? l->len : (c0 + COL_CHUNK < l->len ? c0 + COL_CHUNK : l->len);
        int64_t oa = 0, og = 0, ob = 0;
        for (int32_t i = l->nk - 1; i >= 0; i--) {
            int64_t idx = rb % l->a->size[l->kept[i]];
            rb /= l->a->size[l->kept[i]];
            oa += idx * l->a->stride[l->kept[i]];
            og += idx * l->dy->stride[l->kept[i]];
            ob += idx * l->db->stride[l->kept[i]];
        }
        double acc[COL_CHUNK] = {0};
        double sum = 0;
        for (int64_t k = 0; k < l->nred; k++) {
            int64_t kk = k, ra = oa, rg = og;
            for (int32_t i = l->nr - 1; i >= 0; i--) {
                int64_t idx = kk % l->a->size[l->red[i]];
                kk /= l->a->size[l->red[i]];
                ra += idx * l->a->stride[l->red[i]];
                rg += idx * l->dy->stride[l->red[i]];
            }
            const float *ar = l->ad + ra, *gr = l->gd + rg;
            if (l->col_bcast)
                for (int64_t j = 0; j < l->len; j++) sum += (double)gr[j * l->sg] * ar[j * l->sa];
            else
                for (int64_t j = c0; j < c1; j++)
                    acc[j - c0] += (double)(gr[j * l->sg] * ar[j * l->sa]);
        }
        if (l->col_bcast)
            l->bd[ob] += (float)sum;
        else
            for (int64_t j = c0; j < c1; j++) l->bd[ob + j * l->sb] += (float)acc[j - c0];
    }
}

/* db += sum over b's broadcast dims of dy * a. Each task owns one row of db (b's outer
   index) and one chunk of its columns, and sums the a-rows that map to it in a fixed order
   (double accumulators), so the result does not depend on the thread count. */
static void mul_backward_db(const nad_tensor *a, const nad_tensor *dy, nad_tensor *db)
{
    const int32_t nd = a->ndim;
    if (nd == 0) {
        nad_data(db)[0] += nad_data(dy)[0] * nad_data(a)[0];
        return;
    }
    const int32_t outer = nd - 1;
    /* kept dims: b's size equals a's; reduced dims: b's size is 1 and a's is not */
    int32_t kept[NAD_MAX_DIMS], red[NAD_MAX_DIMS], nk = 0, nr = 0;
    int64_t brows = 1, nred = 1;
    for (int32_t d = 0; d < outer; d++) {
        if (db->size[d] == a->size[d]) {
            kept[nk++] = d;
            brows *= a->size[d];
        } else {
            red[nr++] = d;
            nred *= a->size[d];
        }
    }
    const int64_t len = a->size[outer];
    const bool col_bcast = db->size[outer] != len;
    const int64_t nchunks = col_bcast ? 1 : (len + COL_CHUNK - 1) / COL_CHUNK;
    const int64_t tasks = brows * nchunks;
    const float *ad = nad_data(a), *gd = nad_data(dy);
    float *bd = nad_data(db);
    const int64_t sa = a->stride[outer], sg = dy->stride[outer], sb = db->stride[outer];
    db_loop l = {.a = a, .dy = dy, .db = db, .ad = ad, .gd = gd, .bd = bd, .sa = sa, .sg = sg,
                 .sb = sb, .len = len, .nchunks = nchunks, .nred = nred, .nk = nk, .nr = nr,
                 .col_bcast = col_bcast};
    memcpy(l.kept, kept, sizeof kept);
    memcpy(l.red, red, sizeof red);
    nad_parallel_for(tasks, nad_numel(a) > PAR_MIN && tasks > 1, db_tasks, &l);
}

/* da = dy * b (a's shape, overwritten); db += sum over broadcast dims of dy * a */
int nad_mul_backward(const nad_tensor *a, const nad_tensor *b, const nad_tensor *dy,
                     nad_tensor *da, nad_tensor *db)
{
    const char *fn = "mul_backward";
    int64_t bstride[NAD_MAX_DIMS];
    int rc = nad_check_tensor(fn, "a", a);
    if (rc || (rc = nad_check_tensor(fn, "b", b)) || (rc = nad_check_tensor(fn, "dy", dy)))
        return rc;
    if ((rc = broadcast_strides(fn, a, b, bstride))) return rc;
    if ((rc = nad_check_same_shape(fn, "dy", dy, "a", a))) return rc;
    if (db && (rc = nad_check_same_shape(fn, "db", db, "b", b))) return rc;
    if (da && da == b && !nad_same_shape(a, b))
        return nad_fail(NAD_EINVAL, "%s: da is b, which is broadcast: it cannot hold the result",
                        fn);
    if (da && da != a && da != dy && da != b && (rc = nad_resize_as(da, a))) return rc;
    /* db first: da may be a or dy (in place), which db still reads */
    if (db) mul_backward_db(a, dy, db);
    if (da) binary_run(OP_MUL, 1, dy, 0, b, bstride, da);
    return 0;
}

int nad_scale(float s, const nad_tensor *x, nad_tensor *y)
{
    int rc = nad_check_tensor("scale", "x", x);
    if (rc || (rc = nad_check_tensor("scale", "y", y))) return rc;
    if (y != x && (rc = nad_resize_as(y, x))) return rc;
    const float *xd = nad_data(x);
    float *yd = nad_data(y);
    int64_t n = nad_numel(x);
    if (nad_is_contiguous(x) && nad_is_contiguous(y)) {
        #pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) yd[i] = s * xd[i];
        return 0;
    }
    nad_rowiter ix, iy;
    nad_rowiter_init(&ix, x);
    nad_rowiter_init_strides(&iy, x, y->stride);
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t r = 0; r < ix.rows; r++) {
        const float *xr = xd + nad_rowiter_offset(&ix, r);
        float *yr = yd + nad_rowiter_offset(&iy, r);
        for (int64_t j = 0; j < ix.len; j++) yr[j * iy.inner] = s * xr[j * ix.inner];
    }
    return 0;
}
