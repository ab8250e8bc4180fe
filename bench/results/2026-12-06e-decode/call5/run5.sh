#!/usr/bin/env bash
# Call 5 (fifteenth session, HEAD + call5/balanced.patch): the CUDA-core skinny GEMMs (variants 0 and 1) as one wave
# with every SM's share equal (NVRAR_EXP_BALANCED: 1 as many blocks per SM as fit, 2 two per SM) against the
# unchanged kernels, each case's GEMM plan pinned (its first, tuned run), alternating; a tuned run with the balanced
# kernels for the tuner's per-GEMM times; test_gemm_gpu with both balanced modes. On an H200: the issue's ten timed
# cases first (2026-12-06d-decode/call5/run5.sh's table).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/b5; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 330 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_gemm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
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
for b in 1 2; do
  NVRAR_EXP_BALANCED=$b timeout 60 build/gpu/tests/test_gemm_gpu --gtest_brief=1 > $W/gemm_b$b.log 2>&1
  stamp "test_gemm_gpu (balanced $b) rc=$? $(grep -E "PASSED|FAILED" $W/gemm_b$b.log | tr "\n" " ")"
done
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 15 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  grep "^GEMM kernels" $W/ab/$tag.log | sed "s/^/  /" >> $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
for c in 1:128 1:8192 8:128; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  echo "plan $B x $C: $plan" >> $W/ab/summary.txt
  [ $B = 1 ] && run tb_${B}_$C $B $C NVRAR_EXP_BALANCED=1
  reps="1 2"; [ $B = 8 ] && reps=1
  for r in $reps; do
    run base_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run b1_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_BALANCED=1
    [ $B = 1 ] && run b2_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_BALANCED=2
  done
done
stamp end
tar czf $OUT/r5.tgz -C /tmp b5
