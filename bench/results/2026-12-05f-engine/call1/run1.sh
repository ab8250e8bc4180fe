#!/usr/bin/env bash
# Call 1 (2026-12-05f): the warp-per-row residual + RMSNorm (prefill), the decode attention's L2 prefetch of the
# o_proj weights (NVRAR_LLM_L2_PREFETCH_MB) and one epilogue store per lane in the skinny GEMM, on a GPU for the first
# time; with the fifth session's unrun test cases. Tests, memcheck, prefill A/B against a build of b5bd7a7 (base/),
# decode A/B base / prefetch 0 / 16 / 32 MiB (alternating, 2 runs). Ran from .snap (git archive + .deps) as
# `bash run1.sh`. Prefills compare by the instrumented prefill's split (the "Prefill split" lines), since
# --num-iters-warmup 0 --num-iters 1 puts first-run costs into prefill_ms_median.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 560 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 550 - ($(date +%s) - T0) )); }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_engine_gpu test_gemm_gpu test_flash_prefill_gpu test_sampling_gpu test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
wait $bp; stamp "base build rc=$?"
for t in test_residual_rmsnorm_gpu test_gemm_gpu test_engine_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A12 -E "Failure" $W/test_*.log | head -60
run() {  # kind B L cfg rep bin env...
  local kind=$1 b=$2 l=$3 cfg=$4 r=$5 bin=$6; shift 6
  local out=2; [ $kind = decode ] && out=64
  env "$@" timeout 60 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len $out \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/${kind}_${b}_${l}_${cfg}_r$r.json > $W/ab/${kind}_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $kind $b $l $cfg r$r failed"
}
NEW=build/gpu/tools/nvrar-llm; BASE=/tmp/nvrar-base/tools/nvrar-llm
for r in 1 2; do for c in 1:2048 8:2048 1:8192; do IFS=: read -r b l <<< "$c"
  run prefill $b $l base $r $BASE X=1
  run prefill $b $l new $r $NEW X=1
done; done
stamp "prefill A/B done"
for r in 1 2; do for c in 1:128 8:128 1:2048; do IFS=: read -r b l <<< "$c"
  run decode $b $l base $r $BASE X=1
  run decode $b $l p0 $r $NEW NVRAR_LLM_L2_PREFETCH_MB=0
  run decode $b $l p16 $r $NEW NVRAR_LLM_L2_PREFETCH_MB=16
  run decode $b $l p32 $r $NEW NVRAR_LLM_L2_PREFETCH_MB=32
done; done
stamp "decode A/B done"
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
grep -h "Prefill split" $W/ab/prefill_*.log > /dev/null && for f in $W/ab/prefill_*.log; do echo "$(basename $f): $(grep -h "Prefill split" $f)"; done > $W/prefill_split.txt
ENGINE_SANITIZE="memcheck" ENGINE_SANITIZE_TIMEOUT=60 OUT=$W timeout $(( $(left) - 60 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"; grep "compute-sanitizer" $W/san.log | tail -6
stamp end
'
tar czf $OUT/r1.tgz -C /tmp o1
