#!/usr/bin/env bash
# Call 4 (2026-12-05g): the fp32 check (scripts/engine-long-check.sh, its default cases, the decode GEMMs pinned for
# the chunked-vs-unchunked comparison) with the tree of f824c6e.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o4; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 400 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
[ -x build/gpu/tools/nvrar-llm ] || BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 300 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck rc=$?"; grep -E "^== " $W/lc.log | cut -c1-220 | head -14
grep -h "against fp32" $W/lc/check_*.log
stamp end
'
tar czf $OUT/r4.tgz -C /tmp o4
