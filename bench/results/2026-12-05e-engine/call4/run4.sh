#!/usr/bin/env bash
# Call 4 (2026-12-05e): the one-job long-prompt table with the tree of call 3 (skinny GEMM epilogues on, the prefill
# block order): nvrar-llm + cuDNN attention, then the PyTorch reference, then the table.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o4; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 480 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 470 - ($(date +%s) - T0) )); }
[ -x build/gpu/tools/nvrar-llm ] || BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build ready
LONG_SKIP_TORCH=1 timeout 250 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 12 )) timeout $(( $(left) - 8 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cat $W/lb/long_context.md
stamp end
'
tar czf $OUT/r4.tgz -C /tmp o4
