#!/usr/bin/env bash
# Call 7 (eleventh session): the bounded mbarrier waits (2992f27) against the tree before them (3a17605, in base/):
# build both, the flash prefill tests with the new death test, memcheck of the two Hopper kernels' tests, SASS of both
# builds' kernels, then prefill A/B (same job, alternating, two runs each), then Nsight Compute of wgmma-ws (1 x 8192)
# for the next session if time is left.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o7; rm -rf $W; mkdir -p $W/base $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 560 - ($(date +%s) - T0) )); }
ln -sfn ../.deps base/.deps
(cd base && BUILD_TARGETS="nvrar-llm" OUT=$W/base bash scripts/gpu-check.sh build > $W/base_build.log 2>&1) &
BUILD_TARGETS="nvrar-llm test_flash_prefill_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
wait
stamp "builds done: new $(ls build/gpu/tools/nvrar-llm 2>&1) base $(ls base/build/gpu/tools/nvrar-llm 2>&1)"
timeout 90 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 > $W/flash.log 2>&1
stamp "flash tests rc=$? $(grep -E "PASSED|FAILED|SKIPPED" $W/flash.log | tr "\n" " ")"
grep -A3 "DeathTest" $W/flash.log | head -20
timeout 150 compute-sanitizer --tool memcheck build/gpu/tests/test_flash_prefill_gpu \
  --gtest_filter='*WgmmaWs*:*WgmmaTma*' --gtest_brief=1 > $W/memcheck.log 2>&1
stamp "memcheck ws+tma rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
for b in new base; do
  lib=$([ $b = new ] && echo build/gpu || echo base/build/gpu)
  cuobjdump -sass $lib/tools/nvrar-llm -fun '.*wgmma_ws_kernel.*' > $W/sass_ws_$b.txt 2>&1 || true
  cuobjdump -sass $lib/tools/nvrar-llm > $W/sass_all_$b.txt 2>&1 || true
done
stamp "sass: $(wc -l < $W/sass_all_new.txt) / $(wc -l < $W/sass_all_base.txt) lines"
ab() {  # ab BUILD TAG B T
  timeout 120 $1/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $3 --input-len $4 --output-len 2 \
    --num-iters-warmup 1 --num-iters 3 --json $W/ab/$2.json > $W/ab/$2.log 2>&1
  echo "$2 rc=$? $(grep -E '^Prefill \(median' $W/ab/$2.log)" | tee -a $W/ab/summary.txt
}
for r in 1 2; do
  for c in 1:8192 8:2048 1:32768; do
    B=${c%%:*}; T=${c##*:}
    if [ $(left) -lt 60 ]; then break 2; fi
    ab base/build/gpu base_b${B}_${T}_r$r $B $T
    ab build/gpu new_b${B}_${T}_r$r $B $T
  done
done
cp $W/ab/summary.txt $OUT/ 2>/dev/null
stamp "ab done"
if [ $(left) -gt 100 ]; then
  ENGINEPROF_CASES='prefill:1:8192' ENGINEPROF_KERNELS='wgmma_ws' ENGINEPROF_COUNT=2 OUT=$W \
    timeout $(( $(left) - 10 )) bash scripts/gpu-check.sh engineprof > $W/engineprof.log 2>&1
  stamp "engineprof rc=$?"
fi
stamp end
tar czf $OUT/r7.tgz -C /tmp o7
