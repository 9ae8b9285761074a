#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test under ctest.
# Usage: scripts/test.sh [preset]   (default | asan | tsan)
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
./scripts/install_deps.sh
./scripts/build.sh "$preset"
ctest --preset "$preset" -j "$(nproc)"
