#!/usr/bin/env bash
# Call 5 (2026-12-05e): the tree of calls 3-4. On an H200: the long-prompt table's 11 cases plus decode batch 32 x 8192
# and 1 x 131072 (nvrar-llm + cuDNN attention), then the PyTorch reference on the 11 cases with the time left.
# On any other card: only the two new decode cases + cuDNN (the 11-case table of this tree ran in call 4 on an H100).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o5; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
DEFAULT="prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 prefill:1:131072 decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768"
NEW="decode:32:8192 decode:1:131072"
if grep -q H200 $W/gpus.txt; then ALL="$DEFAULT $NEW"; TORCH=1; else ALL="$NEW"; TORCH=0; fi
export DEFAULT ALL TORCH
timeout 300 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 292 - ($(date +%s) - T0) )); }
stamp "card: $(head -1 $W/gpus.txt); cases: $ALL"
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build ready
LONG_CASES="$ALL" LONG_SKIP_TORCH=1 timeout $(( $(left) - 10 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
if [ $TORCH = 1 ] && [ $(left) -gt 60 ]; then
  LONG_CASES="$DEFAULT" LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 10 )) timeout $(( $(left) - 6 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
  stamp "torch rc=$?"
fi
LONG_CASES="$ALL" LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cat $W/lb/long_context.md
stamp end
'
tar czf $OUT/r5.tgz -C /tmp o5
