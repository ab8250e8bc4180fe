#!/usr/bin/env bash
# Nineteenth session: the sixteenth to eighteenth sessions' unmeasured changes and experiments, and this session's
# merge experiment, with binaries built on the CPU machine (nothing is compiled here):
#   .prebuilt      = HEAD + ../2026-12-06f-decode/next/norm_weight_after.patch (NVRAR_EXP_NORM_W_AFTER)
#                    + ../2026-12-06g-batch8/next/kps.patch (NVRAR_EXP_KPS) + merge_early.patch (NVRAR_EXP_MERGE); with
#                    the three switches unset it is HEAD (6b316f5 when written):
#                    `bash scripts/prebuild-for-device.sh
#                    --patch bench/results/2026-12-06f-decode/next/norm_weight_after.patch
#                    --patch bench/results/2026-12-06g-batch8/next/kps.patch
#                    --patch bench/results/2026-12-07b-decode/merge_early.patch
#                    nvrar-llm test_gemm_gpu test_residual_rmsnorm_gpu test_engine_gpu`
#   .prebuilt-base = 49f0ed5 (before the 64-row limit of the unit-per-thread norm), nvrar-llm only:
#                    `bash scripts/prebuild-for-device.sh --from 49f0ed5 --out .prebuilt-base nvrar-llm`
# carry [".prebuilt", ".prebuilt-base"]; BUDGET=570 PARTS="1 2 3" bash bench/results/2026-12-07b-decode/run.sh; PARTS
# (default all, in this order of priority) picks parts; each timed run is skipped when BUDGET runs out:
# 1. Tests: test_gemm_gpu (TuneTimesEveryCandidateWithTheStepsEpilogue), test_residual_rmsnorm_gpu (switch 0, 1),
#    test_engine_gpu (switch 1).
# 2. 8 x 128, gate/up pinned, alternating, two runs each: P0 cuBLASLt + the SwiGLU kernel, P1 skinny2, P2 skinny3,
#    P3 P1 + lm_head skinny3. Prediction (seventeenth session, before any run): P1 -0.5 to -2.5% against P0, P3 within
#    0.3% of P1.
# 3. The issue's ten cases at 6b316f5 (switches unset; engine-long-bench.sh, no torch, no cuDNN).
# 4. Prefill 1 x 2048 against 49f0ed5, three runs each: the instrumented norm phase back to ~1.33 ms (06f call 4: 1.37
#    with the unit kernel at 2048 rows), the prefill medians within noise.
# 5. 1 x 8192, plan pinned: keys per split 256 (default) against 384, 512, 576. Prediction: sign unknown, within 1.5%.
# 6. The norm weight before / after the wait at 1 x 128, 8 x 128, 1 x 8192: within 0.2%.
# 7. 8 x 8192, P0-P2 as in 2. Prediction: the same us per step.
# 8. The merge of a row's splits with its first U splits requested before the weights (NVRAR_EXP_MERGE=16, 32):
#    test_engine_gpu with each, then 1 x 8192, 1 x 32768, 8 x 8192, plan pinned, 0 / 16 / 32 alternating, two runs
#    each. Prediction: 3-4 dependent L2 round trips fewer at the end of every layer's attention, -0.7 to -1.4% at
#    1 x 8192 (33 splits), -1 to -1.8% at 1 x 32768 (47), within 0.2% at 8 x 8192 (4-6 splits, one round already).
# 9. (not in the default PARTS) compute-sanitizer racecheck and memcheck of the tensor-core attention tests with
#    NVRAR_EXP_MERGE=32.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/ca; rm -rf $W; mkdir -p $W/b8 $W/kps $W/ab $W/mg
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( ${BUDGET:-570} - ($(date +%s) - T0) )); }
source .prebuilt/env.sh || exit 1
echo "base: $(cat .prebuilt-base/BUILT_FROM)"
NEW=$PWD/.prebuilt/bin/nvrar-llm TB=.prebuilt/bin
# The base binary with its own libnvrar_gpu.so first on the path.
BASE_ENV="LD_LIBRARY_PATH=$PWD/.prebuilt-base/lib:$LD_LIBRARY_PATH"
env $BASE_ENV ldd .prebuilt-base/bin/nvrar-llm | grep -E 'nvrar|not found' | tee $W/base_ldd.txt
stamp "start: parts ${PARTS:-1 2 3 4 5 6 7 8}"
part1() {
timeout 60 $TB/test_gemm_gpu --gtest_brief=1 > $W/gemm_test.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/gemm_test.log | tr "\n" " ")"
for m in 0 1; do
  NVRAR_EXP_NORM_W_AFTER=$m timeout 60 $TB/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test_$m.log 2>&1
  stamp "test_residual_rmsnorm_gpu (switch $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test_$m.log | tr "\n" " ")"
done
NVRAR_EXP_NORM_W_AFTER=1 timeout 90 $TB/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
stamp "test_engine_gpu (switch 1) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr "\n" " ")"
cp $W/*_test*.log $OUT/
}
run() {  # run DIR TAG B C [ENV...]
  local d=$1 tag=$2 B=$3 C=$4; shift 4
  if [ $(left) -lt 20 ]; then echo "$tag skipped (time)" >> $W/$d/summary.txt; return; fi
  env "$@" timeout 40 $NEW bench --model llama3.1-8b --tp 1 --batch-size $B --input-len $C \
    --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/$d/$tag.log 2>&1
  echo "$tag rc=$? $(grep -E '^Decode step \(median|^Decode step split|rror' $W/$d/$tag.log | head -3 | tr '\n' ' ')" | tee -a $W/$d/summary.txt
  cp $W/$d/summary.txt $OUT/${d}_summary.txt
}
b8() {  # b8 C: P0-P2 (and P3 at 128), two runs each, alternating
  local C=$1
  run b8 tuned_8_$C 8 $C
  p0=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/b8/tuned_8_$C.log | sed 's/8x28672x4096=[a-z0-9]*/8x28672x4096=cublaslt/')
  p1=${p0/8x28672x4096=cublaslt/8x28672x4096=skinny2}
  p2=${p0/8x28672x4096=cublaslt/8x28672x4096=skinny3}
  p3=$(echo "$p1" | sed 's/8x128256x4096=[a-z0-9]*/8x128256x4096=skinny3/')
  echo "C=$C tuned=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/b8/tuned_8_$C.log)" >> $W/b8/plans.txt
  echo "C=$C p0=$p0" >> $W/b8/plans.txt
  for r in 1 2; do
    run b8 p0_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p0
    run b8 p1_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p1
    run b8 p2_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p2
    [ $C = 128 ] && run b8 p3_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p3
  done
  cp $W/b8/plans.txt $OUT/
}
part2() { b8 128; stamp b8 128 done; }
part3() {  # the ten cases (switches unset = 6b316f5)
mkdir -p $W/pb/tools && ln -s $NEW $W/pb/tools/nvrar-llm
export LONG_CASES="prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768"
if [ $(left) -gt 120 ]; then
  LONG_SKIP_TORCH=1 LONG_SKIP_CUDNN=1 LONG_MPIRUN=0 LONG_TIMEOUT=60 timeout $(( $(left) - 30 )) \
    bash scripts/engine-long-bench.sh $W/pb $W/lb > $W/lb_engine.log 2>&1
  stamp "ten cases rc=$?"
  LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh $W/pb $W/lb > $W/lb_table.log 2>&1
  cp $W/lb/long_context.md $OUT/ 2>/dev/null; cat $W/lb/long_context.md
fi
}
part4() {
for r in 1 2 3; do
  for side in base new; do
    [ $(left) -lt 20 ] && break
    llm=$NEW; envs=""; [ $side = base ] && llm=$PWD/.prebuilt-base/bin/nvrar-llm envs=$BASE_ENV
    env $envs timeout 30 $llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 2048 --output-len 2 \
      --num-iters-warmup 1 --num-iters 3 --json $W/pf_${side}_r$r.json > $W/pf_${side}_r$r.log 2>&1
    python3 -c "import json; j=json.load(open('$W/pf_${side}_r$r.json')); b=j['prefill_breakdown_us']; print('pf_${side}_r$r', round(j['prefill_ms_median'],3), 'ms; norm phase', round(b['allreduce'],1), 'us; gemm', round(b['gemm'],1))" 2>&1 | tee -a $W/summary.txt
  done
done
cp $W/summary.txt $OUT/ 2>/dev/null
stamp prefill done
}
part5() {
run kps t_1_8192 1 8192
plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/kps/t_1_8192.log)
for r in 1 2; do
  run kps k256_r$r 1 8192 NVRAR_LLM_GEMM=$plan
  for k in 384 512 576; do run kps k${k}_r$r 1 8192 NVRAR_LLM_GEMM=$plan NVRAR_EXP_KPS=$k; done
done
stamp kps done
}
part6() {
for c in 1:128 8:128 1:8192; do
  B=${c%:*} C=${c#*:}
  run ab t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/ab/t_${B}_$C.log)
  for r in 1 2; do
    run ab before_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan
    run ab after_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_NORM_W_AFTER=1
  done
done
stamp norm-after done
}
part7() { b8 8192; stamp b8 8192 done; }
part8() {
for m in 16 32; do
  NVRAR_EXP_MERGE=$m timeout 90 $TB/test_engine_gpu --gtest_brief=1 > $W/engine_test_merge$m.log 2>&1
  stamp "test_engine_gpu (merge $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test_merge$m.log | tr "\n" " ")"
done
cp $W/engine_test_merge*.log $OUT/
for c in 1:8192 1:32768 8:8192; do
  B=${c%:*} C=${c#*:}
  run mg t_${B}_$C $B $C
  plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/mg/t_${B}_$C.log)
  for r in 1 2; do
    for m in 0 16 32; do run mg m${m}_${B}_${C}_r$r $B $C NVRAR_LLM_GEMM=$plan NVRAR_EXP_MERGE=$m; done
  done
done
stamp merge done
}
part9() {  # compute-sanitizer on the merge experiment's path (splits > 1: TensorCoreAttentionRepeatsAndReplays)
for tool in racecheck memcheck; do
  [ $(left) -lt 60 ] && { stamp "sanitizer $tool skipped (time)"; continue; }
  NVRAR_EXP_MERGE=32 timeout $(( $(left) - 10 )) compute-sanitizer --tool $tool --error-exitcode 9 \
    $TB/test_engine_gpu --gtest_filter='*TensorCoreAttention*' > $W/san_$tool.log 2>&1
  stamp "sanitizer $tool (merge 32) rc=$? $(grep -E 'ERROR SUMMARY|^\[  (PASSED|FAILED)' $W/san_$tool.log | tr "\n" " ")"
  cp $W/san_$tool.log $OUT/
done
}
for p in ${PARTS:-1 2 3 4 5 6 7 8}; do part$p; done
stamp end
rm -f $W/lb/long_all.tgz
tar czf $OUT/ca.tgz -C /tmp ca
