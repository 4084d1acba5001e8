/* bench_sgemm.c: GFLOP/s of cblas_sgemm 2048x2048x2048 (row-major, no transposes) at a given
   thread count through autonad's OpenBLAS (bench_util.h's bench_sgemm_2048: the median of its
   timed runs after warm-ups, the figure bench_ops and bench_conv print too); one line
   "sgemm2048 <threads> <GFLOP/s> | <nad_blas_info>". bench/vs_torch.py runs it per thread count.
   Usage: bench_sgemm [threads]. */
#include "bench_util.h" /* bench_sgemm_2048 */

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (nad_set_num_threads(threads)) {
        fprintf(stderr, "%s\n", nad_last_error());
        return 1;
    }
    double gf = bench_sgemm_2048();
    if (gf <= 0) return 1;
    printf("sgemm2048 %d %.1f | %s\n", nad_get_num_threads(), gf, nad_blas_info());
    return 0;
}
