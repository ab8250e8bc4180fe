#!/usr/bin/env bash
# Call 3 (fourteenth session, 76cd387 + call3/early.patch, which changes nothing unless NVRAR_EXP_EARLY_ROWS is set):
# on the H200 the issue's goals are set for, the one-job long-prompt table of issue 17 (nvrar-llm + cuDNN, then the
# PyTorch reference); then, with the time left, the skinny GEMMs releasing the next kernel once their last loads are
# issued (NVRAR_EXP_EARLY_ROWS=8) or at their start (NVRAR_EXP_EARLY_MODE=2) against the default (after the main
# loop), alternating, the GEMM plan of each case's first (tuned, default) run pinned for the runs after it; then
# layers / persistent at 1 x 128.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
# The issue's ten timed cases (not its two "runs" cases beyond 8 x 8192: prefill 1 x 131072 and the extra decodes).
export LONG_CASES="prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768"
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
timeout 425 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 420 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
LONG_SKIP_TORCH=1 LONG_TIMEOUT=60 timeout $(( $(left) - 200 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) < 240 ? $(left) - 20 : 220 )) timeout $(( $(left) < 240 ? $(left) - 15 : 225 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null; cat $W/lb/long_context.md
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 14 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E "^Decode step \(median|rror" $W/ab/$tag.log | head -2 | tr "\n" " ")" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
for c in 1:128 1:8192 8:128; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n "s/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p" $W/ab/t_${B}_$C.log)
  echo "plan $B x $C: $plan" >> $W/ab/summary.txt
  for r in 1 2; do
    run base_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run early_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_EARLY_ROWS=8
    run start_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_EARLY_ROWS=8 NVRAR_EXP_EARLY_MODE=2
  done
done
run persistent_1_128 1 128 NVRAR_LLM_DECODE_KERNEL=persistent
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null
rm -f $W/lb/long_all.tgz
tar czf $OUT/r3.tgz -C /tmp o3
