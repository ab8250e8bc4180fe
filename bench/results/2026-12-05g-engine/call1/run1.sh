#!/usr/bin/env bash
# Call 1 (2026-12-05g): (a) the single-GPU multi-rank harness + compute-sanitizer on the sixth session's final
# collective code plus this tree; (b) engine kernel tests touched by the change (residual + RMSNorm, mma decode
# attention, GEMMs); (c) decode A/B: base (3b45ec1) against this tree, where the tensor-core decode attention and the
# residual + RMSNorm kernels are launched with programmatic dependent launch; (d) Nsight Compute of the prefill
# attention kernel (wgmma-tma) at 8 x 2048 and of a decode step's kernels at 1 x 128. Ran from .snap as `bash run1.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o1; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 560 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 5 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_multirank test_gemm_gpu test_engine_gpu test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
MULTIRANK_SANITIZE_TIMEOUT=150 OUT=$W bash scripts/gpu-check.sh multirank 2>&1 | grep "^==" | tee -a $W/timeline.txt
for t in test_gemm_gpu test_engine_gpu test_residual_rmsnorm_gpu; do
  timeout 120 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/memcheck_rmsnorm.log 2>&1
stamp "memcheck rmsnorm rc=$?"
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Attention*" > $W/memcheck_attention.log 2>&1
stamp "memcheck attention rc=$?"
wait $bp; stamp "base build rc=$?"
run() {  # B L cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 60 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_${cfg}_r$r.json > $W/ab/decode_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192; do IFS=: read -r b l <<< "$c"
  run $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  run $b $l new $r build/gpu/tools/nvrar-llm
done; done
stamp "decode A/B done"
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
timeout 120 ncu --profile-from-start off --clock-control none --kernel-name regex:flash_prefill --launch-count 1 --set full \
  build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size 8 --input-len 2048 --output-len 2 \
  --num-iters-warmup 0 --num-iters 1 --profile-range prefill > $W/ncu_prefill_attention_b8_2048.txt 2>&1
stamp "ncu prefill rc=$?"
timeout 120 ncu --profile-from-start off --clock-control none --kernel-name "regex:skinny|mma_attention|rmsnorm" --launch-count 6 --set full \
  build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 128 --output-len 4 \
  --num-iters-warmup 0 --num-iters 1 --profile-range decode > $W/ncu_decode_b1_128.txt 2>&1
stamp "ncu decode rc=$?"
stamp end
'
tar czf $OUT/r1.tgz -C /tmp o1
