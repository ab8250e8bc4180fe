#!/usr/bin/env bash
# Call 2: the tree with the unit-per-thread residual + RMSNorm kernel and the decode attention's early K/V tiles as
# defaults (productized from call 1's patches), against the previous commit (.baseline: `git archive` of 77690ec,
# nvrar-llm only) in the same job. Tests: test_residual_rmsnorm_gpu (every kernel's bits), test_engine_gpu,
# MultiRank.FusedRmsNormMatchesUnfused (the one-shot's fused form against the unfused kernels, 2-8 ranks on one
# GPU), compute-sanitizer memcheck and racecheck of the mma attention test and the norm test. Then decode steps with
# plans pinned, base and new alternating, two runs each: 1 x 128, 8 x 128, 1 x 8192, 1 x 32768, 8 x 8192.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/c2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 525 - ($(date +%s) - T0) )); }
(cmake -S .baseline -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
base_pid=$!
BUILD_TARGETS="nvrar-llm test_residual_rmsnorm_gpu test_engine_gpu test_multirank" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
wait $base_pid; stamp "base build rc=$?"
TB=build/gpu/tests
timeout 60 $TB/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test.log 2>&1
stamp "test_residual_rmsnorm_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test.log | tr "\n" " ")"
timeout 90 $TB/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
stamp "test_engine_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr "\n" " ")"
timeout 90 $TB/test_multirank --gtest_brief=1 --gtest_filter=MultiRank.FusedRmsNormMatchesUnfused > $W/multirank.log 2>&1
stamp "multirank FusedRmsNormMatchesUnfused rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/multirank.log | tr "\n" " ")"
run() {  # run TAG LLM B C [ENV...]
  local tag=$1 llm=$2 B=$3 C=$4; shift 4
  if [ $(left) -lt 20 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 40 $llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
NEW=build/gpu/tools/nvrar-llm BASE=/tmp/nvrar-base/tools/nvrar-llm
for c in 1:128 8:128 1:8192 1:32768 8:8192; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $NEW $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  for r in 1 2; do
    run base_${B}_${C}_r$r $BASE $B $C NVRAR_LLM_GEMM=$plan
    run new_${B}_${C}_r$r $NEW $B $C NVRAR_LLM_GEMM=$plan
  done
done
for tool in memcheck racecheck; do
  [ $(left) -lt 60 ] && { stamp "sanitizer $tool skipped (time)"; continue; }
  timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 $TB/test_engine_gpu \
    --gtest_filter='*TensorCoreAttention*:*AttentionMatchesCpuSoftmax*' > $W/san_attn_$tool.log 2>&1
  stamp "sanitizer $tool attention rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED)' $W/san_attn_$tool.log | tr "\n" " ")"
  timeout 60 compute-sanitizer --tool $tool --error-exitcode 9 $TB/test_residual_rmsnorm_gpu \
    --gtest_filter='*WithoutY*:*KernelsRefuse*' > $W/san_norm_$tool.log 2>&1
  stamp "sanitizer $tool norm rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED)' $W/san_norm_$tool.log | tr "\n" " ")"
done
stamp end
tar czf $OUT/c2.tgz --exclude=build.log -C /tmp c2
