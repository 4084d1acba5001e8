/* concat.c: concatenation along any dim and its backward, split. Inputs and outputs may be
   strided views. Used by the PPM and the fuse stage of the decoder and by the conv mixer. */
#include "../internal.h"

enum { PAR_MIN = NAD_PAR_FLOATS };

/* copy_view's loop: rows of dst and src */
typedef struct copy_loop {
    nad_rowiter id, is;
    float *d;
    const float *s;
} copy_loop;

static void copy_rows(void *ctx, int64_t r0, int64_t r1, int thread)
{
    const copy_loop *l = ctx;
    const int64_t len = l->id.len, sd = l->id.inner, ss = l->is.inner;
    for (int64_t r = r0; r < r1; r++) {
        float *dr = l->d + nad_rowiter_offset(&l->id, r);
        const float *sr = l->s + nad_rowiter_offset(&l->is, r);
        if (sd == 1 && ss == 1)
            for (int64_t j = 0; j < len; j++) dr[j] = sr[j];
        else
            for (int64_t j = 0; j < len; j++) dr[j * sd] = sr[j * ss];
    }
}

/* dst = src (same shape, any strides), rows split between threads. */
static void copy_view(const nad_tensor *dst, const nad_tensor *src)
{
    copy_loop l = {.d = nad_data(dst), .s = nad_data(src)};
    nad_rowiter_init(&l.id, dst);
    nad_rowiter_init(&l.is, src);
    nad_parallel_for(l.id.rows, l.id.rows * l.id.len > PAR_MIN, copy_rows, &l);
}

/* The part [start, start + len) of t along dim, as a stack view (no reference taken). */
static nad_tensor part_of(const nad_tensor *t, int32_t dim, int64_t start, int64_t len)
{
    nad_tensor v = *t;
    v.offset += start * t->stride[dim];
    v.size[dim] = len;
    return v;
}

/* Whether nad_tensor_resize(t, shape of like) can succeed (short of running out of memory),
   so that split fails before resizing any of its outputs. */
static bool resizable(const nad_tensor *t, const nad_tensor *like)
{
    if (nad_same_shape(t, like)) return true;
    if (t->offset != 0 || !nad_is_contiguous(t)) return false;
    return nad_numel(like) <= t->storage->capacity || atomic_load(&t->storage->refcount) == 1;
}

int nad_concat(int32_t n, const nad_tensor *const *xs, int32_t dim, nad_tensor *y)
{
    const char *fn = "concat";
    if (n < 1) return nad_fail(NAD_EINVAL, "%s: n is %d, expected at least 1", fn, n);
    if (!xs) return nad_fail(NAD_EINVAL, "%s: xs is NULL", fn);
    int rc = nad_check_tensor(fn, "y", y);
    if (rc) return rc;
    for (int32_t i = 0; i < n; i++)
        if (!xs[i]) return nad_fail(NAD_EINVAL, "%s: xs[%d] is NULL", fn, i);
    const nad_tensor *x0 = xs[0];
    if (dim < 0 || dim >= x0->ndim)
        return nad_fail(NAD_EINVAL, "%s: dim %d is outside 0..%d", fn, dim, x0->ndim - 1);
    nad_tensor shape = *x0;
    shape.size[dim] = 0;
    for (int32_t i = 0; i < n; i++) {
        const nad_tensor *x = xs[i];
        bool ok = x->ndim == x0->ndim;
        for (int32_t d = 0; ok && d < x0->ndim; d++) ok = d == dim || x->size[d] == x0->size[d];
        if (!ok) {
            char b1[96], b2[96];
            return nad_fail(NAD_EINVAL, "%s: xs[%d] is %s but xs[0] is %s (sizes must match "
                                        "except along dim %d)",
                            fn, i, nad_shape_str(x, b1, sizeof b1),
                            nad_shape_str(x0, b2, sizeof b2), dim);
        }
        if (x == y) return nad_fail(NAD_EINVAL, "%s: y is xs[%d]", fn, i);
        shape.size[dim] += x->size[dim];
    }
    if ((rc = nad_resize_as(y, &shape))) return rc;
    int64_t start = 0;
    for (int32_t i = 0; i < n; i++) {
        nad_tensor part = part_of(y, dim, start, xs[i]->size[dim]);
        copy_view(&part, xs[i]);
        start += xs[i]->size[dim];
    }
    return 0;
}

int nad_split(const nad_tensor *y, int32_t dim, int32_t n, const int64_t *sizes,
              nad_tensor *const *xs)
{
    const char *fn = "split";
    int rc = nad_check_tensor(fn, "y", y);
    if (rc) return rc;
    if (n < 1) return nad_fail(NAD_EINVAL, "%s: n is %d, expected at least 1", fn, n);
    if (!xs || !sizes) return nad_fail(NAD_EINVAL, "%s: %s is NULL", fn, xs ? "sizes" : "xs");
    if (dim < 0 || dim >= y->ndim)
        return nad_fail(NAD_EINVAL, "%s: dim %d is outside 0..%d", fn, dim, y->ndim - 1);
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        if (!xs[i]) return nad_fail(NAD_EINVAL, "%s: xs[%d] is NULL", fn, i);
        if (xs[i] == y) return nad_fail(NAD_EINVAL, "%s: xs[%d] is y", fn, i);
        if (sizes[i] < 0)
            return nad_fail(NAD_EINVAL, "%s: sizes[%d] is %lld", fn, i, (long long)sizes[i]);
        total += sizes[i];
    }
    if (total != y->size[dim])
        return nad_fail(NAD_EINVAL, "%s: sizes add up to %lld but y has %lld along dim %d", fn,
                        (long long)total, (long long)y->size[dim], dim);
    int64_t start = 0;
    for (int32_t i = 0; i < n; i++) {
        nad_tensor part = part_of(y, dim, start, sizes[i]);
        if (!resizable(xs[i], &part)) {
            char b1[96], b2[96];
            return nad_fail(NAD_EINVAL, "%s: xs[%d] is a view of shape %s and cannot be resized "
                                        "to %s",
                            fn, i, nad_shape_str(xs[i], b1, sizeof b1),
                            nad_shape_str(&part, b2, sizeof b2));
        }
        start += sizes[i];
    }
    start = 0;
    for (int32_t i = 0; i < n; i++) {
        nad_tensor part = part_of(y, dim, start, sizes[i]);
        if ((rc = nad_resize_as(xs[i], &part))) return rc;
        copy_view(xs[i], &part);
        start += sizes[i];
    }
    return 0;
}
