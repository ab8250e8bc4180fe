#!/usr/bin/env bash
# Eighteenth session (not run: no machine started), the least that answers the batch-8 question (~120 s with
# .prebuilt, ~200 s building here). Runs on this tree from the repository root (the patches of run_next.sh not needed).
# 1. test_gemm_gpu (TuneTimesEveryCandidateWithTheStepsEpilogue). 2. 8 x 128 with the tuner's own plan, then gate/up
# pinned to cuBLASLt + the SwiGLU kernel (P0) and to skinny2 (P1), alternating, two runs each. Prediction (written
# in the seventeenth session, before any run): P1 -0.5 to -2.5% against P0 at 8 x 128.
# With .prebuilt (`bash scripts/prebuild-for-device.sh nvrar-llm test_gemm_gpu` on the CPU machine, carry [".prebuilt"],
# `bash bench/results/2026-12-07-batch8/run_min.sh`) the call builds nothing.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/nm; rm -rf $W; mkdir -p $W/b8
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( ${BUDGET:-200} - ($(date +%s) - T0) )); }
if [ -d .prebuilt ]; then  # scripts/prebuild-for-device.sh nvrar-llm test_gemm_gpu, carried: no build here
  source .prebuilt/env.sh || exit 1
  LLM=.prebuilt/bin/nvrar-llm TEST=.prebuilt/bin/test_gemm_gpu
else
  BUILD_TARGETS="nvrar-llm test_gemm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
  LLM=build/gpu/tools/nvrar-llm TEST=build/gpu/tests/test_gemm_gpu
fi
stamp build done
timeout 45 $TEST --gtest_brief=1 > $W/gemm_test.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/gemm_test.log | tr "\n" " ")"
cp $W/gemm_test.log $OUT/
run() {  # run TAG [ENV...]
  local tag=$1; shift
  if [ $(left) -lt 14 ]; then echo "$tag skipped (time)" >> $W/b8/summary.txt; return; fi
  env "$@" timeout 30 $LLM bench --model llama3.1-8b --tp 1 --batch-size 8 --input-len 128 \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/b8/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|^Decode step split|rror' $W/b8/$tag.log | head -3 | tr '\n' ' ')" | tee -a $W/b8/summary.txt
  cp $W/b8/summary.txt $OUT/b8_summary.txt
}
run tuned_8_128
p0=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/b8/tuned_8_128.log | sed 's/8x28672x4096=[a-z0-9]*/8x28672x4096=cublaslt/')
p1=${p0/8x28672x4096=cublaslt/8x28672x4096=skinny2}
echo "p0=$p0" > $W/b8/plans.txt
for r in 1 2; do run p0_r$r NVRAR_LLM_GEMM=$p0; run p1_r$r NVRAR_LLM_GEMM=$p1; done
stamp end
tar czf $OUT/nm.tgz -C /tmp nm
