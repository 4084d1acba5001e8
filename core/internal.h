/* internal.h: struct bodies and helpers shared by the files of core/. Never included by users
   and never read by the FFI. */
#ifndef AUTONAD_INTERNAL_H
#define AUTONAD_INTERNAL_H
#include "autonad.h"
#include <stdatomic.h>
#include <stdbool.h>

typedef struct nad_storage {
    float *data;
    int64_t capacity; /* in floats */
    atomic_int refcount;
} nad_storage;

struct nad_tensor {
    nad_storage *storage;
    int64_t offset; /* in floats */
    int32_t ndim;
    int64_t size[NAD_MAX_DIMS];
    int64_t stride[NAD_MAX_DIMS];
};

struct nad_workspace {
    void *data;
    size_t capacity;
};

/* Records a message for nad_last_error() and returns code (printf-style). */
int nad_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Aligned allocation of bytes (64-byte aligned, zero-filled); NULL on failure. */
void *nad_alloc_zeroed(size_t bytes);
void nad_free_aligned(void *p);

/* y[i] = GELU(x[i]) for n contiguous floats, in the calling thread (y may be x): for operators
   that apply GELU to their output while it is in cache (activation.c). */
void nad_gelu_span(const float *x, float *y, int64_t n);
/* y rows = LayerNorm of x's `rows` rows of c floats (gamma g, beta b with their strides),
   mean and rstd of each row written (rows floats each), in the calling thread: for operators
   that normalise their input a few rows at a time (layernorm.c; nad_layernorm_forward's bits,
   row by row) */
void nad_layernorm_rows(const float *x, float *y, int64_t rows, int64_t c, const float *g,
                        int64_t gs, const float *b, int64_t bs, float eps, float *mean,
                        float *rstd);
/* dx[i] = dy[i] GELU'(x[i]) likewise (dx may be dy): nad_gelu_backward's bits */
void nad_gelu_grad_span(const float *x, const float *dy, float *dx, int64_t n);

/* Row-major products with the bias in the same pass (gemm.c): C[m,n] = A[m,k] op(B) + bias
   (+ C when accumulate), op(B) = B^T for B [n,k] (nt) or B for B [k,n] (nn); the last dims
   have unit stride, bias (n floats, bias_stride apart) may be NULL. Never fails: shapes or
   CPUs the AVX-512 small-N kernel does not cover, or a failed panel allocation, go to
   cblas_sgemm. */
void nad_gemm_nt(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, const float *bias, int64_t bias_stride, bool accumulate, float *c,
                 int64_t ldc);
void nad_gemm_nn(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b,
                 int64_t ldb, const float *bias, int64_t bias_stride, bool accumulate, float *c,
                 int64_t ldc);

/* nad_gemm_nt where B and the bias are a layer's weights in parameter memory: while the
   weights are frozen its packed panel is cached (nad_panel_pack_weights). */
void nad_gemm_nt_weights(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                         const float *b, int64_t ldb, const float *bias, int64_t bias_stride,
                         bool accumulate, float *c, int64_t ldc);

/* C[m,n] += A^T B for A [k,m] (lda), B [k,n] (ldb): weight gradients (dw += dy^T x). The
   AVX-512 kernel where it runs, else cblas_sgemm; never fails. */
void nad_gemm_tn_acc(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float *c, int64_t ldc);
/* The same, and db[i dbs] += sum over k of A[k, i] (the bias gradient of dw += dy^T x, summed
   in double in k order) while the kernel has A's rows in cache. Returns false, doing nothing,
   where the kernel does not run (the caller then sums apart). */
bool nad_gemm_tn_acc_bias(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                          const float *b, int64_t ldb, float *c, int64_t ldc, float *db,
                          int64_t dbs);

/* The AVX-512 kernel's packed B operand (gemm.c): p[kk][j] = B(kk, j), k rows, n columns
   zero-padded to ldp (a multiple of 16), then the padded bias (or bias = NULL). It lives in
   the packing thread's buffer until that thread packs again. */
typedef struct nad_panel {
    const float *p, *bias;
    int64_t k, n, ldp;
} nad_panel;
/* Whether the kernel runs here: AVX-512, and AUTONAD_GEMM is not "blas" */
bool nad_panel_available(void);
/* p[kk][j] = b[j][kk] (j < n, kk < k) with p's rows n rounded up to 16 floats (zeros past n),
   p 64-byte aligned: 16x16 blocks transposed in registers. Only where nad_panel_available(). */
void nad_transpose_small(int64_t n, int64_t k, const float *b, int64_t ldb, float *p);
/* Packs B ([n,k] with b_trans, else [k,n]) and the bias; false, packing nothing, where the
   kernel does not apply: no AVX-512, AUTONAD_GEMM=blas, more than max_floats, no memory. */
bool nad_panel_pack(nad_panel *pn, bool b_trans, int64_t n, int64_t k, const float *b,
                    int64_t ldb, const float *bias, int64_t bias_stride, int64_t max_floats);
/* nad_panel_pack for B and bias in parameter memory (a layer's weights, never a workspace
   copy): while the weights are frozen the packed panel (up to 16 MiB, whatever max_floats)
   is kept between calls, while the cache has room, and returned again for the same addresses
   and shapes. Otherwise the same as nad_panel_pack. */
bool nad_panel_pack_weights(nad_panel *pn, bool b_trans, int64_t n, int64_t k, const float *b,
                            int64_t ldb, const float *bias, int64_t bias_stride,
                            int64_t max_floats);
/* How many tensor storage blocks have been freed so far (tensor.c). */
uint64_t nad_storage_frees(void);
/* C[rows, n] = A op(B) + bias (+ C when accumulate), in the calling thread, where row i of A is
   nseg segments of k / nseg floats, segment s at a + i * lda + off[s]: one segment (off = {0})
   for a plain matrix, one per tap for a convolution read straight from its (padded) input. */
void nad_panel_rows(const nad_panel *pn, int64_t rows, const float *a, int64_t lda, int nseg,
                    const int64_t *off, bool accumulate, float *c, int64_t ldc);

/* When a loop is worth running on more than one thread. The core's workers sleep between loops
   (parallel.c), and one joins a loop some 20-70 us after it starts on the 2-core VMs we measure
   on, so a loop with less than about 100 us of single-thread work gains little or nothing from
   it (at batch 1 most of a forward's ~150 loops are that small). Thresholds count
   NAD_PAR_FLOATS floats of a memory-bound pass (read + written, about 1 MiB), NAD_PAR_FMAS
   multiply-adds of arithmetic-bound work, or NAD_PAR_TRANSCENDENTAL elements of erf / exp work. */
enum { NAD_PAR_FLOATS = 1 << 18, NAD_PAR_FMAS = 1 << 22, NAD_PAR_TRANSCENDENTAL = 1 << 16 };

/* A parallel loop over [0, n) (parallel.c): fn(ctx, begin, end, thread) on disjoint ranges that
   cover it, in the calling thread (thread 0) and the core's worker threads (1 to
   nad_get_num_threads() - 1, for per-thread scratch), which claim ranges as they wake; the
   calling thread never waits for a worker to wake. All in the calling thread when !parallel
   (the work is below the NAD_PAR_* thresholds below), at 1 thread, or when called from inside
   another loop. Ranges go to threads in no fixed order: what fn computes for an index must
   not depend on the range or the thread that runs it. */
typedef void (*nad_range_fn)(void *ctx, int64_t begin, int64_t end, int thread);
void nad_parallel_for(int64_t n, bool parallel, nad_range_fn fn, void *ctx);

/* Scratch of at least bytes from ws, 64-byte aligned; NULL (with an error set) on failure.
   Only one request is live at a time: take one block and carve it. */
void *nad_workspace_get(nad_workspace *ws, size_t bytes);

/* Shape helpers. */
static inline float *nad_data(const nad_tensor *t) { return t->storage->data + t->offset; }
static inline int64_t nad_numel(const nad_tensor *t)
{
    int64_t n = 1;
    for (int32_t i = 0; i < t->ndim; i++) n *= t->size[i];
    return n;
}
bool nad_is_contiguous(const nad_tensor *t);
bool nad_same_shape(const nad_tensor *a, const nad_tensor *b);
/* "[2,3,4]" into buf, for messages. */
const char *nad_shape_str(const nad_tensor *t, char *buf, size_t n);

/* Resize y to the shape of like (see nad_tensor_resize). */
int nad_resize_as(nad_tensor *y, const nad_tensor *like);

/* Common argument checks: each returns 0 or sets the error "<fn>: <name> ..." and returns
   NAD_EINVAL. */
int nad_check_tensor(const char *fn, const char *name, const nad_tensor *t);
int nad_check_contig(const char *fn, const char *name, const nad_tensor *t);
int nad_check_ndim(const char *fn, const char *name, const nad_tensor *t, int32_t ndim);
int nad_check_same_shape(const char *fn, const char *an, const nad_tensor *a, const char *bn,
                         const nad_tensor *b);

/* Row iteration over a view of any strides: the view is taken as `rows` rows of `len`
   elements (its last dim, element stride `inner`); nad_rowiter_offset gives the offset of
   row r from the view's first element, so rows can be split between threads.
   nad_rowiter_init_strides walks a view of shape's sizes but with other strides (a stride
   of 0 broadcasts), to walk two views of one shape in step. */
typedef struct nad_rowiter {
    int32_t ndim; /* outer dims (all but the last) */
    int64_t size[NAD_MAX_DIMS];
    int64_t stride[NAD_MAX_DIMS];
    int64_t rows;
    int64_t len;
    int64_t inner;
} nad_rowiter;
void nad_rowiter_init(nad_rowiter *it, const nad_tensor *t);
void nad_rowiter_init_strides(nad_rowiter *it, const nad_tensor *shape, const int64_t *stride);
int64_t nad_rowiter_offset(const nad_rowiter *it, int64_t row);

/* Raw channels-last resampling (core/data/augment.c), shared by augmentation and the loader:
   dst[oh,ow,ch] = bilinear(src[h,w,ch]) with PyTorch's align_corners=False rule, and
   dst[oh,ow] = nearest(src[h,w]) at the same pixel centres (for masks). */
void nad_resample_bilinear(const float *src, int64_t h, int64_t w, int64_t ch, float *dst,
                           int64_t oh, int64_t ow);
void nad_resample_nearest(const float *src, int64_t h, int64_t w, float *dst, int64_t oh,
                          int64_t ow);

#endif
