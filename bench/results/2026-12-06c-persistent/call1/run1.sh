#!/usr/bin/env bash
# Call 1 (thirteenth session): the persistent decode kernel's first run. Its tests (stage by stage against a CPU
# reference; repeats and graph replays), then nvrar-llm bench decode with NVRAR_LLM_DECODE_KERNEL=layers / persistent
# alternating (1 x 128, 8 x 128, 1 x 8192), then memcheck of the one-layer test as time allows.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/p1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 570 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_decode_megakernel_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 120 build/gpu/tests/test_decode_megakernel_gpu > $W/test.log 2>&1
stamp "test rc=$? $(grep -E "^\[  (PASSED|FAILED|SKIPPED) " $W/test.log | tr "\n" " ")"
grep -B2 -A8 -E "Failure|error|waited" $W/test.log | head -80 > $OUT/test_failures.txt
ab() {  # ab TAG KERNEL B T
  NVRAR_LLM_DECODE_KERNEL=$2 timeout 100 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $3 \
    --input-len $4 --output-len 64 --num-iters-warmup 1 --num-iters 3 --json $W/ab/$1.json > $W/ab/$1.log 2>&1
  echo "$1 rc=$? $(grep -E '^Decode step \(median|rror|waited' $W/ab/$1.log | head -3 | tr '\n' ' ')" \
    | tee -a $W/ab/summary.txt
}
for c in 1:128 8:128 1:8192; do
  IFS=: read -r B T <<< "$c"
  for k in layers persistent; do
    if [ $(left) -lt 60 ]; then break 2; fi
    ab decode_b${B}_${T}_$k $k $B $T
  done
done
cp $W/ab/summary.txt $OUT/ 2>/dev/null
if [ $(left) -gt 100 ]; then
  timeout $(( $(left) - 15 )) compute-sanitizer --tool memcheck --error-exitcode 9 \
    build/gpu/tests/test_decode_megakernel_gpu --gtest_filter='*OneLayer*' --gtest_brief=1 > $W/memcheck.log 2>&1
  stamp "memcheck rc=$? $(grep -E "ERROR SUMMARY|PASSED|FAILED" $W/memcheck.log | tr "\n" " ")"
fi
stamp end
tar czf $OUT/p1.tgz -C /tmp p1
