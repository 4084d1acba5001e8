#!/usr/bin/env bash
# run.sh: builds the decoder fuzzers (libFuzzer + ASan + UBSan, clang) and runs each for N
# seconds, printing executions and crashes per target. Exits non-zero when one crashed.
#   bash tests/fuzz/run.sh [seconds=20] [png|jpeg|bmp ...]
# Long run (an hour each, corpus kept in build-fuzz/corpus between runs):
#   bash tests/fuzz/run.sh 3600
# Reproduce a crash: build-fuzz/fuzz_png build-fuzz/crashes/png-crash-<sha1>
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
secs=${1:-20}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(png jpeg bmp)

rt=$(clang -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null || true)
if ! command -v clang >/dev/null || [ ! -f "$rt" ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
    else
        echo "run.sh: needs clang and libFuzzer: sudo apt-get install clang libclang-rt-14-dev" >&2
        exit 1
    fi
fi

mkdir -p "$out/obj" "$out/crashes" "$out/corpus"
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-std=c11 -g -O1 -fno-omit-frame-pointer -I$root/core"
objs=()
for src in "$root"/core/io/*.c "$root"/core/tensor.c "$root"/core/error.c; do
    obj="$out/obj/$(basename "${src%.c}").o"
    clang $cflags $san -fsanitize=fuzzer-no-link -c "$src" -o "$obj"
    objs+=("$obj")
done
clang -std=c11 -O1 "$root/tests/fuzz/make_seeds.c" -o "$out/make_seeds" -lpng -ljpeg -lz
for t in png jpeg bmp; do mkdir -p "$out/seeds/$t" "$out/corpus/$t"; done
"$out/make_seeds" "$out/seeds"

status=0
for t in "${targets[@]}"; do
    clang $cflags $san -fsanitize=fuzzer "$root/tests/fuzz/fuzz_$t.c" "${objs[@]}" \
        -o "$out/fuzz_$t" -lpng -ljpeg -lz -lm
    before=$(ls "$out/crashes" | grep -c "^$t-" || true)
    log="$out/fuzz_$t.log"
    set +e
    "$out/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$out/crashes/$t-" \
        "$out/corpus/$t" "$out/seeds/$t" >"$log" 2>&1
    rc=$?
    set -e
    after=$(ls "$out/crashes" | grep -c "^$t-" || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    echo "fuzz $t: ${execs:-?} executions in ${secs}s, $((after - before)) crashes (exit $rc; log $log)"
    if [ $rc -ne 0 ] || [ "$after" -ne "$before" ]; then
        status=1
        grep -m3 -E "ERROR|SUMMARY" "$log" || true
    fi
done
exit $status
