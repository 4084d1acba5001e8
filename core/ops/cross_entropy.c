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

/* log sum exp of a row, shifted by its max for stability */
static inline float row_max(const float *x, int64_t K)
{
    float m = x[0];
    for (int64_t j = 1; j < K; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline float row_sumexp(const float *x, int64_t K, float m)
{
    float s = 0;
    for (int64_t j = 0; j < K; j++) s += nad_expf(x[j] - m);
    return s;
}

/* loss = mean over counted rows of logsumexp(row) - row[label] */
int nad_cross_entropy_forward(int32_t ignore_label, const nad_tensor *logits,
                              const nad_tensor *labels, float *loss)
{
    const char *fn = "cross_entropy_forward";
    if (!loss) return nad_fail(NAD_EINVAL, "%s: loss is NULL", fn);
    int64_t counted;
    int rc = check_ce(fn, ignore_label, logits, labels, &counted);
    if (rc) return rc;
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    const float *xd = nad_data(logits), *ld = nad_data(labels);
    const int64_t per = (rows + BLOCKS - 1) / BLOCKS;
    double part[BLOCKS] = {0};
    #pragma omp parallel for schedule(static) if (rows * K > PAR_MIN)
    for (int64_t b = 0; b < BLOCKS; b++) {
        int64_t r0 = b * per, r1 = r0 + per < rows ? r0 + per : rows;
        double acc = 0;
        for (int64_t r = r0; r < r1; r++) {
            if (ld[r] == (float)ignore_label) continue;
            const float *x = xd + r * K;
            float m = row_max(x, K);
            acc += (double)logf(row_sumexp(x, K, m)) + m - x[(int64_t)ld[r]];
        }
        part[b] = acc;
    }
    double total = 0;
    for (int64_t b = 0; b < BLOCKS; b++) total += part[b];
    *loss = counted ? (float)(total / (double)counted) : 0.0f;
    return 0;
}

/* dlogits = scale (softmax(row) - onehot(label)) / counted; 0 on ignored rows. The softmax is
   recomputed here, so the forward saves nothing. dlogits may be logits (in place). */
int nad_cross_entropy_backward(int32_t ignore_label, float scale, const nad_tensor *logits,
                               const nad_tensor *labels, nad_tensor *dlogits)
{
    const char *fn = "cross_entropy_backward";
    int64_t counted;
    int rc = check_ce(fn, ignore_label, logits, labels, &counted);
    if (rc || (rc = nad_check_tensor(fn, "dlogits", dlogits))) return rc;
    if (dlogits != logits && (rc = nad_resize_as(dlogits, logits))) return rc;
    if ((rc = nad_check_contig(fn, "dlogits", dlogits))) return rc;
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    const float *xd = nad_data(logits), *ld = nad_data(labels);
    float *gd = nad_data(dlogits);
    const float f = counted ? scale / (float)counted : 0.0f;
    #pragma omp parallel for schedule(static) if (rows * K > PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const float *x = xd + r * K;
        float *g = gd + r * K;
        if (ld[r] == (float)ignore_label) {
            for (int64_t j = 0; j < K; j++) g[j] = 0;
            continue;
        }
        float m = row_max(x, K), s = 0;
        for (int64_t j = 0; j < K; j++) s += g[j] = nad_expf(x[j] - m); /* g may be x: read first */
        const float inv = f / s;
        for (int64_t j = 0; j < K; j++) g[j] *= inv;
        g[(int64_t)ld[r]] -= f;
    }
    return 0;
}

/* Both at once (a training step's loss and its gradient): one pass over the logits and the
   labels; the loss summed in the forward's blocks and the gradient rows as the backward forms
   them, so the same bits as the two calls. */
int nad_cross_entropy_loss_grad(int32_t ignore_label, float scale, const nad_tensor *logits,
                                const nad_tensor *labels, float *loss, nad_tensor *dlogits)
{
    const char *fn = "cross_entropy_loss_grad";
    if (!loss) return nad_fail(NAD_EINVAL, "%s: loss is NULL", fn);
    int64_t counted;
    int rc = check_ce(fn, ignore_label, logits, labels, &counted);
    if (rc || (rc = nad_check_tensor(fn, "dlogits", dlogits))) return rc;
    if (dlogits != logits && (rc = nad_resize_as(dlogits, logits))) return rc;
    if ((rc = nad_check_contig(fn, "dlogits", dlogits))) return rc;
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    const float *xd = nad_data(logits), *ld = nad_data(labels);
    float *gd = nad_data(dlogits);
    const float f = counted ? scale / (float)counted : 0.0f;
    const int64_t per = (rows + BLOCKS - 1) / BLOCKS;
    double part[BLOCKS] = {0};
    #pragma omp parallel for schedule(static) if (rows * K > PAR_MIN)
    for (int64_t b = 0; b < BLOCKS; b++) {
        int64_t r0 = b * per, r1 = r0 + per < rows ? r0 + per : rows;
        double acc = 0;
        for (int64_t r = r0; r < r1; r++) {
            const float *x = xd + r * K;
            float *g = gd + r * K;
            if (ld[r] == (float)ignore_label) {
                for (int64_t j = 0; j < K; j++) g[j] = 0;
                continue;
            }
            const int64_t label = (int64_t)ld[r];
            float m = row_max(x, K), xl = x[label], s = 0; /* x[label] before g overwrites it */
            for (int64_t j = 0; j < K; j++) s += g[j] = nad_expf(x[j] - m);
            acc += (double)logf(s) + m - xl;
            const float inv = f / s;
            for (int64_t j = 0; j < K; j++) g[j] *= inv;
            g[label] -= f;
        }
        part[b] = acc;
    }
    double total = 0;
    for (int64_t b = 0; b < BLOCKS; b++) total += part[b];
    *loss = counted ? (float)(total / (double)counted) : 0.0f;
    return 0;
}
