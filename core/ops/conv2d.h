/* conv2d.h: what the files of the conv2d operator share (internal to core/ops): the geometry
   of one call, the depthwise kernels of conv2d_depthwise.c, the grouped ones of
   conv2d_grouped.c and the few-channel ones of conv2d_small.c. */
#ifndef AUTONAD_CONV2D_H
#define AUTONAD_CONV2D_H
#include "../internal.h"

enum { PATH_GEMM, PATH_1X1, PATH_DEPTHWISE, PATH_GROUPED, PATH_SMALL };
/* groups with at most this many outputs each take the direct grouped path; convolutions with
   at most SMALL_MAX_C input and output channels the few-channel path */
enum { GROUPED_MAX_COG = 8, SMALL_MAX_C = NAD_CONV2D_SMALL_MAX_C };

typedef struct geom {
    int64_t n, h, w, ci, co, k, ho, wo;
    int64_t s, pad, d, g;
    int64_t cig, cog, kk, kcg; /* Ci/groups, Co/groups, K*K, K*K*Ci/groups */
    int64_t rows;              /* N*Ho*Wo output pixels */
    int64_t chunk;             /* output rows (n, ho) per im2col chunk */
    int path;
} geom;

/* The direct kernels' 16-float vectors (GCC vector extensions, compiled per target_clones
   clone). ld/st are always inlined into those kernels, so the vector-return ABI note GCC gives
   for the non-AVX-512 clones does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
enum { VL = 16 };
typedef float vec __attribute__((vector_size(VL * sizeof(float))));
typedef float vec_u __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

static inline __attribute__((always_inline)) vec ld(const float *p) { return *(const vec_u *)p; }
static inline __attribute__((always_inline)) void st(float *p, vec v) { *(vec_u *)p = v; }

/* conv2d.c's argument checks and workspace carving, shared with the fused entry points:
   nad_conv_geom checks p, x and w and fills g (shapes, output size, path); a vector of n
   elements (the bias); the float offset of a block of `floats` in a workspace of *used. */
int nad_conv_geom(const char *fn, const nad_conv2d_params *p, const nad_tensor *x,
                  const nad_tensor *w, geom *g);
int nad_conv_check_vec(const char *fn, const char *name, const nad_tensor *v, int64_t n);
size_t nad_conv_carve(size_t *used, int64_t floats);

/* The GEMM path without im2col (conv2d_implicit.c). Panels over IMPLICIT_PANEL_MAX floats keep
   im2col. nad_implicit_ok: g's forward can take it; nad_implicit_floats: the workspace floats
   its padded input needs; nad_implicit_forward: y from x (xp: that workspace) and the packed
   weights pn. nad_implicit_dx_ok: the stride-1 dx can be made as the forward of
   nad_conv_transposed(g) on dy with nad_conv_flip_weights's weights, wt[(kh K + kw) Co + o][c]
   = W[o][K-1-kh][K-1-kw][c] from W's rows (wd, ldw). */
enum { IMPLICIT_PANEL_MAX = 1 << 21 };
/* threads take whole images of g in one parallel region (else each image's rows are split) */
bool nad_conv_images_to_threads(const geom *g);
bool nad_implicit_ok(const geom *g);
int64_t nad_implicit_floats(const geom *g);
void nad_implicit_forward(const geom *g, const nad_panel *pn, const float *xd, float *xp,
                          float *yd);
bool nad_implicit_dx_ok(const geom *g);
geom nad_conv_transposed(const geom *g);
void nad_conv_flip_weights(const geom *g, const float *wd, int64_t ldw, float *wt);

/* offset of w[o, kh, kw, c] for any weight view */
static inline int64_t w_off(const nad_tensor *w, int64_t o, int64_t kh, int64_t kw, int64_t c)
{
    return o * w->stride[0] + kh * w->stride[1] + kw * w->stride[2] + c * w->stride[3];
}

/* [*k0, *k1): the tap rows or columns that land inside [0, size) for output position o */
static inline void taps_inside(const geom *g, int64_t o, int64_t size, int64_t *k0, int64_t *k1)
{
    int64_t first = o * g->s - g->pad;
    *k0 = 0, *k1 = g->k;
    while (*k0 < g->k && first + *k0 * g->d < 0) (*k0)++;
    while (*k1 > *k0 && first + (*k1 - 1) * g->d >= size) (*k1)--;
}

/* Depthwise (groups = Ci = Co). Weights are packed as wt[K*K][C] (taps major, channels
   contiguous), turned by 180 degrees for the input gradient of a stride-1 conv (a conv of dy). Rows are independent, so callers run them in parallel. */
void nad_dw_pack_taps(const geom *g, const nad_tensor *w, bool turned, float *wt);
/* The weight-gradient rows' per-part sums, pw [nparts][K*K][C] and pb [nparts][C] (either may
   be NULL), added in part order and then into dw and db (any views). */
void nad_dw_add_parts(const geom *g, int64_t nparts, float *pw, float *pb, nad_tensor *dw,
                      nad_tensor *db);
/* y row q = (n, ho): y[wo][c] = bias[c] + sum over taps of x[hi][wi][c] wt[tap][c] */
void nad_dw_forward_row(const geom *g, const float *x, const float *wt, const float *bias,
                        int64_t q, float *y);
/* dx row p = (n, hi), written (not accumulated): the sum over the outputs that read it */
void nad_dw_dx_row(const geom *g, const float *dy, const float *wt, int64_t p, float *dx);
/* dwt[tap][c] += sum over wo of dy[q][wo][c] x[..][c];  dbt[c] += sum over wo of dy (either
   may be NULL); dyr points at dy's row q (wherever it is kept) */
void nad_dw_dw_row(const geom *g, const float *x, const float *dyr, int64_t q, float *dwt,
                   float *dbt);

/* Grouped with at most GROUPED_MAX_COG outputs per group (conv2d_grouped.c), one image at a
   time: x gathered as xg[H][W][Cig][Co] (xg[..][j][o] = x[..][(o / cog) Cig + j]), weights as
   wg[K*K][Cig][Co]; rows are independent, so callers run them in parallel. */
void nad_gr_gather_image(const geom *g, const float *xn, float *xg);
void nad_gr_pack_weights(const geom *g, const nad_tensor *w, float *wg);
/* y[ho][wo][o] = bias[o] + sum over taps and j of xg[hi][wi][j][o] wg[tap][j][o] */
void nad_gr_forward_row(const geom *g, const float *xg, const float *wg, const float *bias,
                        int64_t ho, float *y);
/* dx row hi (written); t: cig * co floats of scratch */
void nad_gr_dx_row(const geom *g, const float *dy, const float *wg, int64_t hi, float *t,
                   float *dx);
/* a[tap][j][o] += sum over wo of dy[ho][wo][o] xg[hi][wi][j][o] */
void nad_gr_dw_row(const geom *g, const float *xg, const float *dy, int64_t ho, float *a);

/* Few channels (conv2d_small.c): groups 1, stride 1, Ci and Co <= SMALL_MAX_C, pad at most
   d (K - 1) (so that dx is a convolution of dy). Maps are read as planar rows
   p[n][row][c][wpl] with zero borders; rows are independent, so callers run them in parallel. */
bool nad_sm_ok(const geom *g);
/* floats per planar dy row: Wo rounded up to 16 (zeros past Wo) */
int64_t nad_sm_dy_width(const geom *g);
/* wpl: floats per planar row of g's (padded) input: that, plus d (K - 1) */
int64_t nad_sm_plane_width(const geom *g);
/* floats of g's whole planar padded input (all N images) */
int64_t nad_sm_input_floats(const geom *g);
/* planar row r of src[N][h][w][c] padded by pad on every side: dst[r][c][wpl] (zeros around),
   r < N (h + 2 pad) */
void nad_sm_planar_row(const float *src, int64_t h, int64_t w, int64_t c, int64_t pad,
                       int64_t wpl, int64_t r, float *dst);
/* The head's bilinear resize made straight into such planar rows (resize.c): rows [r0, r1) of
   the planar map of x [N][h][w][c] resized to ho x wo (taps: nad_resize_planar_taps(w, wo,
   align_corners), freed with free; t: 2 c wo floats of scratch). The resize's bits. */
typedef struct col_tap col_tap; /* a column's two source columns and weights (resize.c) */
col_tap *nad_resize_planar_taps(int64_t w, int64_t wo, int32_t align_corners);
void nad_resize_planar_rows(const float *x, int64_t h, int64_t w, int64_t c, int64_t ho,
                            int64_t wo, int32_t align_corners, const col_tap *cols, int64_t pad,
                            int64_t wpl, int64_t r0, int64_t r1, float *t, float *dst);
/* wp[tap][Ci][Co] = w[o, tap, c]; with flip, the weights of dx's convolution instead:
   wp[K*K-1-tap][Co][Ci] */
void nad_sm_pack_weights(const geom *g, const nad_tensor *w, bool flip, float *wp);
/* y row q = (n, ho) from the planar padded input xp and wp[tap][Ci][Co] */
void nad_sm_forward_row(const geom *g, const float *xp, const float *wp, const float *bias,
                        int64_t q, float *y);
/* a[o][tap][c][16] += lane-wise sums over dy row q (planar dyp[n ho][Co][nad_sm_dy_width])
   times the input under each tap */
void nad_sm_dw_row(const geom *g, const float *xp, const float *dyp, int64_t q, float *a);

/* The im2col path (conv2d_im2col.c): cols[(q - q0) Wo + wo][G][K][K][Cig] = x's patches for
   output rows [q0, q1); dx += col2im(cols) for those rows, each input row gathering the column
   entries that read it (threads own disjoint rows, the order is fixed); db += column sums of
   dy[rows][co] in nparts fixed parts added in order (part: nparts co floats of scratch). */
void nad_im2col(const geom *g, const float *x, int64_t q0, int64_t q1, float *cols);
void nad_col2im_add(const geom *g, const float *cols, int64_t q0, int64_t q1, float *dx);
void nad_add_colsum(const float *dy, int64_t rows, int64_t co, int64_t nparts, float *part,
                    nad_tensor *db);

#endif
