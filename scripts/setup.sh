#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install dependencies, build, then run the
# main job (`ferry demo`). Pass --no-run to stop after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install_deps.sh
./scripts/build.sh default
if [ "${1:-}" != "--no-run" ]; then
  ./build/bin/ferry demo
fi
