#!/usr/bin/env bash
# Call 2 (2026-12-05e): ablation (a snapshot of 41f36af with NVRAR_ABLATE, never committed): the graph-replayed decode
# step with one kind of small kernel left out, to bound what fusing it away can save.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 300 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for r in 1 2; do for c in 1:128 8:128; do IFS=: read -r b l <<< "$c"; for cfg in none swiglu rope norm attn swiglu+rope; do
  NVRAR_ABLATE=$cfg timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_${cfg}_r$r.json > $W/ab/decode_${b}_${l}_${cfg}_r$r.log 2>&1 || echo "fail $b $cfg $r"
done; done; done
stamp runs done
python3 sum2.py $W | tee $W/ablation.md
'
tar czf $OUT/r2.tgz -C /tmp o2
