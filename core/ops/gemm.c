/* gemm.c: the GEMMs of linear and convolution layers on AVX-512, with OpenBLAS where the CPU
   or the shape does not suit them.
   OpenBLAS runs near the machine's limit on large square products but not on the network's
   typical shape: many rows (pixels x batch), few outputs (N = 32-128) and a short inner dim
   (K = 32-576). There it packs all of A for every product and reaches 50-80 % of its own
   2048^3 speed. The kernel here packs only B (K x N floats, a few KiB to a few MiB: it stays in
   L1/L2) and reads A's rows in place, broadcasting one element of each of MR rows against N/16
   vectors of B: MR x N/16 accumulators in registers. Uses:
   - nad_gemm_nt / nad_gemm_nn: C = A B^T or A B, with the bias added in the same pass (linear
     forward and dx, 1x1 convolutions);
   - nad_panel_pack + nad_panel_rows: a packed B against rows of A given as segments, which is
     how conv2d.c reads a convolution's input in place instead of through im2col;
   - nad_gemm_tn_acc: C += A^T B with B read in place (weight gradients).
   Each C element is one thread's sum in a fixed order, so results do not depend on the thread
   count. AUTONAD_GEMM=blas sends every product to OpenBLAS (A/B timing in one build). */
#include "../internal.h"
#include <cblas.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>

/* The packed B panel's size limits (floats): PANEL_SMALL (256 KiB, stays in L2) for any
   product; up to PANEL_MAX (4 MiB) when there are enough rows to repay the packing. */
enum { PANEL_SMALL = 1 << 16, PANEL_MAX = 1 << 20, MANY_ROWS = 1024 };

static bool have_avx512(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
}

/* The packed B panel: p[k][j], j padded to a multiple of 16 with zeros. One per thread that
   calls in (the callers' threads, not the OpenMP workers); grows, never shrinks. */
static _Thread_local float *panel;
static _Thread_local size_t panel_floats;

static float *panel_get(size_t floats)
{
    if (floats <= panel_floats) return panel;
    float *p = nad_alloc_zeroed(floats * sizeof(float));
    if (!p) return NULL;
    nad_free_aligned(panel);
    panel = p;
    panel_floats = floats;
    return p;
}

#define TARGET __attribute__((target("avx512f")))
#define UNROLL _Pragma("GCC unroll 16")

/* One tile: MR rows of C x NV vectors of 16 columns, the whole inner dim, in registers. Two
   forms, one signature (tile_fn):
   - tile_: row i of A is the concatenation of nseg segments of kseg floats, segment s at
     a + i * lda + off[s] (one segment for a plain matrix; one per tap for a convolution read
     straight from its input); `p` points at the tile's first column of a packed panel (ldp
     apart, 64-byte aligned, zero-padded), `bias` (padded, may be NULL) likewise;
   - tilet_ (weight gradients, A^T B): A(i, kk) = a[i + kk * lda], i.e. A's rows are
     contiguous runs of a row-major [k, m] matrix, and B is read in place (p = b, ldp = its row
     stride, unaligned, the last vector masked); nseg = 1.
   One function per (form, MR, NV), so that the accumulators are an array of exactly that
   size, which the compiler keeps in registers. */
typedef void tile_fn(int nseg, int64_t kseg, const int64_t *off, const float *a, int64_t lda,
                     const float *p, int64_t ldp, const float *bias, bool accumulate, float *c,
                     int64_t ldc, __mmask16 last);

#define TILE_BODY(MR, NV, A_AT, B_LOAD)                                                       \
    {                                                                                         \
        __m512 acc[MR][NV];                                                                   \
        UNROLL for (int j = 0; j < NV; j++) {                                                 \
            __m512 init = bias ? _mm512_load_ps(bias + 16 * j) : _mm512_setzero_ps();        \
            UNROLL for (int i = 0; i < MR; i++) acc[i][j] = init;                             \
        }                                                                                     \
        for (int s = 0; s < nseg; s++) {                                                      \
            const float *as = a + off[s], *ps = p + s * kseg * ldp;                            \
            for (int64_t kk = 0; kk < kseg; kk++) {                                           \
                __m512 b[NV];                                                                 \
                UNROLL for (int j = 0; j < NV; j++) b[j] = B_LOAD;                            \
                UNROLL for (int i = 0; i < MR; i++) {                                         \
                    __m512 av = _mm512_set1_ps(A_AT);                                         \
                    UNROLL for (int j = 0; j < NV; j++)                                       \
                        acc[i][j] = _mm512_fmadd_ps(av, b[j], acc[i][j]);                     \
                }                                                                             \
            }                                                                                 \
        }                                                                                     \
        UNROLL for (int i = 0; i < MR; i++)                                                   \
            UNROLL for (int j = 0; j < NV; j++) {                                             \
                __mmask16 m = j == NV - 1 ? last : 0xffff;                                    \
                float *cij = c + i * ldc + 16 * j;                                            \
                __m512 v = acc[i][j];                                                         \
                if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, cij));          \
                _mm512_mask_storeu_ps(cij, m, v);                                             \
            }                                                                                 \
    }
#define TILE_ARGS                                                                             \
    (int nseg, int64_t kseg, const int64_t *off, const float *a, int64_t lda, const float *p, \
     int64_t ldp, const float *bias, bool accumulate, float *c, int64_t ldc, __mmask16 last)
#define DEFINE_TILE(MR, NV)                                                                   \
    TARGET static void tile_##MR##x##NV TILE_ARGS                                             \
    TILE_BODY(MR, NV, as[i * lda + kk], _mm512_load_ps(ps + kk * ldp + 16 * j))               \
    TARGET static void tilet_##MR##x##NV TILE_ARGS                                            \
    TILE_BODY(MR, NV, as[i + kk * lda],                                                       \
              j == NV - 1 ? _mm512_maskz_loadu_ps(last, ps + kk * ldp + 16 * j)               \
                          : _mm512_loadu_ps(ps + kk * ldp + 16 * j))
/* MR up to 6 for 4 vectors, 8 for 3, 12 for 1-2: about 24 accumulators, leaving registers for
   B and the broadcast A element; the smaller MR finish a run of rows */
#define TILES_UP_TO_6(NV) DEFINE_TILE(1, NV) DEFINE_TILE(2, NV) DEFINE_TILE(3, NV) \
    DEFINE_TILE(4, NV) DEFINE_TILE(5, NV) DEFINE_TILE(6, NV)
TILES_UP_TO_6(1) TILES_UP_TO_6(2) TILES_UP_TO_6(3) TILES_UP_TO_6(4)
DEFINE_TILE(7, 3) DEFINE_TILE(8, 3)
DEFINE_TILE(7, 2) DEFINE_TILE(8, 2) DEFINE_TILE(9, 2) DEFINE_TILE(10, 2) DEFINE_TILE(11, 2) DEFINE_TILE(12, 2)
DEFINE_TILE(7, 1) DEFINE_TILE(8, 1) DEFINE_TILE(9, 1) DEFINE_TILE(10, 1) DEFINE_TILE(11, 1) DEFINE_TILE(12, 1)
#undef TILES_UP_TO_6
#undef DEFINE_TILE
#undef TILE_ARGS
#undef TILE_BODY

enum { MR_MAX = 12 };
static const int tile_rows[5] = {0, 12, 12, 8, 6}; /* the largest MR per NV */
#define ROW6(F, NV) F##1x##NV, F##2x##NV, F##3x##NV, F##4x##NV, F##5x##NV, F##6x##NV
#define TABLE(F)                                                                              \
    {                                                                                         \
        {0},                                                                                  \
        {0, ROW6(F, 1), F##7x1, F##8x1, F##9x1, F##10x1, F##11x1, F##12x1},                   \
        {0, ROW6(F, 2), F##7x2, F##8x2, F##9x2, F##10x2, F##11x2, F##12x2},                   \
        {0, ROW6(F, 3), F##7x3, F##8x3},                                                      \
        {0, ROW6(F, 4)},                                                                      \
    }
static tile_fn *const tiles[5][MR_MAX + 1] = TABLE(tile_);
static tile_fn *const tiles_t[5][MR_MAX + 1] = TABLE(tilet_);
#undef TABLE
#undef ROW6

/* The height of the tile at row r of `rows`, tiles of mr rows: a leftover of fewer than mr / 2
   rows goes with the last full tile as two tiles of about equal height (7 rows at MR 6: 4 + 3,
   not 6 + 1: a one-row tile has too few accumulators to hide the multiply-adds' latency; 1.2 %
   of the smallest subnet's batch-8 forward went to 1x4 tiles, at 25x25 maps' 625 rows). */
static inline int tile_height(int64_t r, int64_t rows, int mr)
{
    int64_t left = rows - r;
    if (left > mr && left < mr + mr / 2) return (int)((left + 1) / 2);
    return left < mr ? (int)left : mr;
}

/* C[rows, n] for `rows` rows of A (see tile_fn) against a packed panel, in the calling
   thread: column blocks of 64 (the last narrower and masked), rows in tiles of the largest
   MR, the leftover rows in smaller tiles (tile_height). */
TARGET static void panel_rows(const nad_panel *pn, int64_t rows, const float *a, int64_t lda,
                              int nseg, const int64_t *off, bool accumulate, float *c,
                              int64_t ldc)
{
    int64_t kseg = pn->k / nseg;
    for (int64_t c0 = 0; c0 < pn->n; c0 += 64) {
        int64_t w = pn->n - c0 < 64 ? pn->n - c0 : 64;
        int nv = (int)((w + 15) / 16), rem = (int)(w - 16 * (nv - 1));
        __mmask16 last = (__mmask16)(rem == 16 ? 0xffff : (1u << rem) - 1);
        const float *pb = pn->p + c0, *bb = pn->bias ? pn->bias + c0 : NULL;
        int mr = tile_rows[nv];
        for (int64_t r = 0, h; r < rows; r += h) {
            h = tile_height(r, rows, mr);
            tiles[nv][h](nseg, kseg, off, a + r * lda, lda, pb, pn->ldp, bb, accumulate,
                         c + r * ldc + c0, ldc, last);
        }
    }
}

void nad_panel_rows(const nad_panel *pn, int64_t rows, const float *a, int64_t lda, int nseg,
                    const int64_t *off, bool accumulate, float *c, int64_t ldc)
{
    if (rows > 0) panel_rows(pn, rows, a, lda, nseg, off, accumulate, c, ldc);
}

/* the whole product: threads take blocks of 24 rows (a multiple of every largest MR). A
   cached panel (see below) may be larger than packing would have allowed: it goes in column
   chunks, each through all the rows before the next (rows outer, every block of 24 rows would
   stream the whole panel from L3 or memory again), chunks of at most PANEL_SMALL floats (L2)
   for fewer than MANY_ROWS rows, of PANEL_MAX for more. Work items are (chunk, row block)
   pairs, so threads split the chunks. */
/* threads take blocks of RUN_ROWS rows (a multiple of every largest MR) */
enum { RUN_ROWS = 24 };

struct run_ctx {
    const nad_panel *pn;
    int64_t m, lda, ldc, cw, nrb;
    const float *a;
    float *c;
    bool accumulate;
};

static void run_items(void *ctx, int64_t begin, int64_t end, int thread)
{
    static const int64_t zero = 0;
    const struct run_ctx *r = ctx;
    const nad_panel *pn = r->pn;
    for (int64_t item = begin; item < end; item++) {
        int64_t c0 = item / r->nrb * r->cw, r0 = item % r->nrb * RUN_ROWS;
        int64_t nr = r->m - r0 < RUN_ROWS ? r->m - r0 : RUN_ROWS;
        nad_panel sub = *pn;
        sub.p = pn->p + c0;
        sub.bias = pn->bias ? pn->bias + c0 : NULL;
        sub.n = pn->n - c0 < r->cw ? pn->n - c0 : r->cw;
        panel_rows(&sub, nr, r->a + r0 * r->lda, r->lda, 1, &zero, r->accumulate,
                   r->c + r0 * r->ldc + c0, r->ldc);
    }
}

static void run(const nad_panel *pn, int64_t m, const float *a, int64_t lda, bool accumulate,
                float *c, int64_t ldc)
{
    int64_t nrb = (m + RUN_ROWS - 1) / RUN_ROWS, cw = pn->ldp;
    int64_t limit = m < MANY_ROWS ? PANEL_SMALL : PANEL_MAX;
    if ((pn->k + 1) * pn->ldp > limit) {
        cw = limit / (pn->k + 1) / 64 * 64;
        if (cw < 64) cw = 64;
    }
    int64_t nch = (pn->n + cw - 1) / cw;
    struct run_ctx r = {pn, m, lda, ldc, cw, nrb, a, c, accumulate};
    nad_parallel_for(nch * nrb, m * pn->n * pn->k > NAD_PAR_FMAS, run_items, &r);
}

/* AUTONAD_GEMM=blas sends every product to cblas_sgemm: for A/B timing in one build. */
static bool kernel_enabled(void)
{
    static int cached = -1;
    if (cached < 0) {
        const char *e = getenv("AUTONAD_GEMM");
        cached = !(e && strcmp(e, "blas") == 0);
    }
    return cached;
}

/* r[i][j] <- r[j][i] for a 16x16 block held in 16 registers: pairs, then 64-bit pairs, then
   128-bit lanes twice */
TARGET static inline void transpose16(__m512 r[16])
{
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            t[8 * i + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
            t[8 * i + 4 + j] = _mm512_shuffle_f32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
        }
    for (int j = 0; j < 8; j++) {
        r[j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0x88);
        r[8 + j] = _mm512_shuffle_f32x4(t[j], t[8 + j], 0xdd);
    }
}

/* p[kk][j] = b[j][kk] (j < n; zero for n <= j < ldp) in 16x16 blocks transposed in registers.
   At batch 1 every layer packs its weights for a handful of rows: a scalar transposition took
   ~8 % of the smallest subnet's forward, per-element gathers about half of that. */
TARGET static void pack_transposed(int64_t n, int64_t k, const float *b, int64_t ldb, float *p,
                                   int64_t ldp)
{
    for (int64_t j0 = 0; j0 < ldp; j0 += 16)
        for (int64_t k0 = 0; k0 < k; k0 += 16) {
            int64_t kw = k - k0 < 16 ? k - k0 : 16;
            __mmask16 km = (__mmask16)(kw == 16 ? 0xffff : (1u << kw) - 1);
            __m512 r[16];
            for (int64_t jj = 0; jj < 16; jj++)
                r[jj] = j0 + jj < n ? _mm512_maskz_loadu_ps(km, b + (j0 + jj) * ldb + k0)
                                    : _mm512_setzero_ps();
            transpose16(r);
            for (int64_t kk = 0; kk < kw; kk++) _mm512_store_ps(p + (k0 + kk) * ldp + j0, r[kk]);
        }
}

bool nad_panel_available(void) { return have_avx512() && kernel_enabled(); }

void nad_transpose_small(int64_t n, int64_t k, const float *b, int64_t ldb, float *p)
{
    pack_transposed(n, k, b, ldb, p, (n + 15) / 16 * 16);
}

static void pack_into(float *p, bool b_trans, int64_t n, int64_t k, const float *b, int64_t ldb,
                      const float *bias, int64_t bias_stride, nad_panel *pn)
{
    int64_t ldp = (n + 15) / 16 * 16;
    if (b_trans)
        pack_transposed(n, k, b, ldb, p, ldp);
    else
        for (int64_t kk = 0; kk < k; kk++) memcpy(p + kk * ldp, b + kk * ldb, (size_t)n * sizeof(float));
    for (int64_t kk = 0; kk < k; kk++)
        for (int64_t j = n; j < ldp; j++) p[kk * ldp + j] = 0.0f;
    float *pb = NULL;
    if (bias) {
        pb = p + k * ldp;
        for (int64_t j = 0; j < n; j++) pb[j] = bias[j * bias_stride];
        for (int64_t j = n; j < ldp; j++) pb[j] = 0.0f;
    }
    *pn = (nad_panel){.p = p, .bias = pb, .k = k, .n = n, .ldp = ldp};
}

bool nad_panel_pack(nad_panel *pn, bool b_trans, int64_t n, int64_t k, const float *b,
                    int64_t ldb, const float *bias, int64_t bias_stride, int64_t max_floats)
{
    int64_t ldp = (n + 15) / 16 * 16;
    if (n < 1 || k < 1 || (k + 1) * ldp > max_floats || !nad_panel_available())
        return false;
    float *p = panel_get((size_t)((k + 1) * ldp));
    if (!p) return false;
    pack_into(p, b_trans, n, k, b, ldb, bias, bias_stride, pn);
    return true;
}

/* ---- frozen weights: packed panels kept between calls ----
   While the weights are frozen (inference: nad_set_weights_frozen), a layer's packed weights
   stay in a per-thread cache keyed by the addresses and shapes of its weight and bias, so a
   batch-1 forward stops re-packing every layer (about 4 % of a small subnet's forward, more
   where the panel is larger than L2 and the product went to OpenBLAS instead). Any change of
   the frozen state, and any tensor storage freed (its address may come back with other
   contents: nad_storage_frees), makes the entries stale; stale entries are dropped when met. */
enum { CACHE_SLOTS = 128 };
static const size_t CACHE_BYTES = (size_t)64 << 20; /* per calling thread */

typedef struct cached_panel {
    const float *b, *bias;
    int64_t n, k, ldb, bias_stride;
    bool b_trans;
    uint64_t epoch, frees;
    float *p;
    size_t bytes;
    nad_panel pn;
} cached_panel;

static _Atomic int weights_frozen;
static _Atomic uint64_t weights_epoch = 1;
static _Thread_local cached_panel cache[CACHE_SLOTS];
static _Thread_local size_t cache_bytes;

static void cache_drop(cached_panel *e)
{
    nad_free_aligned(e->p);
    cache_bytes -= e->bytes;
    *e = (cached_panel){0};
}

/* Other threads' panels go stale and are freed at their next lookup; the calling thread's
   (usually the only one) are freed now, so that training after an evaluation does not carry
   up to CACHE_BYTES of dead panels. */
void nad_set_weights_frozen(int32_t frozen)
{
    weights_frozen = frozen != 0;
    weights_epoch++;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].p) cache_drop(&cache[i]);
}

int32_t nad_weights_frozen(void) { return weights_frozen; }

bool nad_panel_pack_weights(nad_panel *pn, bool b_trans, int64_t n, int64_t k, const float *b,
                            int64_t ldb, const float *bias, int64_t bias_stride,
                            int64_t max_floats)
{
    int64_t ldp = (n + 15) / 16 * 16;
    size_t bytes = (size_t)((k + 1) * ldp) * sizeof(float);
    if (!weights_frozen || n < 1 || k < 1 || bytes > CACHE_BYTES / 4 || !nad_panel_available())
        return nad_panel_pack(pn, b_trans, n, k, b, ldb, bias, bias_stride, max_floats);
    uint64_t epoch = weights_epoch, frees = nad_storage_frees();
    cached_panel *slot = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cached_panel *e = &cache[i];
        if (e->p && (e->epoch != epoch || e->frees != frees)) cache_drop(e);
        if (!e->p) {
            if (!slot) slot = e;
            continue;
        }
        if (e->b == b && e->bias == bias && e->n == n && e->k == k && e->ldb == ldb &&
            e->bias_stride == bias_stride && e->b_trans == b_trans) {
            *pn = e->pn;
            return true;
        }
    }
    /* a miss: cache it while there is room; a full cache keeps what it has. (Evicting would
       thrash: a forward visits its layers in a cycle, so with more weights than the budget
       least-recently-used eviction drops every panel before its next use, and each refill
       touches fresh pages.) */
    if (!slot || cache_bytes + bytes > CACHE_BYTES)
        return nad_panel_pack(pn, b_trans, n, k, b, ldb, bias, bias_stride, max_floats);
    float *p = nad_alloc_zeroed(bytes);
    if (!p) return nad_panel_pack(pn, b_trans, n, k, b, ldb, bias, bias_stride, max_floats);
    pack_into(p, b_trans, n, k, b, ldb, bias, bias_stride, pn);
    *slot = (cached_panel){.b = b, .bias = bias, .n = n, .k = k, .ldb = ldb,
                           .bias_stride = bias_stride, .b_trans = b_trans, .epoch = epoch,
                           .frees = frees, .p = p, .bytes = bytes, .pn = *pn};
    cache_bytes += bytes;
    return true;
}

/* add_bias_rows's loop: rows of C */
typedef struct bias_rows_loop {
    int64_t n;
    const float *bias;
    int64_t bs;
    bool assign;
    float *c;
    int64_t ldc;
} bias_rows_loop;

static void bias_rows(void *ctx, int64_t begin, int64_t end, int thread)
{
    const bias_rows_loop *l = ctx;
    const int64_t n = l->n;
    const float *bias = l->bias;
    const int64_t bs = l->bs;
    const bool assign = l->assign;
    float *c = l->c;
    const int64_t ldc = l->ldc;
    for (int64_t r = begin; r < end; r++) {
        float *cr = c + r * ldc;
        if (assign) for (int64_t j = 0; j < n; j++) cr[j] = bias[j * bs];
        else for (int64_t j = 0; j < n; j++) cr[j] += bias[j * bs];
    }
}

/* the fallback's bias: C rows = bias before a beta = 1 product, or added after one */
static void add_bias_rows(int64_t m, int64_t n, const float *bias, int64_t bs, bool assign,
                          float *c, int64_t ldc)
{
    bias_rows_loop l = {n, bias, bs, assign, c, ldc};
    nad_parallel_for(m, m * n > NAD_PAR_FLOATS, bias_rows, &l);
}

static void gemm(bool b_trans, bool weights, int64_t m, int64_t n, int64_t k, const float *a,
                 int64_t lda, const float *b, int64_t ldb, const float *bias,
                 int64_t bias_stride, bool accumulate, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { /* no inner dim: C = bias (+ C) or 0 (+ C) */
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < n; j++)
                c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.0f) + (bias ? bias[j * bias_stride] : 0.0f);
        return;
    }
    /* the kernel: at least one full tile of rows, and a panel that stays in L2 (up to 4 MiB
       when there are enough rows to repay packing it); measured against OpenBLAS 0.3.21 at 1
       and 2 threads (bench/bench_gemm_layers.c) */
    nad_panel pn;
    int64_t max_floats = m >= MANY_ROWS ? PANEL_MAX : PANEL_SMALL;
    if (m >= 12 && (weights ? nad_panel_pack_weights(&pn, b_trans, n, k, b, ldb, bias,
                                                     bias_stride, max_floats)
                            : nad_panel_pack(&pn, b_trans, n, k, b, ldb, bias, bias_stride,
                                             max_floats))) {
        run(&pn, m, a, lda, accumulate, c, ldc);
        return;
    }
    /* accumulating: C += (A op(B) + bias) formed apart first, so that the sum rounds as the
       product and an add after it would (the kernel's order; a fused residual add keeps the
       bits of the unfused one) */
    float *t = accumulate ? malloc((size_t)(m * n) * sizeof(float)) : NULL;
    float *dst = t ? t : c;
    const int64_t ldd = t ? n : ldc;
    if (bias && !(accumulate && !t)) add_bias_rows(m, n, bias, bias_stride, true, dst, ldd);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, b_trans ? CblasTrans : CblasNoTrans, (int)m, (int)n,
                (int)k, 1.0f, a, (int)lda, b, (int)ldb, bias || (accumulate && !t) ? 1.0f : 0.0f,
                dst, (int)ldd);
    if (bias && accumulate && !t) add_bias_rows(m, n, bias, bias_stride, false, c, ldc);
    if (t) {
        for (int64_t r = 0; r < m; r++)
            for (int64_t j = 0; j < n; j++) c[r * ldc + j] += t[r * n + j];
        free(t);
    }
}

void nad_gemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, const float *bias, int64_t bias_stride, bool accumulate, float *c,
                 int64_t ldc)
{
    gemm(true, false, m, n, k, a, lda, b, ldb, bias, bias_stride, accumulate, c, ldc);
}

void nad_gemm_nt_weights(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                         const float *b, int64_t ldb, const float *bias, int64_t bias_stride,
                         bool accumulate, float *c, int64_t ldc)
{
    gemm(true, true, m, n, k, a, lda, b, ldb, bias, bias_stride, accumulate, c, ldc);
}

void nad_gemm_nn(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, const float *bias, int64_t bias_stride, bool accumulate, float *c,
                 int64_t ldc)
{
    gemm(false, false, m, n, k, a, lda, b, ldb, bias, bias_stride, accumulate, c, ldc);
}

/* ---- weight gradients: C[m,n] += A^T B, A [k,m], B [k,n] (dw += dy^T x) ----
   Long inner dim (k = pixels x batch), small C. B is read in place (no packing), in chunks of
   KC rows that stay in cache while every row tile of C passes over them; C accumulates in
   memory between chunks. Threads take groups of columns (each with all rows) or of rows (each
   with all columns), chosen in tn_run: every C element is one thread's sum over k in order,
   whatever the thread count. */
enum { KC = 128, TN_ROWS = 24, TN_STREAM_FLOATS = 1 << 18, TN_L3_FLOATS = 1 << 23,
       TN_B_MAX = 1 << 22, TN_SUMS_MAX = 4096 };

TARGET static void tn_task(int64_t r0, int64_t r1, int64_t c0, int64_t c1, int64_t k,
                           const float *a, int64_t lda, const float *b, int64_t ldb, float *c,
                           int64_t ldc, double *sums)
{
    static const int64_t zero = 0;
    for (int64_t k0 = 0; k0 < k; k0 += KC) {
        int64_t kc = k - k0 < KC ? k - k0 : KC;
        for (int64_t j0 = c0; j0 < c1; j0 += 64) {
            int64_t w = c1 - j0 < 64 ? c1 - j0 : 64;
            int nv = (int)((w + 15) / 16), rem = (int)(w - 16 * (nv - 1));
            __mmask16 last = (__mmask16)(rem == 16 ? 0xffff : (1u << rem) - 1);
            int mr = tile_rows[nv];
            for (int64_t r = r0; r < r1; r += mr) {
                int h = r1 - r < mr ? (int)(r1 - r) : mr;
                tiles_t[nv][h](1, kc, &zero, a + k0 * lda + r, lda, b + k0 * ldb + j0, ldb, NULL,
                               true, c + r * ldc + j0, ldc, last);
            }
        }
        /* the tiles have brought A's chunk into cache: its column sums from there (before
           them, this loop took the chunk's misses from memory and cost twice a separate pass) */
        if (sums)
            for (int64_t kk = k0; kk < k0 + kc; kk++)
                for (int64_t i = r0; i < r1; i++) sums[i - r0] += a[kk * lda + i];
    }
}

/* How tn_run shares out a product: `tasks` tasks of `cols` columns (all rows) or of `rows`
   rows (all columns). Each task passes over all of A ([k, m]) for its columns, or all of B
   ([k, n]) for its rows. Operands that fit in L2 are read again from there: tasks of 64
   columns when there are enough of them to share out, else groups of up to TN_ROWS rows.
   Operands larger than L2 stream from L3 or memory: at 1 thread one task then reads A and B
   once (64 column tasks of a 64x576x20000 product read A 9 times: 63 -> 83 GFLOP/s;
   256x256x16000 69 -> 94). At more threads, where the operand the fine split reads again is
   larger than L3, one task per thread (per_thread): a group of columns where A is the smaller
   operand, else of rows (256x256x51200, which went to OpenBLAS at 90 GFLOP/s and 136-175 at 2
   threads: 94 and 160-180, each timed alone, best of 5 calls). Below that the fine split
   measured faster at 2 threads (the fuse's 256x1024x8192 weight gradient 23-24 ms against 30
   with a group per thread). Whatever the split, each element of C is one task's sum over k
   in order: the same bits. */
typedef struct tn_split {
    int64_t threads, tasks, rows, cols;
    bool by_columns, per_thread;
} tn_split;

static tn_split tn_split_of(int64_t m, int64_t n, int64_t k)
{
    tn_split s = {.threads = m * n * k > NAD_PAR_FMAS ? nad_get_num_threads() : 1, .cols = 64};
    const int64_t threads = s.threads, ncb = (n + 63) / 64;
    int64_t nrg = (m + TN_ROWS - 1) / TN_ROWS;
    s.by_columns = ncb >= 2 * threads || nrg == 1;
    /* the operand the fine split reads again: A per column task, B per row group */
    const int64_t again = s.by_columns ? k * m : k * n;
    s.per_thread = k * (m + n) > TN_STREAM_FLOATS && (threads == 1 || again > TN_L3_FLOATS);
    if (s.per_thread) {
        s.by_columns = m < n;
        s.tasks = threads;
        s.cols = ((n + threads - 1) / threads + 15) / 16 * 16; /* whole vectors, near equal */
        s.rows = (m + threads - 1) / threads;
        return s;
    }
    /* by rows: a multiple of the thread count of groups of at most TN_ROWS rows, of equal
       size but the last (m = 32 at 2 threads: 16 + 16 rows, not 24 + 8) */
    if (!s.by_columns) nrg = (nrg + threads - 1) / threads * threads;
    s.rows = (m + nrg - 1) / nrg;
    s.tasks = s.by_columns ? ncb : nrg;
    return s;
}

/* A B of more than TN_B_MAX floats (16 MiB) streams from memory: OpenBLAS was as fast or
   faster there with the fine split (a 256x1024x8192 weight gradient at 2 threads: 23-24 ms,
   the kernel 30); with a task per thread the kernel is (256x256x51200: above) */
static bool tn_kernel_runs(int64_t m, int64_t n, int64_t k, const tn_split *s)
{
    return nad_panel_available() && m >= 6 && (k * n <= TN_B_MAX || s->per_thread);
}

/* tn_run's tasks: groups of `cols` columns (all rows) or of `rows` rows (all columns) */
typedef struct tn_loop {
    int64_t m, n, k;
    const float *a;
    int64_t lda;
    const float *b;
    int64_t ldb;
    float *c;
    int64_t ldc;
    float *db;
    int64_t dbs, rows, cols;
    bool by_columns;
} tn_loop;

static void tn_tasks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const tn_loop *l = ctx;
    const int64_t m = l->m, n = l->n;
    for (int64_t t = begin; t < end; t++) {
        double sums[TN_SUMS_MAX];
        int64_t r0 = 0, r1 = m, c0 = 0, c1 = n;
        if (l->by_columns) {
            c0 = t * l->cols < n ? t * l->cols : n;
            c1 = c0 + l->cols < n ? c0 + l->cols : n;
        } else {
            r0 = t * l->rows < m ? t * l->rows : m;
            r1 = r0 + l->rows < m ? r0 + l->rows : m;
        }
        /* the bias sums: each row of C's by one task (the first column group's) */
        bool summing = l->db && c0 == 0;
        if (summing) memset(sums, 0, (size_t)(r1 - r0) * sizeof(double));
        tn_task(r0, r1, c0, c1, l->k, l->a, l->lda, l->b, l->ldb, l->c, l->ldc,
                summing ? sums : NULL);
        if (summing)
            for (int64_t i = r0; i < r1; i++) l->db[i * l->dbs] += (float)sums[i - r0];
    }
}

static void tn_run(int64_t m, int64_t n, int64_t k, const tn_split *s, const float *a,
                   int64_t lda, const float *b, int64_t ldb, float *c, int64_t ldc, float *db,
                   int64_t dbs)
{
    tn_loop l = {m, n, k, a, lda, b, ldb, c, ldc, db, dbs, s->rows, s->cols, s->by_columns};
    nad_parallel_for(s->tasks, s->threads > 1, tn_tasks, &l);
}

void nad_gemm_tn_acc(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0 || k <= 0) return;
    const tn_split s = tn_split_of(m, n, k);
    if (!tn_kernel_runs(m, n, k, &s)) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)m, (int)n, (int)k, 1.0f, a,
                    (int)lda, b, (int)ldb, 1.0f, c, (int)ldc);
        return;
    }
    tn_run(m, n, k, &s, a, lda, b, ldb, c, ldc, NULL, 0);
}

bool nad_gemm_tn_acc_bias(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float *c, int64_t ldc, float *db,
                          int64_t dbs)
{
    if (m <= 0 || n <= 0 || k <= 0 || m > TN_SUMS_MAX) return false;
    const tn_split s = tn_split_of(m, n, k);
    if (!tn_kernel_runs(m, n, k, &s)) return false;
    tn_run(m, n, k, &s, a, lda, b, ldb, c, ldc, db, dbs);
    return true;
}
