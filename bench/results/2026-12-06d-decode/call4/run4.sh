#!/usr/bin/env bash
# Call 4 (fourteenth session, 76cd387 + call3/early.patch): the skinny GEMMs releasing the next kernel once their last
# loads are issued (NVRAR_EXP_EARLY_ROWS=8) or at their start (NVRAR_EXP_EARLY_MODE=2) against the default (after
# the main loop), alternating, the GEMM plan of each case's first (tuned, default) run pinned for every run after it;
# test_gemm_gpu with the early release.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/e4; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 275 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_gemm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
NVRAR_EXP_EARLY_ROWS=8 timeout 60 build/gpu/tests/test_gemm_gpu --gtest_brief=1 > $W/gemm.log 2>&1
stamp "test_gemm_gpu (early) rc=$? $(grep -E "PASSED|FAILED" $W/gemm.log | tr "\n" " ")"
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 12 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
for c in 1:128 1:8192 8:128; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  echo "plan $B x $C: $plan" >> $W/ab/summary.txt
  for r in 1 2; do
    run base_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run early_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_EARLY_ROWS=8
    run start_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_EARLY_ROWS=8 NVRAR_EXP_EARLY_MODE=2
  done
done
stamp end
tar czf $OUT/r4.tgz -C /tmp e4
