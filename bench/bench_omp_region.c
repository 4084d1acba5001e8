/* bench_omp_region.c: what one OpenMP parallel region costs at 2 threads, against the same work
   done in the calling thread: the figure behind the core's parallel-region thresholds
   (NAD_PAR_* in core/internal.h). Run it as autonad runs (passive waiting, what
   lua/autonad/ffi.lua sets) and as libgomp's default (spinning):

       OMP_WAIT_POLICY=PASSIVE ./build/bench_omp_region
       ./build/bench_omp_region

   Each line: the work per thread (a dependent chain of float adds, about 1 ns each), the
   median time of one parallel region doing it on both threads, and of the calling thread
   doing both shares itself. */
#include "bench_util.h"
#include <omp.h>

static volatile float sink;

/* `work` dependent adds: about one nanosecond each, not vectorisable */
static float chain(int work, float seed)
{
    float s = seed;
    for (int j = 0; j < work; j++) s = s * 0.999f + 0.5f;
    return s;
}

int main(void)
{
    omp_set_num_threads(2);
    const char *policy = getenv("OMP_WAIT_POLICY");
    printf("threads: 2, OMP_WAIT_POLICY=%s, GOMP_SPINCOUNT=%s\n", policy ? policy : "(unset)",
           getenv("GOMP_SPINCOUNT") ? getenv("GOMP_SPINCOUNT") : "(unset)");
    printf("%10s %14s %14s\n", "work/thread", "parallel us", "one thread us");
    static const int works[] = {0, 1000, 10000, 30000, 100000};
    for (size_t w = 0; w < sizeof works / sizeof *works; w++) {
        enum { CALLS = 400, SAMPLES = 7 };
        double par[SAMPLES], ser[SAMPLES];
        for (int s = 0; s < SAMPLES; s++) {
            float acc[2] = {0, 0};
            double t = bench_now();
            for (int i = 0; i < CALLS; i++) {
                #pragma omp parallel
                {
                    int id = omp_get_thread_num();
                    if (id < 2) acc[id] += chain(works[w], (float)i);
                }
                /* a little serial work between regions, as between operators */
                acc[0] += chain(200, acc[1]);
            }
            par[s] = (bench_now() - t) / CALLS;
            t = bench_now();
            for (int i = 0; i < CALLS; i++) {
                acc[0] += chain(works[w], (float)i);
                acc[1] += chain(works[w], (float)i);
                acc[0] += chain(200, acc[1]);
            }
            ser[s] = (bench_now() - t) / CALLS;
            sink = acc[0] + acc[1];
        }
        qsort(par, SAMPLES, sizeof *par, bench_cmp_double);
        qsort(ser, SAMPLES, sizeof *ser, bench_cmp_double);
        printf("%10d %14.2f %14.2f\n", works[w], par[SAMPLES / 2] * 1e6, ser[SAMPLES / 2] * 1e6);
    }
    return 0;
}
