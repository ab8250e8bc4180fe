#!/usr/bin/env bash
# Call 2 (fifteenth session, 2834c5a + call2/prefetch.patch): the skinny GEMMs asking L2 for the rest of their
# weights before griddepcontrol.wait (NVRAR_EXP_PF_KB: the blocks whose weights start within the first that many KB
# of the matrix) against the unchanged kernels, GEMM plans pinned, alternating, two runs each; test_gemm_gpu with the
# prefetch; the persistent kernel's third form under memcheck and the fp32 check. On an H200 first: the issue's ten
# timed cases with the anchors (the ten-case table of call 1).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/f2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 540 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_decode_megakernel_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
if grep -q H200 $W/gpus.txt; then
  export LONG_CASES="prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768"
  LONG_SKIP_TORCH=1 LONG_TIMEOUT=60 timeout 160 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
  stamp "engine+cudnn rc=$?"
  LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=90 timeout 100 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
  stamp "torch rc=$?"
  LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
  cp $W/lb/long_context.md $OUT/ 2>/dev/null
fi
NVRAR_EXP_PF_KB=1048576 timeout 60 build/gpu/tests/test_gemm_gpu --gtest_brief=1 > $W/gemm.log 2>&1
stamp "test_gemm_gpu (prefetch) rc=$? $(grep -E "PASSED|FAILED" $W/gemm.log | tr "\n" " ")"
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 110 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
for c in 1:128 8:128 1:8192 8:8192; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  echo "plan $B x $C: $plan" >> $W/ab/summary.txt
  for r in 1 2; do
    run base_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run pf8_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_PF_KB=8192
    run pf32_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_PF_KB=32768
  done
done
stamp "a/b done"
timeout 60 build/gpu/tests/test_decode_megakernel_gpu --gtest_brief=1 > $W/mk.log 2>&1
stamp "megakernel test rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/mk.log | tr "\n" " ")"
if [ $(left) -gt 40 ]; then
  timeout $(( $(left) - 10 )) compute-sanitizer --tool memcheck --error-exitcode 9 \
    build/gpu/tests/test_decode_megakernel_gpu --gtest_filter='*OneLayer*' --gtest_brief=1 > $W/memcheck.log 2>&1
  stamp "memcheck rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
fi
if [ $(left) -gt 50 ]; then
  LONG_CHECKS='p300_d128_gqa8 p300_d64_gqa8_h512' LONG_CHECK_ENVS='default NVRAR_LLM_DECODE_KERNEL=persistent' \
    timeout $(( $(left) - 5 )) bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
  stamp "longcheck rc=$? $(grep -c PASSED $W/lc.log) PASSED lines"
  cp $W/lc.log $OUT/
fi
stamp end
tar czf $OUT/r2.tgz -C /tmp f2
