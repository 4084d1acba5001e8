/* tensor.c: storage, tensors and views (narrow, permute, reshape, resize), copy, fill, sum,
   and the shape checks every operator uses. */
#include "internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *nad_alloc_zeroed(size_t bytes)
{
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    void *p = aligned_alloc(64, n);
    if (p) memset(p, 0, n);
    return p;
}

void nad_free_aligned(void *p) { free(p); }

/* storage blocks freed so far: the GEMM's cache of packed weights (gemm.c) drops its panels
   when this changes, since a freed address may come back holding other weights */
static _Atomic uint64_t storage_frees;
uint64_t nad_storage_frees(void) { return storage_frees; }

static nad_storage *storage_new(int64_t capacity)
{
    nad_storage *s = malloc(sizeof *s);
    if (!s) return NULL;
    s->data = nad_alloc_zeroed((size_t)capacity * sizeof(float));
    if (!s->data) {
        free(s);
        return NULL;
    }
    s->capacity = capacity;
    atomic_init(&s->refcount, 1);
    return s;
}

static void storage_release(nad_storage *s)
{
    if (s && atomic_fetch_sub(&s->refcount, 1) == 1) {
        nad_free_aligned(s->data);
        free(s);
        storage_frees++;
    }
}

static int check_sizes(const char *fn, int32_t ndim, const int64_t *sizes)
{
    if (ndim < 0 || ndim > NAD_MAX_DIMS)
        return nad_fail(NAD_EINVAL, "%s: ndim %d is outside 0..%d", fn, ndim, NAD_MAX_DIMS);
    for (int32_t i = 0; i < ndim; i++)
        if (sizes[i] < 0)
            return nad_fail(NAD_EINVAL, "%s: size %lld of dim %d is negative", fn,
                            (long long)sizes[i], i);
    return 0;
}

static void set_contiguous(nad_tensor *t, int32_t ndim, const int64_t *sizes)
{
    t->ndim = ndim;
    int64_t st = 1;
    for (int32_t i = ndim - 1; i >= 0; i--) {
        t->size[i] = sizes[i];
        t->stride[i] = st;
        st *= sizes[i];
    }
}

nad_tensor *nad_tensor_new(int32_t ndim, const int64_t *sizes)
{
    if (check_sizes("tensor_new", ndim, sizes)) return NULL;
    nad_tensor *t = calloc(1, sizeof *t);
    if (!t) goto oom;
    set_contiguous(t, ndim, sizes);
    t->storage = storage_new(nad_numel(t));
    if (!t->storage) goto oom;
    return t;
oom:
    free(t);
    nad_fail(NAD_ENOMEM, "tensor_new: out of memory");
    return NULL;
}

void nad_tensor_free(nad_tensor *t)
{
    if (!t) return;
    storage_release(t->storage);
    free(t);
}

nad_tensor *nad_tensor_view(const nad_tensor *t)
{
    if (nad_check_tensor("tensor_view", "t", t)) return NULL;
    nad_tensor *v = malloc(sizeof *v);
    if (!v) {
        nad_fail(NAD_ENOMEM, "tensor_view: out of memory");
        return NULL;
    }
    *v = *t;
    atomic_fetch_add(&v->storage->refcount, 1);
    return v;
}

nad_tensor *nad_tensor_narrow(const nad_tensor *t, int32_t dim, int64_t start, int64_t length)
{
    if (nad_check_tensor("tensor_narrow", "t", t)) return NULL;
    if (dim < 0 || dim >= t->ndim) {
        nad_fail(NAD_EINVAL, "tensor_narrow: dim %d is outside 0..%d", dim, t->ndim - 1);
        return NULL;
    }
    if (start < 0 || length < 0 || start + length > t->size[dim]) {
        nad_fail(NAD_EINVAL, "tensor_narrow: [%lld, %lld) is outside dim %d of size %lld",
                 (long long)start, (long long)(start + length), dim, (long long)t->size[dim]);
        return NULL;
    }
    nad_tensor *v = nad_tensor_view(t);
    if (!v) return NULL;
    v->offset += start * t->stride[dim];
    v->size[dim] = length;
    return v;
}

nad_tensor *nad_tensor_permute(const nad_tensor *t, const int32_t *perm)
{
    if (nad_check_tensor("tensor_permute", "t", t)) return NULL;
    int seen[NAD_MAX_DIMS] = {0};
    for (int32_t i = 0; i < t->ndim; i++) {
        if (perm[i] < 0 || perm[i] >= t->ndim || seen[perm[i]]++) {
            nad_fail(NAD_EINVAL, "tensor_permute: perm is not a permutation of 0..%d",
                     t->ndim - 1);
            return NULL;
        }
    }
    nad_tensor *v = nad_tensor_view(t);
    if (!v) return NULL;
    for (int32_t i = 0; i < t->ndim; i++) {
        v->size[i] = t->size[perm[i]];
        v->stride[i] = t->stride[perm[i]];
    }
    return v;
}

nad_tensor *nad_tensor_unsqueeze(const nad_tensor *t, int32_t dim)
{
    if (nad_check_tensor("tensor_unsqueeze", "t", t)) return NULL;
    if (dim < 0 || dim > t->ndim || t->ndim == NAD_MAX_DIMS) {
        nad_fail(NAD_EINVAL, "tensor_unsqueeze: cannot insert dim %d into %d dims", dim, t->ndim);
        return NULL;
    }
    nad_tensor *v = nad_tensor_view(t);
    if (!v) return NULL;
    for (int32_t i = t->ndim; i > dim; i--) {
        v->size[i] = t->size[i - 1];
        v->stride[i] = t->stride[i - 1];
    }
    v->size[dim] = 1;
    v->stride[dim] = dim < t->ndim ? t->size[dim] * t->stride[dim] : 1;
    v->ndim = t->ndim + 1;
    return v;
}

nad_tensor *nad_tensor_diagonal(const nad_tensor *t, int32_t d1, int32_t d2)
{
    if (nad_check_tensor("tensor_diagonal", "t", t)) return NULL;
    if (d1 < 0 || d2 < 0 || d1 >= t->ndim || d2 >= t->ndim || d1 == d2) {
        nad_fail(NAD_EINVAL, "tensor_diagonal: dims %d and %d are not two distinct dims of %d",
                 d1, d2, t->ndim);
        return NULL;
    }
    nad_tensor *v = nad_tensor_view(t);
    if (!v) return NULL;
    int32_t k = 0;
    for (int32_t i = 0; i < t->ndim; i++) {
        if (i == d1 || i == d2) continue;
        v->size[k] = t->size[i];
        v->stride[k] = t->stride[i];
        k++;
    }
    v->size[k] = t->size[d1] < t->size[d2] ? t->size[d1] : t->size[d2];
    v->stride[k] = t->stride[d1] + t->stride[d2];
    v->ndim = k + 1;
    return v;
}

nad_tensor *nad_tensor_reshape(const nad_tensor *t, int32_t ndim, const int64_t *sizes)
{
    if (nad_check_tensor("tensor_reshape", "t", t) ||
        check_sizes("tensor_reshape", ndim, sizes) ||
        nad_check_contig("tensor_reshape", "t", t))
        return NULL;
    nad_tensor tmp = {0};
    set_contiguous(&tmp, ndim, sizes);
    if (nad_numel(&tmp) != nad_numel(t)) {
        char b1[96], b2[96];
        nad_fail(NAD_EINVAL, "tensor_reshape: %s has %lld elements, %s has %lld",
                 nad_shape_str(t, b1, sizeof b1), (long long)nad_numel(t),
                 nad_shape_str(&tmp, b2, sizeof b2), (long long)nad_numel(&tmp));
        return NULL;
    }
    nad_tensor *v = nad_tensor_view(t);
    if (!v) return NULL;
    set_contiguous(v, ndim, sizes);
    return v;
}

int nad_tensor_resize(nad_tensor *t, int32_t ndim, const int64_t *sizes)
{
    int rc = nad_check_tensor("tensor_resize", "t", t);
    if (rc || (rc = check_sizes("tensor_resize", ndim, sizes))) return rc;
    if (t->ndim == ndim) {
        bool same = true;
        for (int32_t i = 0; i < ndim; i++) same = same && t->size[i] == sizes[i];
        if (same) return 0;
    }
    if (t->offset != 0 || !nad_is_contiguous(t))
        return nad_fail(NAD_ESTATE, "tensor_resize: t is a strided or offset view; only a "
                                    "tensor that owns its storage from the start can be resized");
    nad_tensor tmp = {0};
    set_contiguous(&tmp, ndim, sizes);
    int64_t need = nad_numel(&tmp);
    if (need > t->storage->capacity) {
        /* grow the storage in place: other views of it (kept by callers between uses) see
           the new, zeroed memory rather than freed memory */
        float *data = nad_alloc_zeroed((size_t)need * sizeof(float));
        if (!data) return nad_fail(NAD_ENOMEM, "tensor_resize: out of memory");
        nad_free_aligned(t->storage->data);
        storage_frees++;
        t->storage->data = data;
        t->storage->capacity = need;
    }
    set_contiguous(t, ndim, sizes);
    return 0;
}

int nad_resize_as(nad_tensor *y, const nad_tensor *like)
{
    return nad_tensor_resize(y, like->ndim, like->size);
}

int32_t nad_tensor_ndim(const nad_tensor *t) { return t->ndim; }
int64_t nad_tensor_size(const nad_tensor *t, int32_t d)
{
    return d >= 0 && d < t->ndim ? t->size[d] : -1;
}
int64_t nad_tensor_stride(const nad_tensor *t, int32_t d)
{
    return d >= 0 && d < t->ndim ? t->stride[d] : -1;
}
int64_t nad_tensor_numel(const nad_tensor *t) { return nad_numel(t); }
int32_t nad_tensor_is_contiguous(const nad_tensor *t) { return nad_is_contiguous(t); }
int32_t nad_tensor_same_storage(const nad_tensor *a, const nad_tensor *b)
{
    return a && b && a->storage == b->storage;
}
float *nad_tensor_data(const nad_tensor *t) { return nad_data(t); }

bool nad_is_contiguous(const nad_tensor *t)
{
    int64_t st = 1;
    for (int32_t i = t->ndim - 1; i >= 0; i--) {
        if (t->size[i] != 1 && t->stride[i] != st) return false;
        st *= t->size[i];
    }
    return true;
}

bool nad_same_shape(const nad_tensor *a, const nad_tensor *b)
{
    if (a->ndim != b->ndim) return false;
    for (int32_t i = 0; i < a->ndim; i++)
        if (a->size[i] != b->size[i]) return false;
    return true;
}

const char *nad_shape_str(const nad_tensor *t, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int32_t i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)t->size[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

int nad_check_tensor(const char *fn, const char *name, const nad_tensor *t)
{
    return t ? 0 : nad_fail(NAD_EINVAL, "%s: %s is NULL", fn, name);
}

int nad_check_contig(const char *fn, const char *name, const nad_tensor *t)
{
    if (!t) return nad_fail(NAD_EINVAL, "%s: %s is NULL", fn, name);
    return nad_is_contiguous(t)
               ? 0
               : nad_fail(NAD_EINVAL, "%s: %s must be contiguous (copy it first)", fn, name);
}

int nad_check_ndim(const char *fn, const char *name, const nad_tensor *t, int32_t ndim)
{
    if (!t) return nad_fail(NAD_EINVAL, "%s: %s is NULL", fn, name);
    return t->ndim == ndim
               ? 0
               : nad_fail(NAD_EINVAL, "%s: %s has %d dims, expected %d", fn, name, t->ndim, ndim);
}

int nad_check_same_shape(const char *fn, const char *an, const nad_tensor *a, const char *bn,
                         const nad_tensor *b)
{
    if (!a || !b) return nad_fail(NAD_EINVAL, "%s: %s is NULL", fn, a ? bn : an);
    if (nad_same_shape(a, b)) return 0;
    char b1[96], b2[96];
    return nad_fail(NAD_EINVAL, "%s: %s is %s but %s is %s", fn, an,
                    nad_shape_str(a, b1, sizeof b1), bn, nad_shape_str(b, b2, sizeof b2));
}

void nad_rowiter_init_strides(nad_rowiter *it, const nad_tensor *shape, const int64_t *stride)
{
    int32_t nd = shape->ndim;
    it->len = nd ? shape->size[nd - 1] : 1;
    it->inner = nd ? stride[nd - 1] : 1;
    it->rows = 1;
    /* outer dims that are one run of rows merge (and size-1 dims drop), so a channel slice
       of a contiguous map walks as one dim and row offsets need no divisions */
    int32_t k = 0;
    for (int32_t i = 0; i < nd - 1; i++) {
        it->rows *= shape->size[i];
        if (shape->size[i] == 1) continue;
        if (k > 0 && it->stride[k - 1] == stride[i] * shape->size[i]) {
            it->size[k - 1] *= shape->size[i];
            it->stride[k - 1] = stride[i];
        } else {
            it->size[k] = shape->size[i];
            it->stride[k++] = stride[i];
        }
    }
    it->ndim = k;
    if (it->len == 0) it->rows = 0;
}

void nad_rowiter_init(nad_rowiter *it, const nad_tensor *t)
{
    nad_rowiter_init_strides(it, t, t->stride);
}

int64_t nad_rowiter_offset(const nad_rowiter *it, int64_t row)
{
    if (it->ndim <= 1) return it->ndim ? row * it->stride[0] : 0;
    int64_t off = 0;
    for (int32_t i = it->ndim - 1; i >= 0; i--) {
        off += (row % it->size[i]) * it->stride[i];
        row /= it->size[i];
    }
    return off;
}

int nad_tensor_copy(nad_tensor *dst, const nad_tensor *src)
{
    int rc = nad_check_same_shape("tensor_copy", "dst", dst, "src", src);
    if (rc) return rc;
    if (nad_is_contiguous(dst) && nad_is_contiguous(src)) {
        memmove(nad_data(dst), nad_data(src), (size_t)nad_numel(dst) * sizeof(float));
        return 0;
    }
    nad_rowiter di, si;
    nad_rowiter_init(&di, dst);
    nad_rowiter_init(&si, src);
    float *d = nad_data(dst);
    const float *s = nad_data(src);
    for (int64_t r = 0; r < di.rows; r++) {
        float *dr = d + nad_rowiter_offset(&di, r);
        const float *sr = s + nad_rowiter_offset(&si, r);
        for (int64_t j = 0; j < di.len; j++) dr[j * di.inner] = sr[j * si.inner];
    }
    return 0;
}

int nad_tensor_fill(nad_tensor *t, float v)
{
    int rc = nad_check_tensor("tensor_fill", "t", t);
    if (rc) return rc;
    nad_rowiter it;
    nad_rowiter_init(&it, t);
    float *d = nad_data(t);
    for (int64_t r = 0; r < it.rows; r++) {
        float *dr = d + nad_rowiter_offset(&it, r);
        for (int64_t j = 0; j < it.len; j++) dr[j * it.inner] = v;
    }
    return 0;
}

double nad_tensor_sum(const nad_tensor *t)
{
    if (!t) return 0;
    nad_rowiter it;
    nad_rowiter_init(&it, t);
    const float *d = nad_data(t);
    double acc = 0;
    for (int64_t r = 0; r < it.rows; r++) {
        const float *dr = d + nad_rowiter_offset(&it, r);
        for (int64_t j = 0; j < it.len; j++) acc += dr[j * it.inner];
    }
    return acc;
}
