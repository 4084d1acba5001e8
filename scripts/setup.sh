#!/usr/bin/env bash
# setup.sh: installs the Debian packages autonad needs (only those missing), then configures
# and builds into build/ (and build-asan/ with SANITIZE=1). Sourced by the other scripts.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# luajit + headers: the Lua runtime and the host;  libopenblas (OpenMP variant): sgemm on the
# core's thread pool;  libpng, libjpeg-turbo, zlib: image decoders;  libcriterion: C tests;
# luarocks: the rockspec install.
packages=(build-essential cmake pkg-config luajit libluajit-5.1-dev libopenblas-openmp-dev libpng-dev
          libjpeg62-turbo-dev zlib1g-dev libcriterion-dev luarocks)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
jobs=$(nproc)
cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" -j "$jobs" 2>&1 | grep -E "error|warning:" || true
test -f "$root/build/libautonad.so" || { echo "setup: build failed" >&2; cmake --build "$root/build"; exit 1; }
if [ "${SANITIZE:-0}" = 1 ]; then
    cmake -S "$root" -B "$root/build-asan" -DCMAKE_BUILD_TYPE=Debug -DAUTONAD_SANITIZE=ON >/dev/null
    cmake --build "$root/build-asan" -j "$jobs" 2>&1 | grep -E "error|warning:" || true
fi
