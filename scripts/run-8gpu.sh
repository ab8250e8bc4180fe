#!/usr/bin/env bash
# Issue 7 in one call on an 8-GPU machine: GPU correctness at 1x8, 2x4, 4x2, 8x1 (virtual nodes), a tuning table
# for 1x8, nvrar-bench side by side on every split (4 KB - 64 MB, bf16, checked), PyTorch anchors at 8, and the
# engine: Llama-3.1-70B at TP 8 decode-heavy (input 128, output 512, batch 8 and 32) with NCCL and NVRAR, and
# Llama-3.1-405B shapes truncated to what fits. Logs and JSON in $OUT (one archive, all.tgz).
#   bash scripts/run-8gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export CORRECT_CFGS="8:8 8:4 8:2 8:1" TUNE_CFGS="8:8" BENCH_CFGS="8:8 8:4 8:2 8:1" TORCH_NP="8"
export ENGINE_BENCH_8="8:llama3.1-70b:8:0:nccl 8:llama3.1-70b:8:0:nvrar 8:llama3.1-70b:32:0:nccl 8:llama3.1-70b:32:0:nvrar 8:llama3.1-405b:8:${LAYERS_405B:-60}:nccl 8:llama3.1-405b:8:${LAYERS_405B:-60}:nvrar"
export RUN_TIMEOUT=${RUN_TIMEOUT:-300}
bash scripts/gpu-check.sh build correct tune bench torch
OUT=${OUT:-$PWD/out}
BUILD=build/gpu
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
for cfg in $ENGINE_BENCH_8; do
  IFS=: read -r tp model bs layers ar <<< "$cfg"
  log="$OUT/engine8_${model}_b${bs}_l${layers}_$ar"
  NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 timeout "$RUN_TIMEOUT" mpirun --allow-run-as-root --bind-to none \
    -x NCCL_NVLS_ENABLE -x NVSHMEM_DISABLE_NVLS -x LD_LIBRARY_PATH -np "$tp" $BUILD/tools/nvrar-llm bench \
    --model "$model" --tp "$tp" --batch-size "$bs" --input-len 128 --output-len 512 --num-iters-warmup 1 \
    --num-iters 3 --allreduce "$ar" $([ "$layers" != 0 ] && echo --num-layers "$layers") --json "$log.json" > "$log.log" 2>&1
  echo "== $model TP $tp batch $bs layers $layers $ar: rc=$?"; grep -E 'Avg latency|Decode step|split' "$log.log"
done
tar czf /tmp/nvrar-8gpu.tgz -C "$OUT" --exclude all.tgz . && mv /tmp/nvrar-8gpu.tgz "$OUT/all.tgz"
