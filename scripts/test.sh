#!/usr/bin/env bash
# test.sh: the whole test suite from a fresh Debian 12 machine: set-up, the C tests
# (Criterion), the same C tests under ASan + UBSan, then the Lua tests. Ends with one
# "tests: N passed, M failed" line; exits non-zero on any failure. Also: the rock installs,
# the quickstart runs end to end, a short fuzzing pass.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SANITIZE=1 bash "$root/scripts/setup.sh" || exit 1
passed=0; failed=0
run_c_tests() { # $1: build dir, $2: label
    for t in "$1"/test_*; do
        [ -x "$t" ] || continue
        out=$("$t" --jobs 1 2>&1); rc=$?
        line=$(echo "$out" | grep "Synthesis" | tail -1)
        p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p'); p=${p:-0}
        f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*Crashing: \([0-9]*\).*/\1 \2/p')
        nf=$(( ${f% *} + ${f#* } )) 2>/dev/null || nf=1
        [ -z "$line" ] && nf=1
        if [ $rc -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; fi
        passed=$((passed + p)); failed=$((failed + nf))
        if [ "$nf" -ne 0 ]; then echo "$out"; echo "FAIL $2 $(basename "$t")"; else echo "ok   $2 $(basename "$t"): $p"; fi
    done
}
run_c_tests "$root/build" c
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 run_c_tests "$root/build-asan" c-asan
out=$(AUTONAD_LIB="$root/build/libautonad.so" luajit "$root/tests/lua/run.lua" 2>&1); rc=$?
echo "$out"
line=$(echo "$out" | tail -1)
p=$(echo "$line" | sed -n 's/^lua: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p')
f=$(echo "$line" | sed -n 's/^lua: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
[ $rc -ne 0 ] && [ "${f:-1}" -eq 0 ] && failed=$((failed + 1))
# the rock: `luarocks make` into a scratch tree, then require 'autonad' from another directory
tree=$(mktemp -d)
if (cd "$root" && luarocks --lua-version 5.1 --tree "$tree" make autonad-scm-1.rockspec >"$tree.log" 2>&1) &&
   (cd /tmp && eval "$(luarocks --lua-version 5.1 --tree "$tree" path)" &&
    luajit -e "local a = require 'autonad'; assert(a.tensor(2, 2):numel() == 4); print('rock: ' .. a.version .. ' from ' .. require('autonad.ffi').library_path)" | grep -q "$tree"); then
    echo "ok   luarocks make + require 'autonad' from /tmp"; passed=$((passed + 1))
else
    echo "FAIL luarocks make (see $tree.log)"; failed=$((failed + 1))
fi
rm -rf "$tree" "$root/build.luarocks"

# the README's main job end to end: recipes/quickstart.lua (every stage on generated defects,
# about 3 minutes on 2 cores) into a scratch run directory; QUICKSTART=0 skips it
if [ "${QUICKSTART:-1}" != 0 ]; then
    qs=$(mktemp -d)
    if "$root/build/autonad" run "$root/recipes/quickstart.lua" --output "$qs" --quiet >"$qs.log" 2>&1 &&
       AUTONAD_LIB="$root/build/libautonad.so" LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" luajit -e "
           local json = require 'autonad.json'
           local m = json.read('$qs/metrics_searched.json')
           local ok = function(x) return type(x) == 'number' and x == x and x >= 0 end
           assert(ok(m.metrics.miou) and m.metrics.miou <= 1, 'miou')
           assert(ok(m.latency_ms.median) and m.latency_ms.median > 0, 'latency')
           assert(m.params > 0 and m.flops > 0, 'params / flops')
           assert(json.read('$qs/search.json').best, 'search.json has no best architecture')
           print(string.format('quickstart: test mIoU %.3f, %.2f ms, %.2f M params', m.metrics.miou,
               m.latency_ms.median, m.params / 1e6))"; then
        echo "ok   quickstart end to end (recipes/quickstart.lua)"; passed=$((passed + 1))
    else
        tail -20 "$qs.log"; echo "FAIL quickstart end to end (log: $qs.log)"; failed=$((failed + 1))
    fi
    rm -rf "$qs"
fi

# a short fuzzing pass over the three image decoders (FUZZ_SECONDS=0 skips it)
fuzz_secs=${FUZZ_SECONDS:-15}
if [ "$fuzz_secs" != 0 ]; then
    if bash "$root/tests/fuzz/run.sh" "$fuzz_secs" 2>&1 | tee /tmp/autonad-fuzz.log | grep "^fuzz "; then
        n=$(grep -c "^fuzz .* 0 crashes (exit 0" /tmp/autonad-fuzz.log || true)
        passed=$((passed + n)); failed=$((failed + 3 - n))
    else
        echo "FAIL fuzz (see /tmp/autonad-fuzz.log)"; failed=$((failed + 1))
    fi
fi
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
