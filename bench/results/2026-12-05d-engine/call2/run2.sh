#!/usr/bin/env bash
# Call 2 (2026-12-05d): defaults now mma (decode) and wgmma-tma (prefill); new, default off: NVRAR_LLM_L2_PREFETCH_MB,
# NVRAR_LLM_FUSE_SWIGLU. Tests (test_gemm_gpu: prefetch hint and SwiGLU input bit-exact); decode A/B of
# (prefetch MiB, fused SwiGLU) in {0/0, 16/0, 32/0, 0/1, 32/1} at b1x128, b8x128, b1x8192, 2 rounds, configs
# alternating, same binary; nvrar-llm against fp32 logits (defaults, then the best config on three shapes);
# racecheck + synccheck of the engine kernel tests.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/pf
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 550 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 540 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_gemm_gpu test_flash_prefill_gpu test_sampling_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_gemm_gpu test_engine_gpu; do
  timeout 60 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A8 -E "Failure" $W/test_*.log | head -40
for r in 1 2; do for c in 1:128 8:128 1:8192; do for cfg in 0:0 16:0 32:0 0:1 32:1; do
  IFS=: read -r b l <<< "$c"; IFS=: read -r mb fu <<< "$cfg"
  NVRAR_LLM_L2_PREFETCH_MB=$mb NVRAR_LLM_FUSE_SWIGLU=$fu timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b \
    --tp 1 --batch-size $b --input-len $l --output-len 64 --num-iters-warmup 0 --num-iters 1 \
    --json $W/pf/b${b}_${l}_p${mb}f${fu}_r$r.json > $W/pf/b${b}_${l}_p${mb}f${fu}_r$r.log 2>&1 || echo "run b$b $l $cfg r$r failed"
done; done; done
stamp "decode A/B done"
python3 pf_summary.py $W > $W/pf/summary.md
cat $W/pf/summary.md
BEST=$(cat $W/best_env.txt 2>/dev/null || echo default)
timeout 130 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck (defaults) rc=$?"; grep -E "^== " $W/lc.log | head -20
LONG_CHECK_ENVS="NVRAR_LLM_L2_PREFETCH_MB=32,NVRAR_LLM_FUSE_SWIGLU=1" LONG_CHECKS="p1_d64_gqa1 p300_d128_gqa8 p2048_d64_gqa8_tied" timeout 70 bash scripts/engine-long-check.sh build/gpu $W/lcp > $W/lcp.log 2>&1
stamp "longcheck (prefetch 32, fused SwiGLU) rc=$?"; grep -E "^== " $W/lcp.log | head -10
ENGINE_SANITIZE="racecheck synccheck" ENGINE_SANITIZE_TIMEOUT=50 OUT=$W timeout $(( $(left) - 5 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"; grep "compute-sanitizer" $W/san.log | tail -8
stamp end
'
tar czf $OUT/r2.tgz -C /tmp o2
