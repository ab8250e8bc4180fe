#!/usr/bin/env bash
# Call 4 (thirteenth session; the tree of "no 64-bit division per chunk" + call3/diag.patch's stamps, without its
# L2-prefetch experiment): the tests, then layers / persistent at 1 x 128 and 8 x 128, with the timeline.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/p4; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 150 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_decode_megakernel_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
timeout 40 build/gpu/tests/test_decode_megakernel_gpu > $W/test.log 2>&1
stamp "test rc=$? $(grep -E "^\[  (PASSED|FAILED|SKIPPED) " $W/test.log | tr "\n" " ")"
ab() {  # ab TAG KERNEL B T [ENV...]
  local tag=$1 k=$2 B=$3 T=$4; shift 4
  if [ $(left) -lt 15 ]; then return; fi
  env NVRAR_LLM_DECODE_KERNEL=$k "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 \
    --batch-size $B --input-len $T --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror|waited' $W/ab/$tag.log | head -3 | tr '\n' ' ')" \
    | tee -a $W/ab/summary.txt
  grep "^MK" $W/ab/$tag.log | sed "s/^/  /" | tee -a $W/ab/summary.txt
}
ab l_1_128 layers 1 128
ab p_1_128 persistent 1 128 MK_TIMELINE=1
ab l_8_128 layers 8 128
ab p_8_128 persistent 8 128 MK_TIMELINE=1
ab p_1_128b persistent 1 128
cp $W/ab/summary.txt $OUT/ 2>/dev/null
stamp end
