#!/usr/bin/env bash
# Call 4 (twelfth session): the review's mends (one fp32 GEMM-output buffer, refusals, stronger tests): the fp32
# activation and residual tests, memcheck of the first, and the fp32 check in both modes on p1 with 32 layers and on
# the 9000-token prompt in chunks of 2048 and 16384 (the shared buffer through chunked cuBLASLt prefill).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/f4; rm -rf $W; mkdir -p $W
T0=$(date +%s); export T0 W OUT
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
nvidia-smi -L | tee $W/gpus.txt
BUILD_TARGETS="nvrar-llm test_fp32_activations_gpu test_residual_f32_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
for t in test_fp32_activations_gpu test_residual_f32_gpu; do
  timeout 60 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A8 Failure $W/test_fp32_activations_gpu.log | head -40
timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_fp32_activations_gpu \
  --gtest_brief=1 > $W/memcheck.log 2>&1
stamp "memcheck rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
LONG_CHECKS='p1_d64_gqa1_l32 p9000_d128_gqa4' timeout 150 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck rc=$?"
grep -E "^== longcheck|against fp32" $W/lc.log | tee $W/lc_ratios.txt
cp $W/*.log $W/lc_ratios.txt $OUT/ 2>/dev/null
stamp end
