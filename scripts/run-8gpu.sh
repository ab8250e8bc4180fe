#!/usr/bin/env bash
# Issue 7 in one call on an 8-GPU machine: GPU correctness at 1x8, 2x4, 4x2, 8x1 (virtual nodes), a tuning table
# for 1x8, nvrar-bench side by side on every split (4 KB - 64 MB, bf16, checked), PyTorch anchors at 8, the engine
# check against transformers at TP 1, 2, 4, 8 (the tiny model's 4 KV heads are replicated at 8), and the engine
# benchmarks: Llama-3.1-70B at TP 8 decode-heavy (input 128, output 512, batch 8 and 32) with NCCL and NVRAR, and
# Llama-3.1-405B shapes truncated to LAYERS_405B layers (default 60). Logs and JSON in $OUT (one archive, all.tgz).
#   bash scripts/run-8gpu.sh [1|2|3]
# The device tool allows 10 minutes per command: part 1 = build and correctness, part 2 = build, the tuning table,
# then the bench with it and the PyTorch anchors, part 3 = build and the engine; no argument runs everything in one
# go (for machines without that limit).
set -uo pipefail
cd "$(dirname "$0")/.."
L=${LAYERS_405B:-60}
# The tuner may try LL128 up to 64 MiB; the table it writes then sizes the LL128 area (Options::ll128_max_bytes).
export TUNE_ARGS="${TUNE_ARGS:---ll128-max-bytes 64M}"
export CORRECT_CFGS="8:8 8:4 8:2 8:1" TUNE_CFGS="8:8" BENCH_CFGS="8:8 8:4 8:2 8:1" TORCH_NP="8" ENGINE_CHECK_TPS="1 2 4 8"
export ENGINE_BENCH="8:llama3.1-70b:8:0:nccl:128:512 8:llama3.1-70b:8:0:nvrar:128:512 8:llama3.1-70b:32:0:nccl:128:512 \
8:llama3.1-70b:32:0:nvrar:128:512 8:llama3.1-405b:8:$L:nccl:128:512 8:llama3.1-405b:8:$L:nvrar:128:512"
export RUN_TIMEOUT=${RUN_TIMEOUT:-300}
case "${1:-all}" in
  1) exec bash scripts/gpu-check.sh build correct ;;
  2) exec bash scripts/gpu-check.sh build tune torch bench ;;
  3) exec bash scripts/gpu-check.sh build engine ;;
  all) exec bash scripts/gpu-check.sh build correct tune torch bench engine ;;
  *) echo "usage: bash scripts/run-8gpu.sh [1|2|3]" >&2; exit 2 ;;
esac
