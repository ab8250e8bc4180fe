#!/usr/bin/env bash
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/o3; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
timeout 420 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
LONG_SKIP_TORCH=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"; grep "^== " $W/lb_engine.log | cut -c1-300
left=$(( 405 - ($(date +%s) - T0) ))
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$left bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"; grep "^== " $W/lb_torch.log | cut -c1-300
'
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cat $W/lb/long_context.md
rm -f $W/lb/long_all.tgz
tar czf $OUT/r3.tgz -C /tmp o3
