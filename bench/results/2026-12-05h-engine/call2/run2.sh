#!/usr/bin/env bash
# Call 2 (2026-12-05h): decode experiments, toggled by temporary variables in this snapshot only:
#   NVRAR_EXP_EARLY=1    the skinny GEMMs release the next kernel once their last weight load is issued (not landed)
#   NVRAR_EXP_ATTN_L2=1  the tensor-core decode attention asks L2 for its split's first K/V rows before its
#                        griddepcontrol.wait (cp.async.bulk.prefetch.L2; L2 is coherent, so never stale)
#   NVRAR_EXP_RESID=1    TP 1, cuBLASLt GEMMs (prefill): o_proj / down_proj add into the residual in the GEMM
#                        (beta 1), then RMSNorm alone (prefill A/B, cfg r1)
# base = a build of 2181d57; cfg e<EARLY><L2>. GPU tests of the touched kernels with both on, memcheck.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 585 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 575 - ($(date +%s) - T0) )); }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 5 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_engine_gpu test_residual_rmsnorm_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
export NVRAR_EXP_EARLY=1 NVRAR_EXP_ATTN_L2=1 NVRAR_EXP_RESID=1
for t in test_gemm_gpu test_engine_gpu test_residual_rmsnorm_gpu; do
  timeout 120 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Attention*" > $W/memcheck_attention.log 2>&1
stamp "memcheck attention rc=$?"
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_residual_rmsnorm_gpu --gtest_brief=1 > $W/memcheck_rmsnorm.log 2>&1
stamp "memcheck rmsnorm rc=$?"
unset NVRAR_EXP_EARLY NVRAR_EXP_ATTN_L2 NVRAR_EXP_RESID
wait $bp; stamp "base build rc=$?"
run() {  # B L cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 60 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_${cfg}_r$r.json > $W/ab/decode_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192; do IFS=: read -r b l <<< "$c"
  run $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  NVRAR_EXP_EARLY=1 run $b $l e10 $r build/gpu/tools/nvrar-llm
  NVRAR_EXP_ATTN_L2=1 run $b $l e01 $r build/gpu/tools/nvrar-llm
  NVRAR_EXP_EARLY=1 NVRAR_EXP_ATTN_L2=1 run $b $l e11 $r build/gpu/tools/nvrar-llm
done; stamp "round $r done"; done
prun() {  # B T cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 90 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 2 \
    --num-iters-warmup 1 --num-iters 3 --json $W/ab/prefill_${b}_${l}_${cfg}_r$r.json > $W/ab/prefill_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "prefill run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:2048 8:2048 1:8192; do IFS=: read -r b l <<< "$c"
  prun $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  NVRAR_EXP_RESID=1 prun $b $l r1 $r build/gpu/tools/nvrar-llm
done; stamp "prefill round $r done"; done
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
stamp summary
if [ $(left) -gt 100 ]; then
  NVRAR_EXP_RESID=1 timeout $(( $(left) - 5 )) bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
  stamp "longcheck (RESID=1) rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
fi
stamp end
'
tar czf $OUT/r2.tgz -C /tmp o2
