#!/usr/bin/env bash
# Call 4: prefill 1 x 2048 (2048 rows: the residual + RMSNorm calls take the new unit-per-thread kernel where 77690ec
# took the block kernel), 49f0ed5 against .baseline = 77690ec, nvrar-llm only, alternating, three runs each; the
# prefill median and the instrumented norm phase (`prefill_breakdown_us.allreduce`) from each JSON.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/c4; rm -rf $W; mkdir -p $W
T0=$(date +%s)
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
(cmake -S .baseline -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
   -DNVRAR_NVSHMEM=ON -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH="$PWD/.deps" && \
 cmake --build /tmp/nvrar-base -j 8 --target nvrar-llm) > $W/base-build.log 2>&1 &
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
wait; stamp builds done
for r in 1 2 3; do
  for side in base new; do
    llm=build/gpu/tools/nvrar-llm; [ $side = base ] && llm=/tmp/nvrar-base/tools/nvrar-llm
    timeout 30 $llm bench --model llama3.1-8b --tp 1 --batch-size 1 --input-len 2048 --output-len 2 \
      --num-iters-warmup 1 --num-iters 3 --json $W/${side}_r$r.json > $W/${side}_r$r.log 2>&1
    python3 -c "import json,sys; j=json.load(open('$W/${side}_r$r.json')); print('${side}_r$r', round(j['prefill_ms_median'],3), 'ms; norm phase', round(j['prefill_breakdown_us']['allreduce'],1), 'us; gemm', round(j['prefill_breakdown_us']['gemm'],1))" | tee -a $W/summary.txt
    cp $W/summary.txt $OUT/
  done
done
stamp end
tar czf $OUT/c4.tgz --exclude=build.log -C /tmp c4
