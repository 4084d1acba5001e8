/* test_parallel.c: the core's parallel loop (nad_parallel_for, core/parallel.c): every index
   once, at 1 to 4 threads and for loops shorter than the thread count; thread slots in range
   and never shared by two running ranges; the workers take part; nested loops and loops below
   the threshold run whole in the calling thread, and a range sees one thread (so OpenBLAS
   and OpenMP run in its thread); two application threads at once; a forked child. */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include "check.h"
#include "internal.h"
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct visits {
    atomic_int *count;      /* per index */
    atomic_int busy[8];     /* per thread slot: a range is running there */
    atomic_int ranges[8];   /* per thread slot: ranges run */
    atomic_int bad_slot;    /* a slot out of range, or two ranges in one slot at once */
    int threads;
    long sleep_ns;          /* per range, so that workers wake before the caller is done */
} visits;

static void visit(void *ctx, int64_t begin, int64_t end, int thread)
{
    visits *v = ctx;
    if (thread < 0 || thread >= v->threads || atomic_exchange(&v->busy[thread], 1)) {
        atomic_store(&v->bad_slot, 1);
        return;
    }
    atomic_fetch_add(&v->ranges[thread], 1);
    if (v->sleep_ns) nanosleep(&(struct timespec){0, v->sleep_ns}, NULL);
    for (int64_t i = begin; i < end; i++) atomic_fetch_add(&v->count[i], 1);
    atomic_store(&v->busy[thread], 0);
}

static visits *run_loop(int64_t n, int threads, long sleep_ns)
{
    visits *v = calloc(1, sizeof *v);
    v->count = calloc((size_t)n + 1, sizeof *v->count);
    v->threads = threads, v->sleep_ns = sleep_ns;
    nad_set_num_threads(threads);
    nad_parallel_for(n, true, visit, v);
    return v;
}

static void expect_each_once(const visits *v, int64_t n)
{
    cr_assert_eq(atomic_load(&v->bad_slot), 0, "a thread slot out of range or shared");
    for (int64_t i = 0; i < n; i++)
        cr_assert_eq(atomic_load(&v->count[i]), 1, "n = %lld, %d threads: index %lld visited %d times",
                     (long long)n, v->threads, (long long)i, atomic_load(&v->count[i]));
}

static void free_visits(visits *v)
{
    free(v->count);
    free(v);
}

Test(parallel, every_index_once)
{
    static const int64_t ns[] = {1, 2, 3, 7, 17, 64, 1000, 100003};
    for (int threads = 1; threads <= 4; threads++)
        for (size_t i = 0; i < sizeof ns / sizeof *ns; i++)
            for (int rep = 0; rep < 20; rep++) {
                visits *v = run_loop(ns[i], threads, 0);
                expect_each_once(v, ns[i]);
                free_visits(v);
            }
    nad_set_num_threads(1);
}

/* the caller waits for ranges still running on a worker: each range sleeps, so the workers are
   awake and take some, and the counts are read only after the loop returned */
Test(parallel, workers_take_part_and_finish)
{
    for (int threads = 2; threads <= 4; threads++) {
        visits *v = run_loop(64, threads, 1000000);
        expect_each_once(v, 64);
        int by_workers = 0;
        for (int t = 1; t < threads; t++) by_workers += atomic_load(&v->ranges[t]);
        cr_assert_gt(by_workers, 0, "%d threads: no range ran on a worker", threads);
        free_visits(v);
    }
    nad_set_num_threads(1);
}

static void one_call(void *ctx, int64_t begin, int64_t end, int thread)
{
    int64_t *seen = ctx; /* calls, begin, end, thread */
    seen[0]++, seen[1] = begin, seen[2] = end, seen[3] = thread;
}

Test(parallel, below_threshold_in_the_calling_thread)
{
    nad_set_num_threads(2);
    int64_t seen[4] = {0};
    nad_parallel_for(1000, false, one_call, seen);
    cr_assert(seen[0] == 1 && seen[1] == 0 && seen[2] == 1000 && seen[3] == 0,
              "%lld calls, last [%lld, %lld) thread %lld", (long long)seen[0], (long long)seen[1],
              (long long)seen[2], (long long)seen[3]);
    nad_parallel_for(0, true, one_call, seen);
    cr_assert_eq(seen[0], 1, "an empty loop called fn");
    nad_set_num_threads(1);
}

/* a loop inside a range runs whole in that range's thread */
typedef struct nest {
    atomic_int bad, ranges;
} nest;

static void inner(void *ctx, int64_t begin, int64_t end, int thread)
{
    int64_t *seen = ctx;
    seen[0]++, seen[1] = begin, seen[2] = end, seen[3] = thread;
}

static void outer(void *ctx, int64_t begin, int64_t end, int thread)
{
    nest *s = ctx;
    int64_t seen[4] = {0};
    nad_parallel_for(500, true, inner, seen);
    if (!(seen[0] == 1 && seen[1] == 0 && seen[2] == 500 && seen[3] == 0)) atomic_store(&s->bad, 1);
    atomic_fetch_add(&s->ranges, 1);
}

Test(parallel, nested_loops_run_whole)
{
    nad_set_num_threads(2);
    nest s = {0};
    nad_parallel_for(40, true, outer, &s);
    cr_assert_eq(atomic_load(&s.bad), 0, "a nested loop was split");
    cr_assert_gt(atomic_load(&s.ranges), 0);
    nad_set_num_threads(1);
}

static void *app_thread(void *arg)
{
    nad_set_num_threads(2); /* the thread count is per application thread */
    for (int rep = 0; rep < 200; rep++) {
        visits *v = run_loop(999, 2, rep % 50 == 0 ? 100000 : 0);
        for (int64_t i = 0; i < 999; i++)
            if (atomic_load(&v->count[i]) != 1 || atomic_load(&v->bad_slot)) {
                free_visits(v);
                return (void *)1;
            }
        free_visits(v);
    }
    return NULL;
}

Test(parallel, two_application_threads)
{
    pthread_t a, b;
    void *ra, *rb;
    cr_assert_eq(pthread_create(&a, NULL, app_thread, NULL), 0);
    cr_assert_eq(pthread_create(&b, NULL, app_thread, NULL), 0);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    cr_assert(ra == NULL && rb == NULL, "a loop missed or repeated an index");
}

static void thread_count(void *ctx, int64_t begin, int64_t end, int thread)
{
    atomic_int *bad = ctx;
    if (nad_get_num_threads() != 1) atomic_store(bad, 1);
    nanosleep(&(struct timespec){0, 200000}, NULL);
}

Test(parallel, a_range_sees_one_thread)
{
    nad_set_num_threads(2);
    atomic_int bad = 0;
    nad_parallel_for(16, true, thread_count, &bad);
    cr_assert_eq(atomic_load(&bad), 0, "a range saw more than one thread");
    cr_assert_eq(nad_get_num_threads(), 2, "the caller's thread count was not restored");
    nad_set_num_threads(1);
}

/* the child of a fork has none of the parent's workers and starts its own */
Test(parallel, forked_child)
{
    visits *v = run_loop(64, 2, 100000); /* the parent's workers exist */
    expect_each_once(v, 64);
    free_visits(v);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        visits *c = run_loop(64, 2, 1000000);
        int ok = atomic_load(&c->bad_slot) == 0 && atomic_load(&c->ranges[1]) > 0;
        for (int64_t i = 0; i < 64; i++) ok = ok && atomic_load(&c->count[i]) == 1;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the child's loop missed an index or ran without a worker");
    nad_set_num_threads(1);
}
