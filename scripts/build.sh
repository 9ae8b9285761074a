#!/usr/bin/env bash
# Configures and builds Ferry with the given CMake preset (default: "default" -> build/).
set -euo pipefail
cd "$(dirname "$0")/.."
preset="${1:-default}"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j "$(nproc)"
