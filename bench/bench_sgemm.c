/* bench_sgemm.c: GFLOP/s of cblas_sgemm 2048x2048x2048 (row-major, no transposes) at a given
   thread count through autonad's OpenBLAS (median of 7 timed runs after 2 warm-ups); one line
   "sgemm2048 <threads> <GFLOP/s> | <nad_blas_info>". bench/vs_torch.py runs it per thread count.
   Usage: bench_sgemm [threads]. */
#include "bench_util.h" /* bench_now, bench_bench_cmp_double */

enum { WARMUP = 2, REPEATS = 7, N = 2048 };


int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (nad_set_num_threads(threads)) {
        fprintf(stderr, "%s\n", nad_last_error());
        return 1;
    }
    float *a = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * N * N);
    float *c = malloc(sizeof(float) * N * N);
    if (!a || !b || !c) return 1;
    for (int i = 0; i < N * N; i++) a[i] = b[i] = (float)(i % 7) * 0.1f, c[i] = 0;
    double t[REPEATS];
    for (int i = -WARMUP; i < REPEATS; i++) {
        double t0 = bench_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1, a, N, b, N, 0, c, N);
        if (i >= 0) t[i] = bench_now() - t0;
    }
    qsort(t, REPEATS, sizeof *t, bench_cmp_double);
    printf("sgemm2048 %d %.1f | %s\n", nad_get_num_threads(), 2.0 * N * N * N / t[REPEATS / 2] * 1e-9,
           nad_blas_info());
    free(a), free(b), free(c);
    return 0;
}
