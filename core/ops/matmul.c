/* matmul.c: batched c = alpha op(a) op(b) + beta c on strided views, one cblas_sgemm per
   matrix. Attention is built from it: q k^T per head on permuted [N,heads,L,32] views of
   [N,L,C], and p v written straight into a per-head view of the [N,L,C] output. */
#include "../internal.h"
#include <cblas.h>
#include <stdbool.h>

/* The last two dims of a view as a BLAS matrix: row-major (unit stride along columns) or
   column-major (unit stride along rows), leading dimension ld. */
typedef struct {
    int64_t rows, cols, ld;
    int col_major;
} matdesc;

static int describe(const char *name, const nad_tensor *t, matdesc *m)
{
    int32_t nd = t->ndim;
    int64_t r = t->size[nd - 2], c = t->size[nd - 1];
    int64_t sr = t->stride[nd - 2], sc = t->stride[nd - 1];
    int64_t min_row_ld = c > 1 ? c : 1, min_col_ld = r > 1 ? r : 1;
    m->rows = r;
    m->cols = c;
    if (sc == 1 || c <= 1) {
        int64_t ld = r <= 1 || c == 0 ? min_row_ld : sr;
        if (ld >= min_row_ld) {
            m->ld = ld;
            m->col_major = 0;
            return 0;
        }
    }
    if (sr == 1 || r <= 1) {
        int64_t ld = c <= 1 || r == 0 ? min_col_ld : sc;
        if (ld >= min_col_ld) {
            m->ld = ld;
            m->col_major = 1;
            return 0;
        }
    }
    return nad_fail(NAD_EINVAL, "matmul: %s's last two dims need unit stride in one of them "
                                "(strides %lld, %lld)", name, (long long)sr, (long long)sc);
}

static int check_args(int32_t ta, int32_t tb, const nad_tensor *a, const nad_tensor *b,
                      const nad_tensor *c, matdesc *ma, matdesc *mb, matdesc *mc)
{
    const char *names[3] = {"a", "b", "c"};
    const nad_tensor *ts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        int rc = nad_check_tensor("matmul", names[i], ts[i]);
        if (rc) return rc;
        if (ts[i]->ndim < 2)
            return nad_fail(NAD_EINVAL, "matmul: %s has %d dims, expected 2 to %d", names[i],
                            ts[i]->ndim, NAD_MAX_DIMS);
    }
    char b1[96], b2[96];
    for (int i = 1; i < 3; i++) {
        bool same = ts[i]->ndim == a->ndim;
        for (int32_t d = 0; same && d < a->ndim - 2; d++) same = ts[i]->size[d] == a->size[d];
        if (!same)
            return nad_fail(NAD_EINVAL, "matmul: a is %s but %s is %s: the batch dims differ",
                            nad_shape_str(a, b1, sizeof b1), names[i],
                            nad_shape_str(ts[i], b2, sizeof b2));
    }
    int rc = describe("a", a, ma);
    if (rc || (rc = describe("b", b, mb)) || (rc = describe("c", c, mc))) return rc;
    int64_t m = ta ? ma->cols : ma->rows, k = ta ? ma->rows : ma->cols;
    int64_t kb = tb ? mb->cols : mb->rows, n = tb ? mb->rows : mb->cols;
    if (k != kb)
        return nad_fail(NAD_EINVAL, "matmul: op(a) is [%lld,%lld] but op(b) is [%lld,%lld]",
                        (long long)m, (long long)k, (long long)kb, (long long)n);
    if (mc->rows != m || mc->cols != n)
        return nad_fail(NAD_EINVAL, "matmul: c is %s but the product is [%lld,%lld]",
                        nad_shape_str(c, b1, sizeof b1), (long long)m, (long long)n);
    return 0;
}

/* Offset of batch entry i of t (its dims before the last two, row-major order). */
static int64_t batch_offset(const nad_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int32_t d = t->ndim - 3; d >= 0; d--) {
        off += (i % t->size[d]) * t->stride[d];
        i /= t->size[d];
    }
    return off;
}

/* the largest op(b), in floats, copied untransposed to the stack (16 KiB) */
enum { SMALL_B = 4096 };

/* c = beta c on one matrix (the product is empty when k = 0); beta = 0 ignores old c. */
static void scale_matrix(float *c, const nad_tensor *t, float beta)
{
    int64_t r = t->size[t->ndim - 2], n = t->size[t->ndim - 1];
    int64_t sr = t->stride[t->ndim - 2], sc = t->stride[t->ndim - 1];
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < n; j++) {
            float *p = c + i * sr + j * sc;
            *p = beta == 0.0f ? 0.0f : beta * *p;
        }
}

/* nad_matmul's loop: the batch's products, each a one-thread BLAS call */
typedef struct mm_loop {
    const nad_tensor *a, *b, *c;
    const matdesc *ma, *mb, *mc;
    const float *pa, *pb;
    float *pc;
    int64_t m, n, k, ldt;
    float alpha, beta;
    int fa, fb;
    bool transpose_b;
} mm_loop;

static void products(void *ctx, int64_t begin, int64_t end, int thread)
{
    const mm_loop *l = ctx;
    const int m = (int)l->m, n = (int)l->n, k = (int)l->k, fa = l->fa, fb = l->fb;
    const float alpha = l->alpha, beta = l->beta;
    for (int64_t i = begin; i < end; i++) {
        const float *ai = l->pa + batch_offset(l->a, i), *bi = l->pb + batch_offset(l->b, i);
        float *ci = l->pc + batch_offset(l->c, i);
        _Alignas(64) float bt[SMALL_B];
        if (k == 0) {
            scale_matrix(ci, l->c, beta);
        } else if (l->transpose_b) {
            nad_transpose_small(n, k, bi, l->mb->ld, bt);
            cblas_sgemm(CblasRowMajor, fa ? CblasTrans : CblasNoTrans, CblasNoTrans, m, n, k,
                        alpha, ai, (int)l->ma->ld, bt, (int)l->ldt, beta, ci, (int)l->mc->ld);
        } else if (!l->mc->col_major) {
            cblas_sgemm(CblasRowMajor, fa ? CblasTrans : CblasNoTrans,
                        fb ? CblasTrans : CblasNoTrans, m, n, k, alpha, ai, (int)l->ma->ld, bi,
                        (int)l->mb->ld, beta, ci, (int)l->mc->ld);
        } else {
            cblas_sgemm(CblasRowMajor, fb ? CblasNoTrans : CblasTrans,
                        fa ? CblasNoTrans : CblasTrans, n, m, k, alpha, bi, (int)l->mb->ld, ai,
                        (int)l->ma->ld, beta, ci, (int)l->mc->ld);
        }
    }
}

int nad_matmul(int32_t trans_a, int32_t trans_b, float alpha, const nad_tensor *a,
               const nad_tensor *b, float beta, nad_tensor *c)
{
    matdesc ma, mb, mc;
    trans_a = trans_a != 0;
    trans_b = trans_b != 0;
    int rc = check_args(trans_a, trans_b, a, b, c, &ma, &mb, &mc);
    if (rc) return rc;
    int64_t m = mc.rows, n = mc.cols, k = trans_a ? ma.rows : ma.cols;
    int64_t batch = 1;
    for (int32_t d = 0; d < a->ndim - 2; d++) batch *= a->size[d];
    if (m == 0 || n == 0 || batch == 0) return 0;

    /* A column-major operand is its transpose stored row-major: flip its flag. A column-major
       c is computed as c^T = op(b)^T op(a)^T, swapping the operands. */
    int fa = trans_a ^ ma.col_major, fb = trans_b ^ mb.col_major;
    const float *pa = nad_data(a), *pb = nad_data(b);
    float *pc = nad_data(c);
    /* Many small products (attention's heads): the threads take whole products, each a
       one-thread BLAS call (OpenBLAS runs single-threaded inside the core's parallel loop).
       Called one by one, every product big enough for OpenBLAS to thread would wake its
       sleeping OpenMP threads (~40 us each: bench/bench_omp_region.c), 7x the products' own
       time at 2 threads (bench_gemm_layers, stage-1 attention). */
    /* A small transposed B (attention's q k^T and dO v^T: k = 32 head dims by 16-49 keys)
       goes to OpenBLAS untransposed: its NT kernels ran these shapes at 52-77 % of its NN
       speed, the copy costs about 0.2 us per product (bench_gemm_layers, attention S, dA). */
    int64_t ldt = (n + 15) / 16 * 16;
    bool transpose_b = fb && !mc.col_major && k * ldt <= SMALL_B && nad_panel_available();
    mm_loop l = {a, b, c, &ma, &mb, &mc, pa, pb, pc, m, n, k, ldt, alpha, beta, fa, fb,
                 transpose_b};
    nad_parallel_for(batch, batch > 1 && batch * m * n * k > NAD_PAR_FMAS / 4, products, &l);
    return 0;
}
