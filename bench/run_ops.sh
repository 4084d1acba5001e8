#!/usr/bin/env bash
# run_ops.sh: builds the benchmarks (Release, in build/) and runs bench_ops and
# bench_gemm_layers at 1 and 2 threads with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so
# OpenBLAS picks this CPU's own kernel (see bench/README.md).
# Usage: bash bench/run_ops.sh [log-dir]   (with a log dir, each run's output is also saved there)
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 --target bench_ops bench_gemm_layers >/dev/null
logdir="${1:-}"
[ -n "$logdir" ] && mkdir -p "$logdir"
for threads in 1 2; do
    for bench in bench_ops bench_gemm_layers; do
        echo "==== $bench, $threads thread(s) ===="
        if [ -n "$logdir" ]; then
            env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "./build/$bench" "$threads" |
                tee "$logdir/${bench}_t${threads}.txt"
        else
            env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "./build/$bench" "$threads"
        fi
    done
done
