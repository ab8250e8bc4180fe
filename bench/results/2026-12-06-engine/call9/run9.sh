#!/usr/bin/env bash
# Call 9 (eleventh session): prefill tiles in groups of sequences whose K and V fit in L2 (3bafc39) against the tree
# before (2992f27, in base/): the flash tests (a grouped chunked run against the whole, bit for bit), prefill A/B at
# 8 x 2048 and 8 x 8192 (same job, alternating, two runs each), and, if time is left, Nsight Compute of the
# wgmma-ws kernel at 8 x 2048 with the groups (its DRAM traffic).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o9; rm -rf $W; mkdir -p $W/base $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 320 - ($(date +%s) - T0) )); }
ln -sfn ../.deps base/.deps
(cd base && BUILD_TARGETS="nvrar-llm" OUT=$W/base bash scripts/gpu-check.sh build > $W/base_build.log 2>&1) &
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
wait
stamp "builds done: $(ls build/gpu/tools/nvrar-llm base/build/gpu/tools/nvrar-llm 2>&1 | tr '\n' ' ')"
timeout 90 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash.log 2>&1
stamp "flash tests rc=$? $(grep -E "PASSED|FAILED|SKIPPED" $W/flash.log | tr "\n" " ")"
ab() {  # ab BUILD TAG B T
  timeout 150 $1/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $3 --input-len $4 --output-len 2 \
    --num-iters-warmup 1 --num-iters 3 --json $W/ab/$2.json > $W/ab/$2.log 2>&1
  echo "$2 rc=$? $(grep -E '^Prefill \(median|^Prefill split' $W/ab/$2.log | tr '\n' ' ')" | tee -a $W/ab/summary.txt
}
for r in 1 2; do
  for c in 8:2048 8:8192; do
    B=${c%%:*}; T=${c##*:}
    if [ $(left) -lt 70 ]; then break 2; fi
    ab base/build/gpu base_b${B}_${T}_r$r $B $T
    ab build/gpu new_b${B}_${T}_r$r $B $T
  done
done
cp $W/ab/summary.txt $OUT/ 2>/dev/null
stamp "ab done"
if [ $(left) -gt 40 ]; then
  ENGINEPROF_CASES='prefill:8:2048' ENGINEPROF_KERNELS='wgmma_ws' ENGINEPROF_COUNT=2 OUT=$W \
    timeout $(( $(left) )) bash scripts/gpu-check.sh engineprof > $W/engineprof.log 2>&1
  grep -v '^==PROF==' $W/engineprof_prefill_b8_2048.txt | grep -E 'Duration  |DRAM Throughput|L2 Hit Rate|Compute \(SM\) Throughput' | tee $W/prof_summary.txt
  cp $W/prof_summary.txt $OUT/
  stamp "engineprof"
fi
stamp end
rm -rf $W/base/*.tgz $W/all.tgz
tar czf $OUT/r9.tgz -C /tmp o9
