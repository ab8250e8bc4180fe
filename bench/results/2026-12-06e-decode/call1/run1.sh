#!/usr/bin/env bash
# Call 5 (fourteenth session, 76cd387; the device time left after call 4): on the H200 the goals are set
# for, the one-job long-prompt table of issue 17 (nvrar-llm + cuDNN, then the PyTorch reference with the time left),
# the ten timed cases.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o5; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
# The ten timed cases (not its two "runs" cases beyond 8 x 8192: prefill 1 x 131072 and the extra decodes).
export LONG_CASES="prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768"
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
timeout 330 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 325 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
LONG_SKIP_TORCH=1 LONG_TIMEOUT=60 timeout $(( $(left) - 100 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 12 )) timeout $(( $(left) - 8 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null; cat $W/lb/long_context.md
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null
rm -f $W/lb/long_all.tgz
tar czf $OUT/r5.tgz -C /tmp o5
