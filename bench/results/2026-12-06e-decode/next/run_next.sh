#!/usr/bin/env bash
# Ready for the next session (not run): HEAD + next/norm_unit.patch + the tenth session's
# bench/results/2026-12-06-engine/call2/exp_early_kv_and_kps.patch (both apply to 5bd63e8). The residual + RMSNorm
# block kernel with the weight unit loaded before griddepcontrol.wait and the row kept in registers
# (NVRAR_EXP_NORM=1), the same releasing the next kernel only at its end (2), and the decode attention requesting its
# first two K/V tiles before its wait (NVRAR_EXP_EARLY_KV=1, first measured without pinned plans), against the
# unchanged kernels: the norm test with each mode (bits equal to the warp kernel's), test_engine_gpu with both
# changes, then decode steps with plans pinned, alternating, two runs each. On an H200 first: the issue's ten timed
# cases (2026-12-06d-decode/call5/run5.sh's table).
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/nx; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 520 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_residual_rmsnorm_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
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
for m in 1 2; do
  NVRAR_EXP_NORM=$m timeout 60 build/gpu/tests/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test_$m.log 2>&1
  stamp "test_residual_rmsnorm_gpu (mode $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test_$m.log | tr "\n" " ")"
done
NVRAR_EXP_NORM=1 NVRAR_EXP_EARLY_KV=1 timeout 60 build/gpu/tests/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
stamp "test_engine_gpu (norm 1, early K/V) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr "\n" " ")"
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 15 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/
}
for c in 1:128 8:128 1:8192; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  for r in 1 2; do
    run base_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run n1_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM=1
    run n2_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM=2
    run kv_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_EARLY_KV=1
    run n1kv_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM=1 NVRAR_EXP_EARLY_KV=1
  done
done
stamp end
tar czf $OUT/nx.tgz --exclude=build.log -C /tmp nx
