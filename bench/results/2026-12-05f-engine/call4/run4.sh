#!/usr/bin/env bash
# Call 4 (2026-12-05f): the skinny GEMMs call griddepcontrol.launch_dependents once their weights are all read (after
# the main loop), so the PDL-launched GEMM after the fused gate/up + SwiGLU GEMM (down_proj) may start streaming its
# weights during gate/up's tail (the SwiGLU kernel used to release it at its start). Decode A/B against the same tree
# without those two lines (base/: the working tree of call 3 plus the chunk default), alternating, two runs each;
# then test_gemm_gpu and test_engine_gpu. Ran from .snap as `bash run4.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o4; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 420 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 6 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
wait $bp; stamp "base build rc=$?"
for t in test_gemm_gpu test_engine_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
run() {  # B L cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 60 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_${cfg}_r$r.json > $W/ab/decode_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192 1:32768; do IFS=: read -r b l <<< "$c"
  run $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  run $b $l new $r build/gpu/tools/nvrar-llm
done; done
stamp "decode A/B done"
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
stamp end
'
tar czf $OUT/r4.tgz -C /tmp o4
