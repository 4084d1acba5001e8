/* cross_entropy.c: softmax cross entropy over the last dim with integer class labels stored as
   floats and an ignore label, forward (mean loss) and backward (dlogits). The segmentation
   loss over pixels and the classification loss over images. */
#include "../internal.h"
#include "../vecmath.h"
#include <math.h>

/* The loss is summed in a fixed number of blocks, combined in order: the same bits whatever
   the thread count. */
enum { BLOCKS = 64, PAR_MIN = NAD_PAR_TRANSCENDENTAL };

/* Checks shapes and every label; *counted = rows whose label is not ignore_label. */
static int check_ce(const char *fn, int32_t ignore_label, const nad_tensor *logits,
                    const nad_tensor *labels, int64_t *counted)
{
    int rc = nad_check_contig(fn, "logits", logits);
    if (rc || (rc = nad_check_contig(fn, "labels", labels))) return rc;
    if (logits->ndim < 1 || logits->size[logits->ndim - 1] < 1)
        return nad_fail(NAD_EINVAL, "%s: logits needs a non-empty class dim", fn);
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    if (nad_numel(labels) != rows)
        return nad_fail(NAD_EINVAL, "%s: labels has %lld elements, logits has %lld rows", fn,
                        (long long)nad_numel(labels), (long long)rows);
    const float *ld = nad_data(labels);
    int64_t n = 0;
    for (int64_t r = 0; r < rows; r++) {
        float v = ld[r];
        if (v == (float)ignore_label) continue;
        if (!(v >= 0 && v < (float)K) || v != floorf(v))
            return nad_fail(NAD_EINVAL, "%s: label %g at row %lld is not a class in [0, %lld) "
                                        "nor the ignore label %d",
                            fn, v, (long long)r, (long long)K, ignore_label);
        n++;
    }
    *counted = n;
    return 0;
}

/* the row's max: its exponentials are taken shifted by it, for stability */
static inline float row_max(const float *x, int64_t K)
{
    float m = x[0];
    for (int64_t j = 1; j < K; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* the fixed blocks of rows, each with its part of the loss */
typedef struct ce_blocks_loop {
    const float *xd, *ld;
    float *gd;
    double *part;
    int64_t K, rows, per;
    float f;
    int32_t ignore_label;
} ce_blocks_loop;

static void ce_blocks(void *ctx, int64_t begin, int64_t end, int thread)
{
    const ce_blocks_loop *l = ctx;
    const float *xd = l->xd, *ld = l->ld;
    float *gd = l->gd;
    double *part = l->part;
    const int64_t K = l->K, rows = l->rows, per = l->per;
    const float f = l->f;
    const int32_t ignore_label = l->ignore_label;
    for (int64_t b = begin; b < end; b++) {
        int64_t r0 = b * per, r1 = r0 + per < rows ? r0 + per : rows;
        double acc = 0;
        for (int64_t r = r0; r < r1; r++) {
            const float *x = xd + r * K;
            float *g = gd ? gd + r * K : NULL;
            if (ld[r] == (float)ignore_label) {
                for (int64_t j = 0; g && j < K; j++) g[j] = 0;
                continue;
            }
            const int64_t label = (int64_t)ld[r];
            float m = row_max(x, K), xl = x[label], s = 0; /* read x before g (may be x) */
            if (g)
                for (int64_t j = 0; j < K; j++) s += g[j] = nad_expf(x[j] - m);
            else
                for (int64_t j = 0; j < K; j++) s += nad_expf(x[j] - m);
            acc += (double)logf(s) + m - xl; /* logsumexp(row) - row[label] */
            if (!g) continue;
            const float inv = f / s;
            for (int64_t j = 0; j < K; j++) g[j] *= inv;
            g[label] -= f;
        }
        part[b] = acc;
    }
}

/* The loss (when loss is not NULL) and dlogits (with grad), in one pass: rows in BLOCKS
   fixed blocks, the loss's partial sums combined in block order. */
static int cross_entropy(const char *fn, int32_t ignore_label, float scale,
                         const nad_tensor *logits, const nad_tensor *labels, float *loss,
                         bool grad, nad_tensor *dlogits)
{
    int64_t counted = 0;
    int rc = check_ce(fn, ignore_label, logits, labels, &counted);
    if (rc) return rc;
    if (grad && ((rc = nad_check_tensor(fn, "dlogits", dlogits)) ||
                 (dlogits != logits && (rc = nad_resize_as(dlogits, logits))) ||
                 (rc = nad_check_contig(fn, "dlogits", dlogits))))
        return rc;
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    const float *xd = nad_data(logits), *ld = nad_data(labels);
    float *gd = grad ? nad_data(dlogits) : NULL;
    const float f = counted ? scale / (float)counted : 0.0f;
    const int64_t per = (rows + BLOCKS - 1) / BLOCKS;
    double part[BLOCKS] = {0};
    ce_blocks_loop l = {xd, ld, gd, part, K, rows, per, f, ignore_label};
    nad_parallel_for(BLOCKS, rows * K > PAR_MIN, ce_blocks, &l);
    if (loss) {
        double total = 0;
        for (int64_t b = 0; b < BLOCKS; b++) total += part[b];
        *loss = counted ? (float)(total / (double)counted) : 0.0f;
    }
    return 0;
}

/* loss = mean over counted rows of logsumexp(row) - row[label] */
int nad_cross_entropy_forward(int32_t ignore_label, const nad_tensor *logits,
                              const nad_tensor *labels, float *loss)
{
    if (!loss) return nad_fail(NAD_EINVAL, "cross_entropy_forward: loss is NULL");
    return cross_entropy("cross_entropy_forward", ignore_label, 1, logits, labels, loss, false,
                         NULL);
}

/* dlogits = scale (softmax(row) - onehot(label)) / counted; 0 on ignored rows. The softmax is
   recomputed here, so the forward saves nothing. dlogits may be logits (in place). */
int nad_cross_entropy_backward(int32_t ignore_label, float scale, const nad_tensor *logits,
                               const nad_tensor *labels, nad_tensor *dlogits)
{
    return cross_entropy("cross_entropy_backward", ignore_label, scale, logits, labels, NULL, true,
                         dlogits);
}

/* Both at once (a training step's loss and its gradient): one pass over the logits and the
   labels, the same bits as the two calls. */
int nad_cross_entropy_loss_grad(int32_t ignore_label, float scale, const nad_tensor *logits,
                                const nad_tensor *labels, float *loss, nad_tensor *dlogits)
{
    if (!loss) return nad_fail(NAD_EINVAL, "cross_entropy_loss_grad: loss is NULL");
    return cross_entropy("cross_entropy_loss_grad", ignore_label, scale, logits, labels, loss,
                         true, dlogits);
}
