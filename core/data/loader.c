/* loader.c: the batch loader. pthread workers decode, augment and resize samples into a ring
   of preallocated batches ahead of the caller (lua/autonad/data/loader.lua drives it).
   Work is handed out one sample at a time, in epoch order, so two threads fill one batch. */
#define _POSIX_C_SOURCE 200809L
#include "internal.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { ERR_LEN = 1024 };

typedef struct slot {
    nad_tensor *images;  /* [B,H,W,C] */
    nad_tensor *targets; /* [B,H,W] or [B] */
    int64_t batch;       /* the batch it holds (or is being filled with); -1 when free */
    int32_t count;       /* samples in that batch */
    int32_t done;        /* samples finished */
    int32_t err_pos;     /* position in the batch of the first failed sample, -1 if none */
    int err_code;
    char err[ERR_LEN];
} slot;

typedef struct worker {
    struct nad_loader *l;
    pthread_t thread;
    nad_tensor *img, *mask;   /* decoded sample, reused */
    nad_tensor *aimg, *amask; /* augmented sample */
    nad_workspace *ws;
} worker;

typedef struct sample {
    char *image, *mask; /* image NULL: generated */
    int32_t mask_threshold, mask_value, label;
    int64_t synth_index;
} sample;

struct nad_loader {
    nad_loader_params p;
    nad_augment_params augment; /* valid when p.augment != NULL (then it points here) */
    nad_synth_params synth;     /* likewise p.synth */
    int32_t n_samples;
    sample *samples;
    int32_t n_workers;
    worker *workers;
    slot *slots;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* workers wait for work */
    pthread_cond_t ready_cv; /* the caller waits for a batch, or for the workers to be idle */
    int stop;

    int epoch_active;
    int64_t epoch;
    int32_t *order;
    int64_t n_items;   /* samples to deliver this epoch */
    int64_t n_batches;
    int64_t next_item; /* next position to hand out */
    int64_t consumed;  /* batches delivered */
    int32_t active;    /* workers busy on a sample */
};

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The stream of sample p of an epoch: a function of (seed, epoch, p) only. */
static void sample_rng(nad_rng *r, uint64_t seed, int64_t epoch, int64_t p)
{
    nad_rng_init(r, mix64(mix64(mix64(seed) ^ (uint64_t)epoch) ^ (uint64_t)p));
}

/* dst[oh,ow,c] = src resized to the network's input (bilinear; nearest for masks, at the same
   pixel centres), a plain copy when the sizes match. */
static void write_image(const float *src, int64_t h, int64_t w, int64_t c, float *dst,
                        int64_t oh, int64_t ow)
{
    if (h == oh && w == ow) memcpy(dst, src, (size_t)(h * w * c) * sizeof(float));
    else nad_resample_bilinear(src, h, w, c, dst, oh, ow);
}

static void write_mask(const float *src, int64_t h, int64_t w, float *dst, int64_t oh, int64_t ow)
{
    if (h == oh && w == ow) memcpy(dst, src, (size_t)(h * w) * sizeof(float));
    else nad_resample_nearest(src, h, w, dst, oh, ow);
}

/* A generated sample into wk->img [H,W,channels] and wk->mask [H,W]; its label in *label. */
static int generate(worker *wk, const sample *smp, int32_t *label)
{
    const nad_loader *l = wk->l;
    nad_tensor *grey = l->p.channels == 1 ? wk->img : wk->aimg;
    int rc = nad_synth_sample(wk->ws, &l->synth, l->p.synth_seed, smp->synth_index, grey,
                              wk->mask, label);
    if (rc || l->p.channels == 1) return rc;
    int64_t h = grey->size[0], w = grey->size[1], sz[3] = {h, w, 3};
    if ((rc = nad_tensor_resize(wk->img, 3, sz))) return rc;
    const float *g = nad_data(grey);
    float *o = nad_data(wk->img);
    for (int64_t i = 0; i < h * w; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = g[i];
    return 0;
}

/* Decodes or generates one sample, augments it and writes it at position j of slot s. The
   error, if any, stays in this thread's nad_last_error(). */
static int process(worker *wk, const sample *smp, nad_rng *rng, slot *s, int32_t j)
{
    const nad_loader *l = wk->l;
    const nad_loader_params *p = &l->p;
    int32_t label = smp->label;
    int rc;
    if (!smp->image) {
        if ((rc = generate(wk, smp, &label))) return rc;
    } else {
        if ((rc = nad_image_load(smp->image, p->channels, wk->img))) return rc;
        int64_t h = wk->img->size[0], w = wk->img->size[1];
        if (p->segmentation && smp->mask) {
            rc = nad_mask_load(smp->mask, smp->mask_threshold, smp->mask_value, wk->mask);
            if (rc) return rc;
            if (wk->mask->size[0] != h || wk->mask->size[1] != w)
                return nad_fail(NAD_EFORMAT, "loader: mask %s is %lldx%lld, image %s is %lldx%lld",
                                smp->mask, (long long)wk->mask->size[0],
                                (long long)wk->mask->size[1], smp->image, (long long)h,
                                (long long)w);
        } else if (p->segmentation) {
            int64_t sz[2] = {h, w};
            if ((rc = nad_tensor_resize(wk->mask, 2, sz))) return rc;
            memset(nad_data(wk->mask), 0, (size_t)(h * w) * sizeof(float));
        }
    }
    nad_tensor *img = wk->img, *mask = p->segmentation ? wk->mask : NULL;
    if (p->augment) {
        rc = nad_augment_apply(wk->ws, rng, &l->augment, img, mask, wk->aimg,
                               mask ? wk->amask : NULL);
        if (rc) return rc;
        img = wk->aimg;
        mask = mask ? wk->amask : NULL;
    }
    int64_t oh = p->height, ow = p->width, c = p->channels;
    write_image(nad_data(img), img->size[0], img->size[1], c,
                nad_data(s->images) + j * oh * ow * c, oh, ow);
    if (p->segmentation)
        write_mask(nad_data(mask), mask->size[0], mask->size[1],
                   nad_data(s->targets) + j * oh * ow, oh, ow);
    else
        nad_data(s->targets)[j] = (float)label;
    return 0;
}

static int work_available(const nad_loader *l)
{
    return l->epoch_active && l->next_item < l->n_items &&
           l->next_item / l->p.batch_size < l->consumed + l->p.prefetch;
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    nad_loader *l = wk->l;
    const int64_t B = l->p.batch_size;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !work_available(l)) pthread_cond_wait(&l->work_cv, &l->mu);
        if (l->stop) break;
        int64_t pos = l->next_item++, b = pos / B;
        int32_t j = (int32_t)(pos % B);
        slot *s = &l->slots[b % l->p.prefetch];
        if (j == 0) {
            int64_t left = l->n_items - b * B;
            s->batch = b;
            s->count = (int32_t)(left < B ? left : B);
            s->done = 0;
            s->err_pos = -1;
            s->err_code = 0;
            s->err[0] = 0;
        }
        const sample *smp = &l->samples[l->order[pos]];
        nad_rng rng;
        sample_rng(&rng, l->p.seed, l->epoch, pos);
        l->active++;
        pthread_mutex_unlock(&l->mu);

        int rc = process(wk, smp, &rng, s, j);

        pthread_mutex_lock(&l->mu);
        l->active--;
        /* keep the failure of the lowest position, so the message does not depend on timing */
        if (rc && (s->err_pos < 0 || j < s->err_pos)) {
            s->err_pos = j;
            s->err_code = rc;
            snprintf(s->err, ERR_LEN, "%s", nad_last_error());
        }
        s->done++;
        if (s->done == s->count || l->active == 0) pthread_cond_broadcast(&l->ready_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* The augmentation parameters checked once, up front, by a dry run on a small image, so a
   bad value fails nad_loader_new rather than every batch. */
static int validate_augment(const nad_loader_params *p)
{
    int64_t isz[3] = {8, 8, p->channels}, msz[2] = {8, 8}, zero = 0;
    nad_tensor *img = nad_tensor_new(3, isz), *mask = nad_tensor_new(2, msz);
    nad_tensor *io = nad_tensor_new(1, &zero), *mo = nad_tensor_new(1, &zero);
    nad_workspace *ws = nad_workspace_new(0);
    nad_rng rng;
    nad_rng_init(&rng, 0);
    int rc = img && mask && io && mo && ws
                 ? nad_augment_apply(ws, &rng, p->augment, img, p->segmentation ? mask : NULL,
                                     io, p->segmentation ? mo : NULL)
                 : nad_fail(NAD_ENOMEM, "loader_new: out of memory");
    if (rc) {
        char msg[ERR_LEN];
        snprintf(msg, sizeof msg, "%s", nad_last_error());
        nad_fail(rc, "loader_new: augment: %s", msg);
    }
    nad_tensor_free(img);
    nad_tensor_free(mask);
    nad_tensor_free(io);
    nad_tensor_free(mo);
    nad_workspace_free(ws);
    return rc;
}

/* Likewise the generator's parameters, by generating sample 0. */
static int validate_synth(const nad_loader_params *p)
{
    int64_t zero = 0;
    nad_tensor *img = nad_tensor_new(1, &zero), *mask = nad_tensor_new(1, &zero);
    nad_workspace *ws = nad_workspace_new(0);
    int32_t label;
    int rc = img && mask && ws ? nad_synth_sample(ws, p->synth, p->synth_seed, 0, img, mask, &label)
                               : nad_fail(NAD_ENOMEM, "loader_new: out of memory");
    if (rc) {
        char msg[ERR_LEN];
        snprintf(msg, sizeof msg, "%s", nad_last_error());
        nad_fail(rc, "loader_new: synth: %s", msg);
    }
    nad_tensor_free(img);
    nad_tensor_free(mask);
    nad_workspace_free(ws);
    return rc;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static void free_parts(nad_loader *l)
{
    if (l->samples)
        for (int32_t i = 0; i < l->n_samples; i++) {
            free(l->samples[i].image);
            free(l->samples[i].mask);
        }
    free(l->samples);
    if (l->slots)
        for (int32_t i = 0; i < l->p.prefetch; i++) {
            nad_tensor_free(l->slots[i].images);
            nad_tensor_free(l->slots[i].targets);
        }
    free(l->slots);
    if (l->workers)
        for (int32_t i = 0; i < l->p.num_threads; i++) {
            nad_tensor_free(l->workers[i].img);
            nad_tensor_free(l->workers[i].mask);
            nad_tensor_free(l->workers[i].aimg);
            nad_tensor_free(l->workers[i].amask);
            nad_workspace_free(l->workers[i].ws);
        }
    free(l->workers);
    free(l->order);
    free(l);
}

nad_loader *nad_loader_new(const nad_loader_params *p, int32_t n, const nad_loader_sample *samples)
{
    if (!p) return nad_fail(NAD_EINVAL, "loader_new: params is NULL"), NULL;
    if (p->batch_size < 1 || p->height < 1 || p->width < 1 || p->num_threads < 1 ||
        p->prefetch < 1)
        return nad_fail(NAD_EINVAL,
                        "loader_new: batch_size %d, height %d, width %d, num_threads %d and "
                        "prefetch %d must all be >= 1",
                        p->batch_size, p->height, p->width, p->num_threads, p->prefetch),
               NULL;
    if (p->channels != 1 && p->channels != 3)
        return nad_fail(NAD_EINVAL, "loader_new: channels is %d, expected 1 or 3", p->channels),
               NULL;
    if (n < 0 || (n > 0 && !samples))
        return nad_fail(NAD_EINVAL, "loader_new: %d samples at %p", n, (const void *)samples),
               NULL;
    for (int32_t i = 0; i < n; i++)
        if (!samples[i].image && !p->synth)
            return nad_fail(NAD_EINVAL, "loader_new: sample %d has no image path and no "
                            "generator is given", i), NULL;
    if (p->augment && validate_augment(p) != 0) return NULL;
    if (p->synth && validate_synth(p) != 0) return NULL;

    nad_loader *l = calloc(1, sizeof *l);
    if (!l) return nad_fail(NAD_ENOMEM, "loader_new: out of memory"), NULL;
    l->p = *p;
    if (p->augment) {
        l->augment = *p->augment;
        l->p.augment = &l->augment;
    }
    if (p->synth) {
        l->synth = *p->synth;
        l->p.synth = &l->synth;
    }
    l->n_samples = n;
    l->samples = calloc((size_t)(n > 0 ? n : 1), sizeof *l->samples);
    l->slots = calloc((size_t)p->prefetch, sizeof *l->slots);
    l->workers = calloc((size_t)p->num_threads, sizeof *l->workers);
    int ok = l->samples && l->slots && l->workers;
    for (int32_t i = 0; ok && i < n; i++) {
        sample *s = &l->samples[i];
        s->image = samples[i].image ? dup_str(samples[i].image) : NULL;
        s->mask = samples[i].mask ? dup_str(samples[i].mask) : NULL;
        s->synth_index = samples[i].synth_index;
        s->mask_threshold = samples[i].mask_threshold;
        s->mask_value = samples[i].mask_value;
        s->label = samples[i].label;
        ok = (s->image || !samples[i].image) && (s->mask || !samples[i].mask);
    }
    int64_t isz[4] = {p->batch_size, p->height, p->width, p->channels};
    int64_t tsz[3] = {p->batch_size, p->height, p->width};
    for (int32_t i = 0; ok && i < p->prefetch; i++) {
        l->slots[i].batch = -1;
        l->slots[i].images = nad_tensor_new(4, isz);
        l->slots[i].targets = nad_tensor_new(p->segmentation ? 3 : 1, tsz);
        ok = l->slots[i].images && l->slots[i].targets;
    }
    int64_t zero = 0;
    for (int32_t i = 0; ok && i < p->num_threads; i++) {
        l->workers[i].l = l;
        l->workers[i].img = nad_tensor_new(1, &zero);
        l->workers[i].mask = nad_tensor_new(1, &zero);
        l->workers[i].aimg = nad_tensor_new(1, &zero);
        l->workers[i].amask = nad_tensor_new(1, &zero);
        l->workers[i].ws = nad_workspace_new(0);
        ok = l->workers[i].img && l->workers[i].mask && l->workers[i].aimg &&
             l->workers[i].amask && l->workers[i].ws;
    }
    if (!ok) {
        free_parts(l);
        return nad_fail(NAD_ENOMEM, "loader_new: out of memory"), NULL;
    }
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->work_cv, NULL);
    pthread_cond_init(&l->ready_cv, NULL);
    for (int32_t i = 0; i < p->num_threads; i++) {
        if (pthread_create(&l->workers[i].thread, NULL, worker_main, &l->workers[i]) != 0) {
            l->n_workers = i;
            nad_loader_free(l);
            return nad_fail(NAD_ENOMEM, "loader_new: cannot start thread %d", i), NULL;
        }
        l->n_workers = i + 1;
    }
    return l;
}

void nad_loader_free(nad_loader *l)
{
    if (!l) return;
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_cond_broadcast(&l->ready_cv);
    pthread_mutex_unlock(&l->mu);
    for (int32_t i = 0; i < l->n_workers; i++) pthread_join(l->workers[i].thread, NULL);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->work_cv);
    pthread_cond_destroy(&l->ready_cv);
    free_parts(l);
}

int nad_loader_start(nad_loader *l, int64_t epoch, int32_t n, const int32_t *order)
{
    if (!l) return nad_fail(NAD_EINVAL, "loader_start: loader is NULL");
    if (n < 0 || (n > 0 && !order))
        return nad_fail(NAD_EINVAL, "loader_start: %d positions at %p", n, (const void *)order);
    for (int32_t i = 0; i < n; i++)
        if (order[i] < 0 || order[i] >= l->n_samples)
            return nad_fail(NAD_EINVAL, "loader_start: order[%d] = %d is outside 0..%d", i,
                            order[i], l->n_samples - 1);
    int32_t *copy = malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    if (!copy) return nad_fail(NAD_ENOMEM, "loader_start: out of memory");
    if (n > 0) memcpy(copy, order, (size_t)n * sizeof *copy);

    pthread_mutex_lock(&l->mu);
    /* let the samples in progress finish before their slots and order go away */
    l->epoch_active = 0;
    while (l->active > 0) pthread_cond_wait(&l->ready_cv, &l->mu);
    free(l->order);
    l->order = copy;
    int64_t B = l->p.batch_size;
    l->n_batches = l->p.drop_last ? n / B : (n + B - 1) / B;
    l->n_items = l->p.drop_last ? l->n_batches * B : n;
    l->epoch = epoch;
    l->next_item = 0;
    l->consumed = 0;
    for (int32_t i = 0; i < l->p.prefetch; i++) l->slots[i].batch = -1;
    l->epoch_active = 1;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    return 0;
}

int64_t nad_loader_num_batches(const nad_loader *l) { return l ? l->n_batches : 0; }

int nad_loader_next(nad_loader *l, nad_tensor *images, nad_tensor *targets, double *wait_seconds)
{
    if (wait_seconds) *wait_seconds = 0;
    if (!l || !images || !targets)
        return nad_fail(NAD_EINVAL, "loader_next: loader, images and targets must not be NULL");
    pthread_mutex_lock(&l->mu);
    if (!l->epoch_active || l->consumed >= l->n_batches) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    int64_t b = l->consumed;
    slot *s = &l->slots[b % l->p.prefetch];
    double t0 = now_seconds();
    while (!l->stop && !(s->batch == b && s->done == s->count))
        pthread_cond_wait(&l->ready_cv, &l->mu);
    if (wait_seconds) *wait_seconds = now_seconds() - t0;
    if (l->stop) {
        pthread_mutex_unlock(&l->mu);
        return nad_fail(NAD_ESTATE, "loader_next: the loader is closing");
    }
    pthread_mutex_unlock(&l->mu);

    /* the slot stays ours until consumed moves on: the workers cannot reuse it meanwhile */
    int rc = 0;
    int32_t count = s->count;
    if (s->err_pos >= 0) {
        rc = nad_fail(s->err_code, "loader_next: batch %lld, sample %lld: %s", (long long)b,
                      (long long)(b * l->p.batch_size + s->err_pos), s->err);
    } else {
        int64_t isz[4] = {count, l->p.height, l->p.width, l->p.channels};
        int64_t tsz[3] = {count, l->p.height, l->p.width};
        int32_t tnd = l->p.segmentation ? 3 : 1;
        rc = nad_tensor_resize(images, 4, isz);
        if (!rc) rc = nad_tensor_resize(targets, tnd, tsz);
        if (!rc) {
            memcpy(nad_data(images), nad_data(s->images),
                   (size_t)nad_numel(images) * sizeof(float));
            memcpy(nad_data(targets), nad_data(s->targets),
                   (size_t)nad_numel(targets) * sizeof(float));
            rc = count;
        }
    }
    pthread_mutex_lock(&l->mu);
    l->consumed++;
    pthread_cond_broadcast(&l->work_cv);
    pthread_mutex_unlock(&l->mu);
    return rc;
}
