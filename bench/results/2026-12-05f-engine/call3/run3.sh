#!/usr/bin/env bash
# Call 3 (2026-12-05f): the prefill chunk (--prefill-chunk 4096, the default, against 8192 and 16384) at 8 x 2048,
# 1 x 8192 and 1 x 32768, alternating, two runs each of 1 warm-up + 3 timed prefills (prefill_ms_median); the tree
# with the warp-per-row residual + RMSNorm from 4096 rows. Its bit test first. Ran from .snap as `bash run3.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 500 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
BUILD_TARGETS="nvrar-llm test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 60 build/gpu/tests/test_residual_rmsnorm_gpu > $W/test_residual_rmsnorm_gpu.log 2>&1
stamp "test_residual_rmsnorm_gpu rc=$? $(grep -E "PASSED|FAILED" $W/test_residual_rmsnorm_gpu.log | tr "\n" " ")"
for r in 1 2; do for c in 8:2048 1:8192 1:32768; do IFS=: read -r b l <<< "$c"; for k in 4096 8192 16384; do
  timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 2 \
    --prefill-chunk $k --num-iters-warmup 1 --num-iters 3 --json $W/ab/prefill_${b}_${l}_c${k}_r$r.json \
    > $W/ab/prefill_${b}_${l}_c${k}_r$r.log 2>&1 || echo "run $b $l c$k r$r failed"
done; done; stamp "round $r done"; done
python3 sum3.py $W > $W/ab_summary.md; cat $W/ab_summary.md
stamp end
'
tar czf $OUT/r3.tgz -C /tmp o3
