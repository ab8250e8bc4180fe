#!/usr/bin/env bash
# Ready for the next session (not run): supersedes run1.sh. Tree: HEAD + ../2026-12-06f-decode/next/
# norm_weight_after.patch (NVRAR_EXP_NORM_W_AFTER) + next/kps.patch (NVRAR_EXP_KPS: the tensor-core decode attention's
# keys per split); .baseline = `git archive 49f0ed5`. In order of priority (each timed run is skipped when BUDGET, in
# seconds from the start, runs out):
# 1. Tests: test_gemm_gpu (TuneTimesEveryCandidateWithTheStepsEpilogue), test_residual_rmsnorm_gpu (switch 0 and 1),
#    test_engine_gpu (switch 1).
# 2. Batch 8 gate/up, plans pinned, alternating, two runs each: P0 cuBLASLt + the SwiGLU kernel, P1 skinny2, P2
#    skinny3, P3 (8 x 128 only) P1 + lm_head skinny3. Prediction (written before any run): P1 -0.5 to -2.5% at
#    8 x 128, the same us per step at 8 x 8192, P3 within 0.3% of P1.
# 3. Prefill 1 x 2048 against 49f0ed5: the instrumented norm phase back to ~1.33 ms (06f call 4: 1.37 with the unit
#    kernel at 2048 rows).
# 4. 1 x 8192, plan pinned: keys per split 256 (the default: 33 splits x 8 = 264 blocks, two per SM on 132 SMs)
#    against 384 (176 blocks), 512 (136) and 576 (120, one per SM). Prediction: sign unknown, within 1.5%; an H100
#    run with plans not pinned (06-engine call 2) had 512 at -1.5% and 1024 at +0.4%, within that run's noise.
# 5. The norm weight before / after the wait at 1 x 128, 8 x 128, 1 x 8192: within 0.2%.
# Snapshot: rm -rf .snap && mkdir -p .snap/.baseline && git archive HEAD | tar x -C .snap --exclude=bench/results &&
#   git archive 49f0ed5 | tar x -C .snap/.baseline --exclude=bench/results && cp -a .deps .snap/.deps &&
#   (cd .snap && patch -p1 -s < ../bench/results/2026-12-06f-decode/next/norm_weight_after.patch &&
#    patch -p1 -s < ../bench/results/2026-12-06g-batch8/next/kps.patch) &&
#   cp bench/results/2026-12-06g-batch8/next/run_next.sh .snap/   # then `cd .snap && bash run_next.sh`, carry .snap
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/nx; rm -rf $W; mkdir -p $W/ab $W/b8
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( ${BUDGET:-530} - ($(date +%s) - T0) )); }
(cmake -S .baseline -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_residual_rmsnorm_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
stamp build done
TB=build/gpu/tests
timeout 60 $TB/test_gemm_gpu --gtest_brief=1 > $W/gemm_test.log 2>&1
stamp "test_gemm_gpu rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/gemm_test.log | tr "\n" " ")"
for m in 0 1; do
  NVRAR_EXP_NORM_W_AFTER=$m timeout 60 $TB/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/norm_test_$m.log 2>&1
  stamp "test_residual_rmsnorm_gpu (switch $m) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/norm_test_$m.log | tr "\n" " ")"
done
NVRAR_EXP_NORM_W_AFTER=1 timeout 90 $TB/test_engine_gpu --gtest_brief=1 > $W/engine_test.log 2>&1
stamp "test_engine_gpu (switch 1) rc=$? $(grep -E "^\[  (PASSED|FAILED)" $W/engine_test.log | tr "\n" " ")"
NEW=build/gpu/tools/nvrar-llm BASE=/tmp/nvrar-base/tools/nvrar-llm
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
  p2=${p0/8x28672x4096=cublaslt/8x28672x4096=skinny3}
  p3=$(echo "$p1" | sed 's/8x128256x4096=[a-z0-9]*/8x128256x4096=skinny3/')
  echo "C=$C p0=$p0" >> $W/b8/plans.txt
  for r in 1 2; do
    run b8 p0_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p0
    run b8 p1_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p1
    run b8 p2_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p2
    [ $C = 128 ] && run b8 p3_8_${C}_r$r 8 $C NVRAR_LLM_GEMM=$p3
  done
done
wait; stamp base build done
for r in 1 2 3; do
  for side in base new; do
    [ $(left) -lt 20 ] && break
    llm=$NEW; [ $side = base ] && llm=$BASE
    timeout 30 $llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 2048 --output-len 2 \
      --num-iters-warmup 1 --num-iters 3 --json $W/pf_${side}_r$r.json > $W/pf_${side}_r$r.log 2>&1
    python3 -c "import json; j=json.load(open('$W/pf_${side}_r$r.json')); b=j['prefill_breakdown_us']; print('pf_${side}_r$r', round(j['prefill_ms_median'],3), 'ms; norm phase', round(b['allreduce'],1), 'us; gemm', round(b['gemm'],1))" | tee -a $W/summary.txt
  done
done
cp $W/summary.txt $OUT/ 2>/dev/null
mkdir -p $W/kps
run kps t_1_8192 1 8192
plan=$(sed -n 's/^GEMM plan (rank 0; NVRAR_LLM_GEMM repeats it): //p' $W/kps/t_1_8192.log)
for r in 1 2; do
  run kps k256_r$r 1 8192 NVRAR_LLM_GEMM=$plan
  for k in 384 512 576; do run kps k${k}_r$r 1 8192 NVRAR_LLM_GEMM=$plan NVRAR_EXP_KPS=$k; done
done
for c in 1:128 8:128 1:8192; do
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
