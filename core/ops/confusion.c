/* confusion.c: the confusion matrix of argmax predictions against class labels (int64 counts,
   accumulated over calls), with an ignore label. The evaluation metrics of
   lua/autonad/metrics.lua (IoU, F1, accuracy) are computed from it. */
#include "../internal.h"
#include <omp.h>
#include <stdio.h>
#include <string.h>

enum { PAR_MIN = 32768 };

/* Index of the largest of x[0..K): the first of equal maxima; NaN never beats a number. */
static inline int64_t row_argmax(const float *x, int64_t K)
{
    int64_t best = 0;
    float m = x[0];
    for (int64_t j = 1; j < K; j++) {
        if (x[j] > m || m != m) {
            m = x[j];
            best = j;
        }
    }
    return m != m ? 0 : best;
}

/* matrix[label, argmax(row)] += 1 per counted row. Each thread counts its rows into its own
   K*K block of ws and records the first bad label it meets; the blocks are added to matrix
   only when no thread found one, so a failure leaves matrix untouched. Integer sums: the
   result is the same for every thread count. */
int nad_confusion_update(nad_workspace *ws, int32_t ignore_label, const nad_tensor *logits,
                         const nad_tensor *labels, int64_t *matrix)
{
    const char *fn = "confusion_update";
    int rc = nad_check_contig(fn, "logits", logits);
    if (rc || (rc = nad_check_contig(fn, "labels", labels))) return rc;
    if (!matrix) return nad_fail(NAD_EINVAL, "%s: matrix is NULL", fn);
    if (logits->ndim < 1 || logits->size[logits->ndim - 1] < 1)
        return nad_fail(NAD_EINVAL, "%s: logits needs a non-empty class dim", fn);
    const int64_t K = logits->size[logits->ndim - 1], rows = nad_numel(logits) / K;
    if (nad_numel(labels) != rows)
        return nad_fail(NAD_EINVAL, "%s: labels has %lld elements, logits has %lld rows", fn,
                        (long long)nad_numel(labels), (long long)rows);
    if (rows == 0) return 0;
    const int nt = rows * K > PAR_MIN ? omp_get_max_threads() : 1;
    const int64_t kk = K * K;
    /* per thread: kk counts, then the first bad row (rows when none) */
    const int64_t per = kk + 1;
    int64_t *part = nad_workspace_get(ws, (size_t)(nt * per) * sizeof(int64_t));
    if (!part) {
        char why[256]; /* nad_fail writes the buffer nad_last_error reads: copy it first */
        snprintf(why, sizeof why, "%s", nad_last_error());
        return nad_fail(ws ? NAD_ENOMEM : NAD_EINVAL, "%s: %s", fn, why);
    }
    /* zeroed here, not by the threads: a team may get fewer threads than asked for */
    for (int t = 0; t < nt; t++) {
        memset(part + t * per, 0, (size_t)kk * sizeof(int64_t));
        part[t * per + kk] = rows;
    }
    const float *xd = nad_data(logits), *ld = nad_data(labels);
    const float ignore = (float)ignore_label;
    #pragma omp parallel num_threads(nt)
    {
        int64_t *cnt = part + (int64_t)omp_get_thread_num() * per;
        int64_t bad = rows;
        /* a static schedule gives each thread one increasing range, so its first bad row is
           the smallest it holds */
        #pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float v = ld[r];
            if (v == ignore || bad < rows) continue;
            if (!(v >= 0 && v < (float)K) || v != (float)(int64_t)v) {
                bad = r;
                continue;
            }
            cnt[(int64_t)v * K + row_argmax(xd + r * K, K)]++;
        }
        cnt[kk] = bad;
    }
    int64_t bad = rows;
    for (int t = 0; t < nt; t++) bad = part[t * per + kk] < bad ? part[t * per + kk] : bad;
    if (bad < rows)
        return nad_fail(NAD_EINVAL, "%s: label %g at row %lld is not a class in [0, %lld) "
                                    "nor the ignore label %d",
                        fn, ld[bad], (long long)bad, (long long)K, ignore_label);
    for (int t = 0; t < nt; t++) {
        const int64_t *cnt = part + t * per;
        for (int64_t i = 0; i < kk; i++) matrix[i] += cnt[i];
    }
    return 0;
}
