/* parallel.c: the core's own parallel loops (nad_parallel_for in internal.h).

   Why not an OpenMP region: a region cannot end before every thread of its team has arrived
   at its closing barrier, so each one costs the sleeping worker's wake-up (about 20 us on the
   2-core VMs we measure on) twice: the worker starts late, and the calling thread, done with
   its static half, sleeps at the barrier until the worker arrives and wakes it again (an empty
   region: 44 us, bench/bench_omp_region.c). Here the calling thread starts on the loop at
   once and takes chunks until none is left; workers take chunks from the same counter as
   they wake; the loop ends when every claimed chunk is done. A worker that wakes after the
   last chunk was taken finds nothing and sleeps again: the caller never waits for a wake-up.

   Workers wait passively (a condition variable): on a shared machine a spinning worker takes
   the core its caller needs (lua/autonad/ffi.lua). The caller waits only for chunks already
   running on another thread, spinning, and yielding the core after a while in case that
   thread was descheduled.

   One loop at a time: a loop started while another runs (a second application thread) runs in
   its caller's thread, and so does a loop started inside a chunk, where the thread count is
   1 (below). */
#include "internal.h"
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

enum { MAX_WORKERS = 255, CHUNKS_PER_THREAD = 8, SPINS_BEFORE_YIELD = 4096 };

static struct {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    uint64_t wake_seq; /* under mu: bumped for each loop */
    int workers;       /* started so far (under mu) */
    atomic_bool busy;  /* a loop is running */
    /* the current loop: written by its caller before `ticket` is published, read by a thread
       only after it claimed a chunk, so they hold still while read */
    nad_range_fn fn;
    void *ctx;
    int64_t n;
    atomic_llong chunks; /* also read, relaxed, by a worker that has not claimed yet */
    atomic_int helpers;   /* workers allowed to take part (the thread count minus one) */
    /* generation in the high 32 bits, next unclaimed chunk in the low 32 */
    _Atomic uint64_t ticket;
    atomic_llong done; /* chunks finished */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

/* Take and run chunks of generation gen until none is left. */
static void take_chunks(uint32_t gen, int thread)
{
    uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    for (;;) {
        int64_t c = atomic_load_explicit(&pool.chunks, memory_order_relaxed);
        if ((uint32_t)(t >> 32) != gen || (int64_t)(uint32_t)t >= c) return;
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1,
                                                   memory_order_acq_rel, memory_order_acquire))
            continue;
        int64_t i = (uint32_t)t;
        pool.fn(pool.ctx, pool.n * i / c, pool.n * (i + 1) / c, thread);
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
        t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg)
{
    int index = (int)(intptr_t)arg; /* 0-based among the workers */
    omp_set_num_threads(1); /* see nad_parallel_for */
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        while (pool.wake_seq == seen) pthread_cond_wait(&pool.wake, &pool.mu);
        seen = pool.wake_seq;
        pthread_mutex_unlock(&pool.mu);
        uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        if (index < atomic_load_explicit(&pool.helpers, memory_order_relaxed))
            take_chunks((uint32_t)(t >> 32), index + 1);
    }
    return NULL;
}

/* A child of fork() has none of the workers: it starts its own. */
static void after_fork_in_child(void)
{
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pool.workers = 0;
    atomic_store(&pool.busy, false);
}

static void register_fork_handler(void) { pthread_atfork(NULL, NULL, after_fork_in_child); }

/* Start workers up to `want`; fewer when the system refuses threads (the loop still runs). */
static int ensure_workers(int want)
{
    if (want > MAX_WORKERS) want = MAX_WORKERS;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
    pthread_mutex_lock(&pool.mu);
    while (pool.workers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &attr, worker_main, (void *)(intptr_t)pool.workers);
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.workers++;
    }
    int have = pool.workers;
    pthread_mutex_unlock(&pool.mu);
    return have < want ? have : want;
}

void nad_parallel_for(int64_t n, bool parallel, nad_range_fn fn, void *ctx)
{
    if (n <= 0) return;
    int threads = parallel && n > 1 ? nad_get_num_threads() : 1;
    bool expected = false;
    if (threads > 1 && !atomic_compare_exchange_strong(&pool.busy, &expected, true)) threads = 1;
    if (threads == 1) {
        fn(ctx, 0, n, 0);
        return;
    }
    int helpers = ensure_workers(threads - 1);
    int64_t chunks = (int64_t)(helpers + 1) * CHUNKS_PER_THREAD;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    if (chunks > n) chunks = n;
    atomic_store_explicit(&pool.chunks, chunks, memory_order_relaxed);
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.helpers, helpers, memory_order_relaxed);
    uint32_t gen = (uint32_t)(atomic_load_explicit(&pool.ticket, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&pool.ticket, (uint64_t)gen << 32, memory_order_release);
    if (helpers > 0) {
        pthread_mutex_lock(&pool.mu);
        pool.wake_seq++;
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.mu);
    }
    /* inside a chunk the thread count is 1: nested loops, OpenMP loops and OpenBLAS (which
       threads by the calling thread's OpenMP thread count) run in its thread, as they did
       inside an OpenMP region */
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    take_chunks(gen, 0);
    omp_set_num_threads(saved);
    /* only chunks another thread is running are left */
    for (int spins = 0;
         atomic_load_explicit(&pool.done, memory_order_acquire) < chunks; spins++) {
        if (spins < SPINS_BEFORE_YIELD) cpu_relax();
        else sched_yield();
    }
    atomic_store_explicit(&pool.busy, false, memory_order_release);
}
