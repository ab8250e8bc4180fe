#!/usr/bin/env bash
# Installs, builds and runs every test: the release build (CPU executor matrix, unit tests, CUDA sources compiled
# when nvcc exists; GPU tests skip without a device) and a ThreadSanitizer build of the CPU executor tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
ctest --preset tsan -j "$jobs"
