#!/usr/bin/env bash
# Call 1 (twelfth session): NVRAR_LLM_ACTIVATIONS=fp32. Builds nvrar-llm and the kernel tests; runs the new fp32
# tests, the residual / GEMM / engine kernel tests, memcheck of the fp32 tests; the fp32 check (8 shapes, two of them
# with 32 layers) with the default bf16 activations and with fp32; then nvrar-llm bench with bf16 and fp32 activations
# alternating (same build, same job): decode 1 x 128 and 1 x 8192, prefill 8 x 2048 and 1 x 8192.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/f1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 575 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_fp32_activations_gpu test_residual_f32_gpu test_gemm_gpu test_engine_gpu" OUT=$W \
  bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_fp32_activations_gpu test_residual_f32_gpu test_gemm_gpu test_engine_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED|SKIPPED" $W/$t.log | tr "\n" " ")"
done
grep -B3 -A12 "Failure" $W/test_fp32_activations_gpu.log | head -60 > $OUT/fp32_failures.txt
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_fp32_activations_gpu \
  --gtest_brief=1 > $W/memcheck.log 2>&1
stamp "memcheck rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
LONG_CHECK_ENVS='default NVRAR_LLM_ACTIVATIONS=fp32' timeout 240 bash scripts/engine-long-check.sh build/gpu $W/lc \
  > $W/lc.log 2>&1
stamp "longcheck rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
grep -E "^== longcheck|against fp32" $W/lc.log > $W/lc_ratios.txt; cp $W/lc.log $W/lc_ratios.txt $OUT/
ab() {  # ab TAG ACTIVATIONS B T OUTLEN
  NVRAR_LLM_ACTIVATIONS=$2 timeout 120 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $3 \
    --input-len $4 --output-len $5 --num-iters-warmup 1 --num-iters 3 --json $W/ab/$1.json > $W/ab/$1.log 2>&1
  echo "$1 rc=$? $(grep -E '^Prefill \(median|^Decode step \(median|^GEMM outputs|split' $W/ab/$1.log | tr '\n' ' ')" \
    | tee -a $W/ab/summary.txt
}
for c in decode:1:128 decode:1:8192 prefill:8:2048 prefill:1:8192; do
  IFS=: read -r kind B T <<< "$c"
  O=$([ $kind = prefill ] && echo 2 || echo 64)
  for a in bf16 fp32; do
    if [ $(left) -lt 45 ]; then break 2; fi
    ab ${kind}_b${B}_${T}_$a $a $B $T $O
  done
done
cp $W/ab/summary.txt $OUT/ 2>/dev/null
stamp end
tar czf $OUT/f1.tgz -C /tmp f1
