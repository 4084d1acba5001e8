/* autonad.h: the one public header of the autonad C core.
   It is also the FFI contract: lua/autonad/ffi.lua drops the lines starting with '#' and hands
   the rest to ffi.cdef, so everything here is plain C that LuaJIT's parser accepts:
   no macros, no bit-fields, no varargs, no callbacks, structs passed by pointer. */
#ifndef AUTONAD_H
#define AUTONAD_H
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------
   Conventions (read once, they hold for every function below)
   - Status: 0 on success, a negative NAD_E* code on failure; pointer-returning functions
     return NULL on failure. The failure's message is in nad_last_error() (thread-local),
     e.g. "conv2d_forward: x has 3 channels, w expects 1". The core never aborts or prints.
   - Tensors are float32, 0 to 5 dimensions, views (sizes, strides in elements, offset) on a
     reference-counted storage. A slice of a larger weight is a view, never a copy.
   - Layout: images and feature maps are channels-last, x[N,H,W,C]; token sequences are
     [N,L,C] (the same memory as [N,H,W,C] with L = H*W). Convolution weights are
     w[Co,K,K,Ci/groups]; linear weights are w[out,in] (y = x w^T + b).
   - Outputs ("y", "dx") are resized to the result's shape when their shape differs (they
     must then own their storage, see nad_tensor_resize) and are overwritten. Parameter
     gradients ("dw", "db", "dgamma", ...) are ACCUMULATED (+=) and are never resized.
     A NULL gradient output is not computed. On failure no output has been touched.
   - Arguments go: workspace, parameters, const inputs, outputs.
   - Inputs must be contiguous unless a function says otherwise; weights may be any view.
   ------------------------------------------------------------------------------------------ */

enum {
    NAD_OK = 0,
    NAD_EINVAL = -1,  /* bad argument: shape, stride, value */
    NAD_ENOMEM = -2,  /* allocation failed */
    NAD_EIO = -3,     /* a file could not be read or written */
    NAD_EFORMAT = -4, /* a file's content is corrupt or unsupported */
    NAD_ESTATE = -5   /* a call made in the wrong state (e.g. resizing a shared view) */
};
enum { NAD_MAX_DIMS = 5 };

/* ---- errors, version, threads (core/error.c, core/threads.c) ---- */

/* The message of the last failure on this thread ("" if none). Valid until the next call. */
const char *nad_last_error(void);
void nad_clear_error(void);
const char *nad_version(void);
/* Inference with fixed weights (gemm.c). While frozen, linear and convolution forwards keep
   their weights packed for the GEMM kernel between calls (up to 64 MiB per calling thread),
   found again by the weight's and bias's addresses and shapes: a batch-1 forward no longer
   re-packs every layer. Freeze only while no weight changes: optimiser steps refuse to run
   while frozen, and freeing any tensor storage drops the packed panels. Writing
   into weights by other means (through nad_tensor_data) needs a freeze call after it, which
   drops them too. Process-wide; changing the state drops the panels. */
void nad_set_weights_frozen(int32_t frozen);
int32_t nad_weights_frozen(void);
/* Sets the threads used by OpenBLAS and by the core's own parallel loops (n >= 1). */
int nad_set_num_threads(int32_t n);
int32_t nad_get_num_threads(void);
/* OpenBLAS's configuration and the kernel it chose, e.g. "OpenBLAS 0.3.21 ... | Haswell". */
const char *nad_blas_info(void);

/* ---- tensors (core/tensor.c) ---- */

typedef struct nad_tensor nad_tensor;

/* A new contiguous tensor of the given sizes (ndim 0..5), zero-filled; NULL on failure. */
nad_tensor *nad_tensor_new(int32_t ndim, const int64_t *sizes);
/* Releases this handle; the storage goes with its last view. nad_tensor_free(NULL) is a no-op. */
void nad_tensor_free(nad_tensor *t);
/* A new handle on the same view (shares storage). */
nad_tensor *nad_tensor_view(const nad_tensor *t);
/* A view of t restricted to [start, start+length) along dim (W[:out] is narrow(W, 0, 0, out)). */
nad_tensor *nad_tensor_narrow(const nad_tensor *t, int32_t dim, int64_t start, int64_t length);
/* A view with the dimensions permuted: result dim i is t's dim perm[i]. */
nad_tensor *nad_tensor_permute(const nad_tensor *t, const int32_t *perm);
/* A view with a new dimension of size 1 inserted before dim (0..ndim). */
nad_tensor *nad_tensor_unsqueeze(const nad_tensor *t, int32_t dim);
/* The diagonal t[..i..i..] over dims d1 != d2 (equal sizes not required: the diagonal has
   min of the two sizes): those two dims are removed and the diagonal becomes the last dim
   (torch.diagonal's layout). A depthwise kernel is the diagonal of a full one. */
nad_tensor *nad_tensor_diagonal(const nad_tensor *t, int32_t d1, int32_t d2);
/* A view of a contiguous t with other sizes and the same number of elements. */
nad_tensor *nad_tensor_reshape(const nad_tensor *t, int32_t ndim, const int64_t *sizes);
/* Gives t the sizes given, contiguous. A no-op when t already has them; otherwise t must be
   contiguous at offset 0 of its storage (else NAD_ESTATE). The storage grows only when too
   small; it grows in place (new memory, zeroed), so other views of it stay valid but see the
   new contents, as in Torch. Buffers are thus reused. */
int nad_tensor_resize(nad_tensor *t, int32_t ndim, const int64_t *sizes);

int32_t nad_tensor_ndim(const nad_tensor *t);
int64_t nad_tensor_size(const nad_tensor *t, int32_t dim);   /* -1 if dim is out of range */
int64_t nad_tensor_stride(const nad_tensor *t, int32_t dim); /* in elements */
int64_t nad_tensor_numel(const nad_tensor *t);
int32_t nad_tensor_is_contiguous(const nad_tensor *t);
/* 1 when a and b are views of one storage. */
int32_t nad_tensor_same_storage(const nad_tensor *a, const nad_tensor *b);
/* Address of the view's first element (storage data + offset). */
float *nad_tensor_data(const nad_tensor *t);

/* dst = src elementwise; any strides; shapes must match (dst is not resized). */
int nad_tensor_copy(nad_tensor *dst, const nad_tensor *src);
/* Every element of the view set to v; any strides. */
int nad_tensor_fill(nad_tensor *t, float v);
/* Sum of all elements in double precision; any strides. */
double nad_tensor_sum(const nad_tensor *t);

/* ---- random numbers (core/rng.c) ----
   A counter-based generator: element i of a fill is a hash of (seed, counter + i), so a fill
   gives the same bits whatever the thread count, and the state is two plain integers that a
   checkpoint can save. Each call advances counter by the number of values it drew. */

typedef struct nad_rng {
    uint64_t seed;
    uint64_t counter;
} nad_rng;

void nad_rng_init(nad_rng *rng, uint64_t seed);
uint64_t nad_rng_next_u64(nad_rng *rng);
double nad_rng_next_double(nad_rng *rng); /* in [0, 1) */
/* Uniform in [lo, hi) / normal(mean, std) into every element of t (any strides). */
int nad_rng_uniform(nad_rng *rng, float lo, float hi, nad_tensor *t);
int nad_rng_normal(nad_rng *rng, float mean, float std, nad_tensor *t);

/* ---- workspace (core/workspace.c) ----
   Scratch memory for operators (im2col columns, packed weights). It grows to the largest
   request and is then reused, so hot loops do not allocate. One workspace serves one thread
   at a time; its contents are undefined between calls. */

typedef struct nad_workspace nad_workspace;
nad_workspace *nad_workspace_new(size_t initial_bytes);
void nad_workspace_free(nad_workspace *ws);
size_t nad_workspace_capacity(const nad_workspace *ws);

/* ---- linear (core/ops/linear.c) ----
   y[..., out] = x[..., in] w[out, in]^T + b[out]; b may be NULL.
   x's leading dims must collapse into one row dimension; its rows may be strided (x may be a
   column slice of a wider tensor) but its last dim has unit stride. w may be a leading slice
   W[:out, :in] of a larger weight (unit stride along in); b a leading slice. */
int nad_linear_forward(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                       nad_tensor *y);
/* y += x w^T + b: a residual add in the product's own pass (y keeps its shape, which must be
   the output's; contiguous; not sharing storage with x or w). The sum is y + (x w^T + b), the
   same bits as linear_forward then add. */
int nad_linear_forward_acc(const nad_tensor *x, const nad_tensor *w, const nad_tensor *b,
                           nad_tensor *y);
/* dx = dy w (overwritten, x's shape); dw += dy^T x; db += sum over rows of dy. */
int nad_linear_backward(const nad_tensor *x, const nad_tensor *w, const nad_tensor *dy,
                        nad_tensor *dx, nad_tensor *dw, nad_tensor *db);

/* ---- conv2d (core/ops/conv2d.c) ----
   y[N,Ho,Wo,Co] = conv(x[N,H,W,Ci], w[Co,K,K,Ci/groups]) + b[Co]; b may be NULL.
   Ho = (H + 2 pad - dilation (K-1) - 1) / stride + 1, likewise Wo. Zero padding.
   groups divides Ci and Co; groups == Ci == Co is depthwise. w may be any view (a slice of
   a larger weight, a centre crop of a larger kernel, a dilated view): it is packed into the
   workspace when not contiguous. */
typedef struct nad_conv2d_params {
    int32_t stride;
    int32_t pad;
    int32_t dilation;
    int32_t groups;
} nad_conv2d_params;
int nad_conv2d_forward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                       const nad_tensor *w, const nad_tensor *b, nad_tensor *y);
/* act = GELU(conv(x, w) + b), and y = the pre-activation (which GELU's backward reads) unless
   y is NULL (inference). Depthwise convolutions apply GELU to each output row while it is in
   cache (Mix-FFN's dw3x3 + GELU), saving a pass over the output; other convolutions run the
   two ops one after the other. */
int nad_conv2d_gelu_forward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                            const nad_tensor *w, const nad_tensor *b, nad_tensor *y,
                            nad_tensor *act);
/* y = conv(resize_bilinear(x to out_h x out_w, align_corners)) for inference, the resized map
   never stored (written straight into the kernel's own layout): the same bits as
   nad_resize_bilinear_forward then nad_conv2d_forward. Only for convolutions of 2 to
   NAD_CONV2D_SMALL_MAX_C input and output channels, stride 1, groups 1 (the segmentation
   head's K -> K conv; one channel is a depthwise conv); others are refused (EINVAL). */
enum { NAD_CONV2D_SMALL_MAX_C = 8 };
int nad_conv2d_resized_forward(nad_workspace *ws, const nad_conv2d_params *p,
                               int32_t align_corners, const nad_tensor *x, int32_t out_h,
                               int32_t out_w, const nad_tensor *w, const nad_tensor *b,
                               nad_tensor *y);
/* dx overwritten (x's shape); dw (any view, same shape as w) and db accumulated. */
int nad_conv2d_backward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                        const nad_tensor *w, const nad_tensor *dy, nad_tensor *dx,
                        nad_tensor *dw, nad_tensor *db);
/* The backward of act = GELU(conv(x, w) + b) (core/ops/conv2d_gelu_backward.c) for depthwise
   stride-1 convolutions that keep the map's size (Mix-FFN's dw3x3; others are refused,
   EINVAL): pre = conv(x, w) + b as nad_conv2d_gelu_forward stored it, dact the gradient at
   act. dx overwritten (may be dact itself: the pass consumes dact as it goes); dw, db
   accumulated (either may be NULL). The gradient at pre is made a few rows at a time and never
   stored. The bits of nad_gelu_backward then nad_conv2d_backward where a map row is a whole
   number of 16-float vectors (W x C); otherwise GELU's gradient may round a value in a
   vector's tail 1 ulp differently. */
int nad_conv2d_gelu_backward(nad_workspace *ws, const nad_conv2d_params *p, const nad_tensor *x,
                             const nad_tensor *w, const nad_tensor *pre, const nad_tensor *dact,
                             nad_tensor *dx, nad_tensor *dw, nad_tensor *db);

/* ---- Mix-FFN for inference (core/ops/mixffn.c) ----
   y = r + fc2(GELU(dw3x3(fc1(x)))) with x, r, y [N,H,W,C] (r may be NULL: no residual; y may
   be r), fc1 = (w1 [hd,C], b1), the depthwise 3x3 (pad 1) = (wd [hd,3,3,1], bd), fc2 =
   (w2 [C,hd], b2); weights and biases may be leading slices of larger ones (as for linear and
   conv2d), biases NULL. Computed in row bands so that the hidden maps never exist whole: the
   same result as linear, conv2d_gelu, linear and add up to rounding, with less memory traffic
   and no hidden-map memory. Fastest with frozen weights (nad_set_weights_frozen), whose packed
   panels it then reuses. For inference: nothing is kept for a backward. */
int nad_mixffn_forward(nad_workspace *ws, const nad_tensor *x, const nad_tensor *w1,
                       const nad_tensor *b1, const nad_tensor *wd, const nad_tensor *bd,
                       const nad_tensor *w2, const nad_tensor *b2, const nad_tensor *r,
                       nad_tensor *y);
/* The block's second half: y = x + MixFFN(LayerNorm(x)) (LayerNorm over C with gamma, beta
   [C] and eps, as nad_layernorm_forward; its mean and rstd are not kept). y may be x itself
   (in place). Each band's rows are normalised as fc1 reads them, so the normalised map is
   never stored: the bits of nad_layernorm_forward then nad_mixffn_forward with r = x. */
int nad_mixffn_ln_forward(nad_workspace *ws, float eps, const nad_tensor *gamma,
                          const nad_tensor *beta, const nad_tensor *x, const nad_tensor *w1,
                          const nad_tensor *b1, const nad_tensor *wd, const nad_tensor *bd,
                          const nad_tensor *w2, const nad_tensor *b2, nad_tensor *y);

/* ---- batched matrix product (core/ops/matmul.c) ----
   c = alpha * op(a) op(b) + beta * c, over matching leading (batch) dims, up to 3 of them.
   op(m) is m or its transpose (trans_* = 1). The last two dims of a, b and c are matrices
   that need unit stride in one of the two (a per-head view of [N,L,heads*d] qualifies:
   permute it to [N,heads,L,d]). c is not resized: it must have the result's shape, may be a
   strided view, and with beta == 0 its old contents are ignored. The backward of
   c = a b is da = dc b^T, db = a^T dc: two more calls of this function. */
int nad_matmul(int32_t trans_a, int32_t trans_b, float alpha, const nad_tensor *a,
               const nad_tensor *b, float beta, nad_tensor *c);

/* ---- softmax over the last dim (core/ops/softmax.c) ---- */
int nad_softmax_forward(const nad_tensor *x, nad_tensor *y);
/* dx = y * (dy - sum(dy * y)) along the last dim. */
int nad_softmax_backward(const nad_tensor *y, const nad_tensor *dy, nad_tensor *dx);

/* ---- layer norm over the last dim (core/ops/layernorm.c) ----
   y = (x - mean) * rstd * gamma + beta, rstd = 1/sqrt(var + eps) (biased var). gamma and beta
   [C] may be leading slices of longer vectors. mean and rstd (resized to x's row count) are
   saved for the backward. */
int nad_layernorm_forward(float eps, const nad_tensor *x, const nad_tensor *gamma,
                          const nad_tensor *beta, nad_tensor *y, nad_tensor *mean,
                          nad_tensor *rstd);
int nad_layernorm_backward(const nad_tensor *x, const nad_tensor *gamma, const nad_tensor *mean,
                           const nad_tensor *rstd, const nad_tensor *dy, nad_tensor *dx,
                           nad_tensor *dgamma, nad_tensor *dbeta);
/* The same with a residual branch's add in its pass: dx = r + (the gradient at x), the bits of
   nad_layernorm_backward then nad_add(1, r, 1, ., dx). r [same shape as x] may be dx itself. */
int nad_layernorm_backward_add(const nad_tensor *x, const nad_tensor *gamma,
                               const nad_tensor *mean, const nad_tensor *rstd,
                               const nad_tensor *dy, const nad_tensor *r, nad_tensor *dx,
                               nad_tensor *dgamma, nad_tensor *dbeta);

/* ---- group norm, channels-last (core/ops/groupnorm.c) ----
   x[N,H,W,C], C divisible by groups; statistics per (sample, group) over H*W*C/groups values.
   mean and rstd are resized to [N, groups]. */
int nad_groupnorm_forward(int32_t groups, float eps, const nad_tensor *x, const nad_tensor *gamma,
                          const nad_tensor *beta, nad_tensor *y, nad_tensor *mean,
                          nad_tensor *rstd);
/* y = ReLU(groupnorm(x)) in one pass over the output (the decoder's GroupNorm + ReLU) */
int nad_groupnorm_relu_forward(int32_t groups, float eps, const nad_tensor *x,
                               const nad_tensor *gamma, const nad_tensor *beta, nad_tensor *y,
                               nad_tensor *mean, nad_tensor *rstd);
int nad_groupnorm_backward(int32_t groups, const nad_tensor *x, const nad_tensor *gamma,
                           const nad_tensor *mean, const nad_tensor *rstd, const nad_tensor *dy,
                           nad_tensor *dx, nad_tensor *dgamma, nad_tensor *dbeta);
/* the backward of groupnorm_relu_forward (its x, gamma, beta, mean, rstd): relu_backward then
   groupnorm_backward in two passes over x and dy, the ReLU's mask recomputed from x (the
   same bits as the two calls; dx may be dy) */
int nad_groupnorm_relu_backward(int32_t groups, const nad_tensor *x, const nad_tensor *gamma,
                                const nad_tensor *beta, const nad_tensor *mean,
                                const nad_tensor *rstd, const nad_tensor *dy, nad_tensor *dx,
                                nad_tensor *dgamma, nad_tensor *dbeta);

/* ---- activations (core/ops/activation.c); y may be x (in place) ---- */
/* y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */
int nad_gelu_forward(const nad_tensor *x, nad_tensor *y);
/* dx = dy * (Phi(x) + x phi(x)) */
int nad_gelu_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx);
int nad_relu_forward(const nad_tensor *x, nad_tensor *y);
/* dx = dy * (x > 0) */
int nad_relu_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx);

/* ---- elementwise arithmetic (core/ops/elementwise.c) ----
   b broadcasts: it has a's number of dims and each of its sizes equals a's or is 1.
   y may be a or b (in place) when it has a's shape. */
/* y = alpha a + beta b */
int nad_add(float alpha, const nad_tensor *a, float beta, const nad_tensor *b, nad_tensor *y);
/* y = a * b */
int nad_mul(const nad_tensor *a, const nad_tensor *b, nad_tensor *y);
/* da = dy * b (overwritten, a's shape); db += dy * a summed over b's broadcast dims. */
int nad_mul_backward(const nad_tensor *a, const nad_tensor *b, const nad_tensor *dy,
                     nad_tensor *da, nad_tensor *db);
/* y = s x */
int nad_scale(float s, const nad_tensor *x, nad_tensor *y);

/* ---- concat and split (core/ops/concat.c) ----
   y = concat(xs[0..n-1]) along dim; split is its backward: xs[i] (resized to their parts'
   sizes given by sizes[i]) = the i-th part of y along dim. */
int nad_concat(int32_t n, const nad_tensor *const *xs, int32_t dim, nad_tensor *y);
int nad_split(const nad_tensor *y, int32_t dim, int32_t n, const int64_t *sizes,
              nad_tensor *const *xs);

/* ---- pooling, channels-last (core/ops/pool.c) ----
   Average pooling with a k x k window (zero padding counted in the divisor, as PyTorch's
   count_include_pad=True). Adaptive pooling to any output size uses PyTorch's bins:
   rows [floor(i H / Ho), ceil((i+1) H / Ho)). */
int nad_avgpool2d_forward(int32_t k, int32_t stride, int32_t pad, const nad_tensor *x,
                          nad_tensor *y);
int nad_avgpool2d_backward(int32_t k, int32_t stride, int32_t pad, const nad_tensor *x,
                           const nad_tensor *dy, nad_tensor *dx);
int nad_adaptive_avgpool2d_forward(int32_t out_h, int32_t out_w, const nad_tensor *x,
                                   nad_tensor *y);
int nad_adaptive_avgpool2d_backward(const nad_tensor *x, const nad_tensor *dy, nad_tensor *dx);

/* ---- bilinear resize, channels-last (core/ops/resize.c) ----
   PyTorch's interpolate(mode='bilinear') semantics for both align_corners settings. y (forward)
   and dy (backward) may also be a channel slice of a wider NHWC tensor (narrow on the last
   dim), so a concatenation's parts are written and read in place; y must then already have
   the output's shape. */
int nad_resize_bilinear_forward(int32_t out_h, int32_t out_w, int32_t align_corners,
                                const nad_tensor *x, nad_tensor *y);
int nad_resize_bilinear_backward(int32_t align_corners, const nad_tensor *x,
                                 const nad_tensor *dy, nad_tensor *dx);
/* y += resize(x) to y's map size (y [N,Ho,Wo,C] as it is, contiguous or a channel slice): a
   sum of resized maps without a temporary per part. Its backward is the forward's backward. */
int nad_resize_bilinear_accumulate(int32_t align_corners, const nad_tensor *x, nad_tensor *y);
/* y += resize(xs[0]) + ... + resize(xs[n-1]) (1 <= n <= 16), in that order, in one pass over
   y: the bits of n accumulates one after the other, for 1/n of their traffic on y. */
int nad_resize_bilinear_accumulate_many(int32_t n, int32_t align_corners,
                                        const nad_tensor *const *xs, nad_tensor *y);

/* ---- spatial shift, channels-last (core/ops/shift.c) ----
   The S2-MLP shift: channel quarter q of x[N,H,W,C] (C divisible by 4) moves one pixel in
   direction dirs[q]. DOWN means y[h] = x[h-1], UP y[h] = x[h+1], RIGHT y[w] = x[w-1], LEFT
   y[w] = x[w+1]. Border rule (as S2-MLPv2's slice assignment): the vacated first row / column
   keeps its own input value, y[0] = x[0] for DOWN. S2-MLPv2's spatial_shift1 (on its
   (b,w,h,c) tensor, whose dim 1 is our H) is dirs {DOWN, UP, RIGHT, LEFT}; spatial_shift2 is
   {RIGHT, LEFT, DOWN, UP}. Both read the input as it was before the shift (numpy's slice
   assignment semantics). y (dx) must not be x (dy). */
enum { NAD_SHIFT_DOWN = 0, NAD_SHIFT_UP = 1, NAD_SHIFT_RIGHT = 2, NAD_SHIFT_LEFT = 3 };
int nad_shift_forward(const int32_t *dirs, const nad_tensor *x, nad_tensor *y);
int nad_shift_backward(const int32_t *dirs, const nad_tensor *dy, nad_tensor *dx);

/* ---- S2-MLPv2 split attention for inference (core/ops/split_attention.c) ----
   The MLP mixer's branches x1 = shift(q, dirs1), x2 = shift(k, dirs2) and v, with q
   [N,H,W,C] and kv = [k, v] [N,H,W,2C], read in place (no split, no shifted copies).
   pool: a [N,1,1,C] = the mean over pixels of x1 + x2 + v (the split attention's GAP);
   mix: y [N,H,W,C] = x1 wts[n,c,0] + x2 wts[n,c,1] + v wts[n,c,2] with wts [N,C,3] (the
   branch weights after their softmax). The same bits as shift, add, adaptive_avgpool2d and
   mul, in that order; nothing is kept for a backward. */
int nad_split_attention_pool(const int32_t *dirs1, const int32_t *dirs2, const nad_tensor *q,
                             const nad_tensor *kv, nad_tensor *a);
int nad_split_attention_mix(const int32_t *dirs1, const int32_t *dirs2, const nad_tensor *q,
                            const nad_tensor *kv, const nad_tensor *wts, nad_tensor *y);

/* ---- cross entropy (core/ops/cross_entropy.c) ----
   logits[..., K]: every row is one pixel or one image. labels holds one class index per row
   (any shape with that many elements, float values that are integers: masks are float
   tensors too), each in [0, K) or equal to ignore_label (skipped; 255 for VOC-style masks).
   loss = mean over counted rows of -log softmax(row)[label]; 0 with no counted row. A label
   outside [0, K) that is not ignore_label fails with NAD_EINVAL naming the row. */
int nad_cross_entropy_forward(int32_t ignore_label, const nad_tensor *logits,
                              const nad_tensor *labels, float *loss);
/* dlogits = scale * (softmax(logits) - onehot(label)) / counted rows; 0 on ignored rows. */
int nad_cross_entropy_backward(int32_t ignore_label, float scale, const nad_tensor *logits,
                               const nad_tensor *labels, nad_tensor *dlogits);
/* Both in one pass (the same bits as the two calls); dlogits may be logits. */
int nad_cross_entropy_loss_grad(int32_t ignore_label, float scale, const nad_tensor *logits,
                                const nad_tensor *labels, float *loss, nad_tensor *dlogits);

/* ---- drop-path (core/ops/droppath.c) ----
   Per sample n of x[N, ...]: keep with probability 1-p; y[n] = x[n] * mask[n], where
   mask[n] = 1/(1-p) if kept else 0 (mask resized to [N], saved for the backward). p = 0
   copies x. The draws come from rng, so a seed fixes them. */
int nad_droppath_forward(nad_rng *rng, float p, const nad_tensor *x, nad_tensor *y,
                         nad_tensor *mask);
/* dx = dy * mask[n] */
int nad_droppath_backward(const nad_tensor *mask, const nad_tensor *dy, nad_tensor *dx);

/* ---- the conv mixer's fc over q, k, v maps (core/ops/acmix_fc.c) ----
   The ACmix decomposition, intended layout (the reference code's raw reshape scrambles pixels):
   q[N,H,W,C] and kv[N,H,W,2C] (contiguous) hold 3h maps of head_dim d channels (C = h d):
   map j < h is q's channels [j d, (j+1) d), map j >= h is kv's channels [(j-h) d, ...).
   A 1x1 "fc" over the 3h maps gives one map per 3x3 kernel position k (9 of them):
       f[n,y,x, i*9 + k] = b[k] + sum_j w[k,j] src_j[n,y,x,i]      (0 <= i < d)
   so channel group i of f (9 channels) feeds group i of the grouped 3x3 conv that follows.
   w[9, 3h] may be a column slice of a wider weight; b[9] may be NULL. f is resized to
   [N,H,W,9d]. */
int nad_acmix_fc_forward(int32_t head_dim, const nad_tensor *q, const nad_tensor *kv,
                         const nad_tensor *w, const nad_tensor *b, nad_tensor *f);
/* dsrc_j[i] = sum_k w[k,j] df[i*9+k] into dq, dkv (overwritten, resized like q and kv);
   dw[k,j] += sum over pixels and i of df[i*9+k] src_j[i]; db[k] += sum of df[.., k]. */
int nad_acmix_fc_backward(int32_t head_dim, const nad_tensor *q, const nad_tensor *kv,
                          const nad_tensor *w, const nad_tensor *df, nad_tensor *dq,
                          nad_tensor *dkv, nad_tensor *dw, nad_tensor *db);

/* ---- confusion matrix (core/ops/confusion.c) ----
   Counts predictions against labels for the metrics (lua/autonad/metrics.lua). logits[..., K]
   (contiguous): every row is one pixel or one image, predicted as its argmax (the first of
   equal maxima; NaN never wins over a number, an all-NaN row predicts 0). labels holds one
   class index per row as for cross entropy (floats that are integers, in [0, K) or equal to
   ignore_label, which is skipped). matrix[K*K] (row-major: row = true class, column =
   predicted class) is ACCUMULATED (+=), so summing over batches is repeated calls. Counts are
   int64: a float32 count stops being exact at 2^24 per cell (64 images of 512 x 512). Rows
   are split between threads with per-thread partial counts in ws (threads * K * K int64).
   A label outside [0, K) that is not ignore_label fails with NAD_EINVAL naming the first
   such row; matrix is then untouched. */
int nad_confusion_update(nad_workspace *ws, int32_t ignore_label, const nad_tensor *logits,
                         const nad_tensor *labels, int64_t *matrix);

/* ---- optimisers (core/optim/) ----
   One step on one parameter view (any strides: a sliced supernet weight updates only its
   slice); grad and the state tensors are views of the same shape. */
typedef struct nad_sgd_params {
    float lr;
    float momentum;
    float dampening;
    float weight_decay; /* L2, added to the gradient */
    int32_t nesterov;
} nad_sgd_params;
/* buf = momentum buf + (1 - dampening) g (buf = g on step 1: pass first_step = 1). */
int nad_sgd_step(const nad_sgd_params *p, int32_t first_step, const nad_tensor *grad,
                 nad_tensor *param, nad_tensor *momentum_buf);

typedef struct nad_adam_params {
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
    int32_t decoupled; /* 1: AdamW (param *= 1 - lr wd); 0: Adam (g += wd param) */
    int64_t step;      /* 1 on the first step; used for bias correction */
} nad_adam_params;
int nad_adam_step(const nad_adam_params *p, const nad_tensor *grad, nad_tensor *param,
                  nad_tensor *exp_avg, nad_tensor *exp_avg_sq);

/* ---- images and masks (core/io/) ----
   Decoders for PNG (libpng: 8/16-bit grey, grey+alpha, palette, RGB, RGBA), JPEG (libjpeg-turbo)
   and BMP (our own: 8-bit palette, 24-bit, bottom-up and top-down). The format is taken from
   the file's content, not its name. A missing, truncated, corrupt or unsupported file fails
   with NAD_EIO or NAD_EFORMAT and a message naming the path and the reason; img is then
   untouched. */

/* img is resized to [H,W,channels] with values in [0,1] (sample / (2^bits - 1); palettes
   through their colours); channels 1 converts to grey (ITU-R 601 luma), 3 to RGB (grey
   replicated); alpha and gamma are ignored. Images larger than 16384 per side are refused. */
int nad_image_load(const char *path, int32_t channels, nad_tensor *img);
/* Size of the image without decoding its pixels: height, width, channels in the file
   (1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha; a palette counts 1 when all its colours
   are grey, else 3). */
int nad_image_info(const char *path, int32_t *height, int32_t *width, int32_t *channels);
/* A label mask from a grey (or palette, by index) image into mask [H,W] of class indices
   stored as floats. threshold < 0: the pixel values are the class indices (VOC style,
   255 = ignore). threshold >= 0: binary mask, value where pixel >= threshold else 0
   (Magnetic-Tile's anti-aliased 0/255 masks: threshold 128, value = the class).
   Values are as stored: 16-bit files give 0..65535 as indices, and threshold compares the
   pixel scaled to 0..255. A colour file is read as grey: in index mode it must have
   r == g == b everywhere (else NAD_EFORMAT naming the pixel); threshold mode uses its luma. */
int nad_mask_load(const char *path, int32_t threshold, int32_t value, nad_tensor *mask);
/* Writes img [H,W,1|3] (values clamped to [0,1]) or a class mask [H,W] (values 0..255) as an
   8-bit PNG. */
int nad_png_save(const char *path, const nad_tensor *img);
/* nad_image_load and nad_mask_load on an encoded file in memory, data[0..size); name
   stands in for the path in messages (e.g. an archive member). For loaders and fuzzers. */
int nad_image_decode(const char *name, const uint8_t *data, size_t size, int32_t channels,
                     nad_tensor *img);
int nad_mask_decode(const char *name, const uint8_t *data, size_t size, int32_t threshold,
                    int32_t value, nad_tensor *mask);

/* ---- data: joint image/mask augmentation (core/data/augment.c) ----
   An image img[H,W,C] (contiguous, values in [0,1] before normalisation) and its mask[H,W]
   (contiguous, class indices stored as floats; NULL for classification: mask_out is then
   ignored) go through the same geometric transform: the image is interpolated bilinearly,
   the mask by nearest neighbour (its values stay integer class indices); pixels a transform
   brings in from outside the source get the fill value in the image and NAD_MASK_IGNORE in
   the mask. Outputs are resized and overwritten; for the geometric operations they must not
   share storage with the inputs. Random choices come from rng only, so a seed fixes them. */
enum { NAD_MASK_IGNORE = 255 };
enum { NAD_FLIP_HORIZONTAL = 0, NAD_FLIP_VERTICAL = 1 }; /* mirror columns / mirror rows */
enum { NAD_AUGMENT_MAX_CHANNELS = 4 };

int nad_augment_flip(int32_t axis, const nad_tensor *img, const nad_tensor *mask,
                     nad_tensor *img_out, nad_tensor *mask_out);
/* Rotation by k * 90 degrees counter-clockwise (k taken mod 4; negative k turns clockwise):
   out[W-1-j, i] = in[i, j] for k = 1; odd k gives [W,H,C] / [W,H]. */
int nad_augment_rot90(int32_t k, const nad_tensor *img, const nad_tensor *mask,
                      nad_tensor *img_out, nad_tensor *mask_out);
/* Resize to [out_h, out_w]: bilinear image (PyTorch's align_corners=False), nearest mask at
   the same pixel centres (source index floor((i + 0.5) H / out_h)). */
int nad_augment_resize(int32_t out_h, int32_t out_w, const nad_tensor *img,
                       const nad_tensor *mask, nad_tensor *img_out, nad_tensor *mask_out);
/* The window of rows [top, top + out_h) and columns [left, left + out_w): a crop, or a pad
   where the window leaves the image (top or left negative, or beyond the far edge); padded
   pixels get pad_value in the image and NAD_MASK_IGNORE in the mask. */
int nad_augment_crop(int32_t top, int32_t left, int32_t out_h, int32_t out_w, float pad_value,
                     const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                     nad_tensor *mask_out);
/* nad_augment_crop at a uniform random window position: along a dim larger than the window
   the window starts uniformly in [0, size - out]; along a smaller one the image is placed
   at a uniform offset inside the padded window. */
int nad_augment_random_crop(nad_rng *rng, int32_t out_h, int32_t out_w, float pad_value,
                            const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                            nad_tensor *mask_out);

/* Affine map about the image centre c (pixel-centre coordinates, x right, y down): a source
   point p lands at c + t + R(rotate) Sh(shear_x, shear_y) scale (p - c), where
   Sh = [[1, tan shear_x], [tan shear_y, 1]] and t = (translate_x W, translate_y H). The
   output keeps the input's size; each output pixel samples the source at the inverse map. */
typedef struct nad_affine_params {
    float scale;       /* 1: no zoom; > 1 enlarges */
    float translate_x; /* fraction of the width, positive moves right */
    float translate_y; /* fraction of the height, positive moves down */
    float shear_x_deg;
    float shear_y_deg;
    float rotate_deg; /* positive turns clockwise on screen (y points down) */
    float fill;       /* image value outside the source */
} nad_affine_params;
int nad_augment_affine(const nad_affine_params *p, const nad_tensor *img, const nad_tensor *mask,
                       nad_tensor *img_out, nad_tensor *mask_out);

/* Photometric operations, on the image only (no mask), results clamped to [0, 1]. y may be
   x (in place); otherwise y is resized to x's shape. x is [H,W,C]. */
/* y = mean_c + alpha (x - mean_c), mean_c the mean of channel c over the image. */
int nad_augment_contrast(float alpha, const nad_tensor *x, nad_tensor *y);
/* y = x + delta */
int nad_augment_brightness(float delta, const nad_tensor *x, nad_tensor *y);
/* Separable Gaussian blur with standard deviation sigma (> 0), radius ceil(3 sigma) capped
   at 31, borders replicated. Scratch from ws. */
int nad_augment_blur(nad_workspace *ws, float sigma, const nad_tensor *x, nad_tensor *y);
/* Unsharp mask: y = x + amount (x - box3(x)), box3 the 3x3 mean with replicated borders. */
int nad_augment_sharpen(nad_workspace *ws, float amount, const nad_tensor *x, nad_tensor *y);
/* y = x + N(0, std^2) per element (one rng draw per element). */
int nad_augment_noise(nad_rng *rng, float std, const nad_tensor *x, nad_tensor *y);
/* Each pixel (all its channels) set to 0 with probability rate (one draw per pixel). */
int nad_augment_dropout(nad_rng *rng, float rate, const nad_tensor *x, nad_tensor *y);
/* y[..., c] = (x[..., c] - mean[c]) / std[c] for the C channels of x [H,W,C] (no clamp). */
int nad_augment_normalize(const float *mean, const float *std, const nad_tensor *x,
                          nad_tensor *y);

/* The per-sample pipeline the loader runs, in this order (each random step happens with
   its probability p_*, its values drawn uniformly in [lo, hi]):
   resize (resize_h, resize_w > 0) -> random crop / pad (crop_h, crop_w > 0) -> horizontal
   flip -> vertical flip -> rotation by 90, 180 or 270 (one of the three uniformly; on a
   non-square image 180 only, so the output size is fixed) -> affine (scale, translate_x and
   translate_y in [-translate, translate], shear_x in [-shear_deg, shear_deg], rotate in
   [-rotate_deg, rotate_deg]) -> contrast -> brightness -> blur -> sharpen -> noise ->
   dropout -> normalize (if normalize != 0, with mean[c], std[c] for c < C <= 4).
   The AutoNAD supernet: p_hflip = p_vflip = 0.5, p_rot90 = 0.75 (0, 90, 180, 270 equally
   likely). Fine-tuning adds affine scale 0.8-1.2, translate 0.1, shear 8 and photometric
   blur, sharpen, dropout and contrast. A zeroed struct is the identity. The same rng state
   gives the same sample. Scratch from ws; img_out / mask_out may be img / mask. */
typedef struct nad_augment_params {
    int32_t resize_h, resize_w;
    int32_t crop_h, crop_w;
    float pad_value; /* image value of padded pixels (random crop) */
    float p_hflip, p_vflip, p_rot90;
    float p_affine;
    float scale_lo, scale_hi; /* both 0: scale 1 */
    float translate;          /* fraction of the size */
    float shear_deg;
    float rotate_deg;
    float fill; /* image value outside the source in the affine step */
    float p_contrast, contrast_lo, contrast_hi;
    float p_brightness, brightness_lo, brightness_hi;
    float p_blur, blur_sigma_lo, blur_sigma_hi;
    float p_sharpen, sharpen_lo, sharpen_hi;
    float p_noise, noise_std_lo, noise_std_hi;
    float p_dropout, dropout_lo, dropout_hi;
    int32_t normalize;
    float mean[4];
    float std[4];
} nad_augment_params;
int nad_augment_apply(nad_workspace *ws, nad_rng *rng, const nad_augment_params *p,
                      const nad_tensor *img, const nad_tensor *mask, nad_tensor *img_out,
                      nad_tensor *mask_out);

/* ---- data: generated defect images (core/data/synth.c) ----
   Synthetic grey surfaces with drawn defects, for the embedded default data set and tests.
   Surfaces: steel (directional streaks along a random axis, grain, pixel noise) or tile
   (isotropic grain, mottling, low-frequency shading). Defect classes (fixed ids):
     1 scratch    thin (1-2.5 px) long curved line, brighter or darker
     2 pit        2-10 small dark irregular blobs (radius 1.5-5 px)
     3 crack      branching jagged dark thin line
     4 patch      one or two large irregular regions of low contrast (+-0.04..0.12)
     5 inclusion  3-10 elongated dark or bright specks along the surface's axis
   Contrast, size, count, texture strength and noise (std 0.015-0.05) vary per sample.
   Sample i is a function of (seed, i) only. Its class is the i-th (cyclically) of the
   classes selected by class_mask (bit k selects class k; bit 0 selects defect-free samples;
   0 selects classes 1..5), so any n consecutive samples are balanced. Labels and mask values
   are the class's rank among the selected defect classes (1..m, in id order); background and
   defect-free samples are 0. With all of 1..5 selected the rank is the id. */
enum {
    NAD_SYNTH_NONE = 0,
    NAD_SYNTH_SCRATCH = 1,
    NAD_SYNTH_PIT = 2,
    NAD_SYNTH_CRACK = 3,
    NAD_SYNTH_PATCH = 4,
    NAD_SYNTH_INCLUSION = 5,
    NAD_SYNTH_NUM_CLASSES = 6
};
enum { NAD_SYNTH_STEEL = 0, NAD_SYNTH_TILE = 1, NAD_SYNTH_MIXED = 2 };
typedef struct nad_synth_params {
    int32_t height, width; /* >= 8 each */
    int32_t surface;       /* NAD_SYNTH_STEEL, _TILE, or _MIXED (drawn per sample) */
    uint32_t class_mask;
} nad_synth_params;
/* Sample index (>= 0) of the set `seed`: img resized to [H,W,1] in [0,1], mask (may be NULL)
   to [H,W]; *label gets the image label. ws holds H*W floats of scratch. */
int nad_synth_sample(nad_workspace *ws, const nad_synth_params *p, uint64_t seed, int64_t index,
                     nad_tensor *img, nad_tensor *mask, int32_t *label);

/* ---- data: the batch loader on background threads (core/data/loader.c) ----
   Worker threads decode (and augment) samples into a ring of `prefetch` preallocated batches
   while the caller trains on an earlier one. The samples are given once; each epoch gives the
   order to visit them in. Sample p of an epoch (its position in that order) draws its random
   numbers from a stream seeded by (seed, epoch, p) alone, so the batches do not depend on the
   thread count or on timing. A sample that fails to decode makes the batch holding it fail
   with the decoder's message (naming the path); the next batch then follows as usual. */

typedef struct nad_loader nad_loader;

typedef struct nad_loader_params {
    int32_t batch_size;
    int32_t height;       /* output size: after augmentation, images are resized (bilinear, */
    int32_t width;        /* align_corners=False) and masks (nearest) when they differ */
    int32_t channels;     /* 1: grey, 3: RGB */
    int32_t segmentation; /* 1: targets are masks [B,H,W]; 0: labels [B] */
    int32_t num_threads;  /* worker threads, >= 1 */
    int32_t prefetch;     /* batches prepared ahead, >= 1 */
    int32_t drop_last;    /* 1: a last batch shorter than batch_size is skipped */
    uint64_t seed;        /* the per-sample streams (augmentation) derive from it */
    /* nad_augment_apply's pipeline, run on every sample with its own stream; NULL: none.
       Copied by nad_loader_new (normalisation, if wanted, is its normalize step). */
    const nad_augment_params *augment;
    /* Generated samples (image == NULL) come from nad_synth_sample(synth, synth_seed,
       synth_index); NULL when every sample is a file. Copied. */
    const nad_synth_params *synth;
    uint64_t synth_seed;
} nad_loader_params;

/* One sample. image: its path, or NULL for a generated one (synth_index). mask: a path read
   with nad_mask_load(mask_threshold, mask_value), or NULL for an all-background mask (a
   defect-free image; a generated sample brings its own). label: the class index (the target
   of a classification loader; a generated sample brings its own). The strings are copied. */
typedef struct nad_loader_sample {
    const char *image;
    const char *mask;
    int32_t mask_threshold;
    int32_t mask_value;
    int32_t label;
    int64_t synth_index;
} nad_loader_sample;

/* A loader over n samples; its threads wait until nad_loader_start. NULL on failure. */
nad_loader *nad_loader_new(const nad_loader_params *p, int32_t n, const nad_loader_sample *samples);
/* Stops the threads (each finishes the sample it is on), even mid-epoch, and frees the
   loader. nad_loader_free(NULL) is a no-op. */
void nad_loader_free(nad_loader *l);
/* Starts epoch `epoch` visiting order[0..n-1] (sample indices, repeats allowed), dropping
   what remains of the previous epoch. The order is copied. */
int nad_loader_start(nad_loader *l, int64_t epoch, int32_t n, const int32_t *order);
/* Waits for the next batch and copies it out: images resized to [b,H,W,C], targets to
   [b,H,W] (masks) or [b] (labels). Returns b > 0, 0 after the epoch's last batch, or a
   negative code (images and targets untouched) when a sample of this batch failed.
   *wait_seconds (may be NULL) receives the time spent waiting for the workers. */
int nad_loader_next(nad_loader *l, nad_tensor *images, nad_tensor *targets, double *wait_seconds);
/* Number of batches of the current epoch. */
int64_t nad_loader_num_batches(const nad_loader *l);


#endif
