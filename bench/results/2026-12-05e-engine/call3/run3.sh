#!/usr/bin/env bash
# Call 3 (2026-12-05e): the skinny GEMM epilogues (RoPE + KV append, SwiGLU; NVRAR_LLM_FUSE_EPILOGUE) on a GPU for the
# first time: GEMM and engine tests, decode A/B epilogue 0/1 (same binary, alternating, 2 runs), fp32 check, memcheck.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o3; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt
timeout 500 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 490 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_engine_gpu test_gemm_gpu test_flash_prefill_gpu test_sampling_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_gemm_gpu test_engine_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
grep -B2 -A12 -E "Failure" $W/test_*.log | head -60
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192 1:32768; do IFS=: read -r b l <<< "$c"; for e in 0 1; do
  NVRAR_LLM_FUSE_EPILOGUE=$e timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b \
    --input-len $l --output-len 64 --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_e${e}_r$r.json \
    > $W/ab/decode_${b}_${l}_e${e}_r$r.log 2>&1 || echo "run $b $l e$e r$r failed"
done; done; done
stamp "decode A/B done"
python3 sum3.py $W > $W/ab_summary.md; cat $W/ab_summary.md
grep -h "GEMM kernels" $W/ab/decode_1_128_e1_r1.log $W/ab/decode_8_128_e1_r1.log | cut -c1-400
timeout 130 bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
stamp "longcheck rc=$?"; grep -E "^== " $W/lc.log | cut -c1-200 | head -12
grep -h "against fp32" $W/lc/check_*.log
ENGINE_SANITIZE="memcheck" ENGINE_SANITIZE_TIMEOUT=60 OUT=$W timeout $(( $(left) - 5 )) bash scripts/gpu-check.sh enginesan > $W/san.log 2>&1
stamp "sanitizer rc=$?"; grep "compute-sanitizer" $W/san.log | tail -4
stamp end
'
tar czf $OUT/r3.tgz -C /tmp o3
