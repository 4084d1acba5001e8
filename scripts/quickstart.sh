#!/usr/bin/env bash
# quickstart.sh: autonad's main job on an embedded default, from a fresh Debian 12 machine:
# set-up (packages, build), then the quickstart recipe on generated defect images.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$root/scripts/setup.sh"
cd "$root"
exec ./build/autonad run recipes/quickstart.lua "$@"
