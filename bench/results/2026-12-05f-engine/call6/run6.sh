#!/usr/bin/env bash
# Call 6 (2026-12-05f): call 3 (the prefill chunk: 4096 against 16384) again on an H200, the tree of call 5, after
# its table put 8 x 2048 at 396.8 ms (390.6 in the last table, chunk 4096). 8 x 2048 and 1 x 8192, alternating, two
# runs each of 1 warm-up + 3 timed prefills. Ran from .snap as `bash run6.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o6; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 400 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
[ -x build/gpu/tools/nvrar-llm ] || BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for r in 1 2; do for c in 8:2048 1:8192; do IFS=: read -r b l <<< "$c"; for k in 4096 16384; do
  timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 2 \
    --prefill-chunk $k --num-iters-warmup 1 --num-iters 3 --json $W/ab/prefill_${b}_${l}_c${k}_r$r.json \
    > $W/ab/prefill_${b}_${l}_c${k}_r$r.log 2>&1 || echo "run $b $l c$k r$r failed"
done; done; stamp "round $r done"; done
python3 sum3.py $W > $W/ab_summary.md; cat $W/ab_summary.md
stamp end
'
tar czf $OUT/r6.tgz -C /tmp o6
