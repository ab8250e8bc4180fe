#!/usr/bin/env bash
# Ready for the next session (not run): HEAD (the unit-per-thread norm kernel limited to 64 rows) + next/
# norm_weight_after.patch (NVRAR_EXP_NORM_W_AFTER=1: that kernel requests its weight unit after the wait, in flight with
# y and the residual), with .baseline = `git archive 49f0ed5` (the unit kernel at any row count below 4096).
# 1. test_residual_rmsnorm_gpu (the limit's kernel choice and every kernel's bits), also with the switch on;
#    test_engine_gpu with it.
# 2. Prefill 1 x 2048, HEAD against 49f0ed5, alternating, three runs each: the instrumented norm phase
#    (`prefill_breakdown_us.allreduce`) should fall back to 77690ec's (call 4: 1330.8 against 1374.7 us).
# 3. Decode with plans pinned, HEAD with the switch off and on, alternating, two runs each: 1 x 128, 8 x 128, 1 x 8192.
# Snapshot: rm -rf .snap && mkdir -p .snap/.baseline && git archive HEAD | tar x -C .snap --exclude=bench/results &&
#   git archive 49f0ed5 | tar x -C .snap/.baseline --exclude=bench/results && cp -a .deps .snap/.deps &&
#   (cd .snap && patch -p1 -s < ../bench/results/2026-12-06f-decode/next/norm_weight_after.patch) &&
#   cp bench/results/2026-12-06f-decode/next/run_next.sh .snap/   # then `cd .snap && bash run_next.sh`, carry .snap
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/nx; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 500 - ($(date +%s) - T0) )); }
(cmake -S .baseline -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
BUILD_TARGETS="nvrar-llm test_residual_rmsnorm_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
wait; stamp builds done
TB=build/gpu/tests
for m in 0 1; do
  NVRAR_EXP_NORM_W_AFTER=$m timeout 60 $TB/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test_$m.log 2>&1
  stamp "test_residual_rmsnorm_gpu (switch $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test_$m.log | tr "\n" " ")"
done
NVRAR_EXP_NORM_W_AFTER=1 timeout 90 $TB/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
stamp "test_engine_gpu (switch 1) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr "\n" " ")"
NEW=build/gpu/tools/nvrar-llm BASE=/tmp/nvrar-base/tools/nvrar-llm
for r in 1 2 3; do
  for side in base new; do
    llm=$NEW; [ $side = base ] && llm=$BASE
    timeout 30 $llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 2048 --output-len 2 \
      --num-iters-warmup 1 --num-iters 3 --json $W/pf_${side}_r$r.json > $W/pf_${side}_r$r.log 2>&1
    python3 -c "import json; j=json.load(open('$W/pf_${side}_r$r.json')); b=j['prefill_breakdown_us']; print('pf_${side}_r$r', round(j['prefill_ms_median'],3), 'ms; norm phase', round(b['allreduce'],1), 'us; gemm', round(b['gemm'],1))" | tee -a $W/summary.txt
  done
done
cp $W/summary.txt $OUT/
run() {  # run TAG B C [ENV...]
  local tag=$1 B=$2 C=$3; shift 3
  if [ $(left) -lt 15 ]; then echo "$tag skipped (time)" >> $W/ab/summary.txt; return; fi
  env "$@" timeout 30 $NEW bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|rror' $W/ab/$tag.log | head -2 | tr '\n' ' ')" | tee -a $W/ab/summary.txt
  cp $W/ab/summary.txt $OUT/ab_summary.txt
}
for c in 1:128 8:128 1:8192; do
  B=${c%:*} C=${c#*:}
  run t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  for r in 1 2; do
    run before_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run after_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM_W_AFTER=1
  done
done
stamp end
tar czf $OUT/nx.tgz --exclude=build.log -C /tmp nx
