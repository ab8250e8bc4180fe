#!/usr/bin/env bash
# Call 1 (fourteenth session): the persistent kernel's latest form (counted walk, no division per chunk) on a GPU for
# the first time: its test, then layers / persistent in one job, with call1/diag.patch's timeline and ablation.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/p1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 290 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_decode_megakernel_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
timeout 40 build/gpu/tests/test_decode_megakernel_gpu > $W/test.log 2>&1
stamp "test rc=$? $(grep -E "^\[  (PASSED|FAILED|SKIPPED) " $W/test.log | tr "\n" " ")"
cp $W/test.log $OUT/
ab() {  # ab TAG KERNEL B T [ENV...]
  local tag=$1 k=$2 B=$3 T=$4; shift 4
  if [ $(left) -lt 15 ]; then echo "$tag skipped (time)" | tee -a $W/ab/summary.txt; return; fi
  env NVRAR_LLM_DECODE_KERNEL=$k "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 \
    --batch-size $B --input-len $T --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror|waited' $W/ab/$tag.log | head -3 | tr '\n' ' ')" \
    | tee -a $W/ab/summary.txt
  grep "^MK" $W/ab/$tag.log | sed "s/^/  /" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
ab l_1_128 layers 1 128
ab p_1_128 persistent 1 128
ab p_1_128_tl persistent 1 128 MK_TIMELINE=1
ab p_1_128_floor persistent 1 128 MK_ABLATE=7 MK_TIMELINE=1
ab l_8_128 layers 8 128
ab p_8_128 persistent 8 128
ab p_8_128_tl persistent 8 128 MK_TIMELINE=1
ab l_1_8192 layers 1 8192
ab p_1_8192 persistent 1 8192
ab l_1_128b layers 1 128
cp $W/ab/*.log $OUT/ 2>/dev/null
stamp end
