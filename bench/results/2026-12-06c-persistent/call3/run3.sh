#!/usr/bin/env bash
# Call 3 (tree 'argmax' commit + diag.patch): call 2 after the latency fixes (attention loads batched, norm loads all in flight, copy unrolled) and each
# phase's chunks split evenly over the blocks (units split between blocks summed by the last to arrive); MK_ABLATE=8
# an L2 prefetch of the 8 chunks after the ring's before each barrier; where the persistent kernel's time goes (timeline.patch on 95c1bc2: per block and phase, globaltimer stamps
# at the barrier, after it, after the prologue; diag.patch on the commit; MK_ABLATE drops attention (1), prologues (2), barriers (4)).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/p3; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 265 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_decode_megakernel_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
timeout 120 build/gpu/tests/test_decode_megakernel_gpu > $W/test.log 2>&1
stamp "test rc=$? $(grep -E "^\[  (PASSED|FAILED|SKIPPED) " $W/test.log | tr "\n" " ")"
grep -B2 -A8 -E "Failure|waited" $W/test.log | head -60 > $OUT/test_failures.txt
timeout 60 build/gpu/tests/test_engine_gpu --gtest_filter='*Argmax*' > $W/argmax.log 2>&1
stamp "argmax tests rc=$? $(grep -E "^\[  (PASSED|FAILED) " $W/argmax.log | tr "\n" " ")"
ab() {  # ab TAG KERNEL B T [ENV...]
  local tag=$1 k=$2 B=$3 T=$4; shift 4
  if [ $(left) -lt 30 ]; then return; fi
  env NVRAR_LLM_DECODE_KERNEL=$k "$@" timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 \
    --batch-size $B --input-len $T --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|^Decode step split|rror|waited' $W/ab/$tag.log | head -3 | tr '\n' ' ')" \
    | tee -a $W/ab/summary.txt
  grep "^MK" $W/ab/$tag.log | sed "s/^/  /" | tee -a $W/ab/summary.txt
}
ab l_1_128 layers 1 128
ab p_1_128 persistent 1 128 MK_TIMELINE=1
ab l_8_128 layers 8 128
ab p_8_128 persistent 8 128 MK_TIMELINE=1
ab l_1_8192 layers 1 8192
ab p_1_8192 persistent 1 8192 MK_TIMELINE=1
ab p_1_128_a8 persistent 1 128 MK_TIMELINE=1 MK_ABLATE=8
ab l_1_128b layers 1 128
ab p_1_128b persistent 1 128
cp $W/ab/summary.txt $OUT/ 2>/dev/null
# The fp32 check with the persistent kernel's decode steps on the shapes it takes (hidden 512), beside the default.
LONG_CHECKS='p300_d128_gqa8 p300_d64_gqa8_h512' \
  LONG_CHECK_ENVS='default NVRAR_LLM_DECODE_KERNEL=persistent' timeout $(( $(left) - 60 )) \
  bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck rc=$? $(grep -c PASSED $W/lc.log) PASSED lines"
cp $W/lc.log $OUT/
for c in 8:8192 1:32768; do
  IFS=: read -r B T <<< "$c"
  for k in layers persistent; do
    if [ $(left) -lt 45 ]; then break 2; fi
    ab x_${B}_${T}_$k $k $B $T MK_TIMELINE=1
  done
done
cp $W/ab/summary.txt $OUT/ 2>/dev/null
if [ $(left) -gt 50 ]; then
  timeout $(( $(left) - 15 )) compute-sanitizer --tool memcheck --error-exitcode 9 \
    build/gpu/tests/test_decode_megakernel_gpu --gtest_filter='*OneLayer*' --gtest_brief=1 > $W/memcheck.log 2>&1
  stamp "memcheck rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
fi
cp $W/ab/summary.txt $OUT/ 2>/dev/null
stamp end
tar czf $OUT/p3.tgz -C /tmp p3
