#!/usr/bin/env bash
# Call 8 (eleventh session): where the prefill's attention phase goes at 8 x 2048 and 1 x 8192 (RoPE + KV append
# against the wgmma-ws kernel), Nsight Compute of the first layers' kernels, tree 2992f27 (the bounded waits).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o8; rm -rf $W; mkdir -p $W
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
echo "[$(( $(date +%s) - T0 ))s] build"
ENGINEPROF_CASES='prefill:8:2048 prefill:1:8192' ENGINEPROF_KERNELS='flash_prefill|rope' ENGINEPROF_COUNT=6 OUT=$W \
  timeout 240 bash scripts/gpu-check.sh engineprof > $W/engineprof.log 2>&1
echo "[$(( $(date +%s) - T0 ))s] engineprof rc=$?"
for f in $W/engineprof_prefill_*.txt; do
  echo "== $f"
  grep -v '^==PROF==' "$f" | grep -E '^  [a-z_ ]*(void|rope|flash)|Duration  |Memory Throughput  |DRAM Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Registers Per' | cut -c1-150
  grep -E '^Prefill split|^Prefill \(median' "$f"
done | tee $W/summary.txt
cp $W/summary.txt $OUT/
tar czf $OUT/r8.tgz -C /tmp o8
