#!/usr/bin/env bash
# Seventeenth session, the short form of run1.sh for the device time left (~520 s, one start): the same tree, no
# baseline build. 1. test_gemm_gpu (the new tune test) and test_residual_rmsnorm_gpu (the 64-row limit's kernel
# choice and every kernel's bits). 2. The batch-8 gate/up A/B of run1.sh (its prediction: P1 -0.5 to -2.5% at
# 8 x 128, the same us per step at 8 x 8192), P0/P1 only. 3. If time is left, the norm weight after the wait
# (NVRAR_EXP_NORM_W_AFTER) at 1 x 128, plans pinned (prediction: within 0.2%).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/nx; rm -rf $W; mkdir -p $W/ab $W/b8
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( ${BUDGET:-530} - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
TB=build/gpu/tests
timeout 60 $TB/test_gemm_gpu --gtest_brief=1 > $W/gemm_test.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/gemm_test.log | tr "\n" " ")"
for m in 0; do
  NVRAR_EXP_NORM_W_AFTER=$m timeout 60 $TB/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test_$m.log 2>&1
  stamp "test_residual_rmsnorm_gpu (switch $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test_$m.log | tr "\n" " ")"
done
NEW=build/gpu/tools/nvrar-llm
run() {  # run DIR TAG B C [ENV...]
  local d=$1 tag=$2 B=$3 C=$4; shift 4
  if [ $(left) -lt 20 ]; then echo "$tag skipped (time)" >> $W/$d/summary.txt; return; fi
  env "$@" timeout 40 $NEW bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/$d/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|^Decode step split|rror' $W/$d/$tag.log | head -3 | tr '\n' ' ')" | tee -a $W/$d/summary.txt
  cp $W/$d/summary.txt $OUT/${d}_summary.txt
}
for C in 128 8192; do
  run b8 tuned_8_$C 8 $C
  p0=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/b8/tuned_8_$C.log | sed 's/8x28672x4096=[a-z0-9]*/8x28672x4096=cublaslt/')
  p1=${p0/8x28672x4096=cublaslt/8x28672x4096=skinny2}
  echo "C=$C p0=$p0" >> $W/b8/plans.txt
  for r in 1 2; do
    run b8 p0_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p0
    run b8 p1_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p1
  done
done
for c in 1:128; do
  B=${c%:*} C=${c#*:}
  run ab t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  for r in 1 2; do
    run ab before_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run ab after_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM_W_AFTER=1
  done
done
stamp end
tar czf $OUT/nx.tgz --exclude=build.log -C /tmp nx
