#!/usr/bin/env bash
# Call 6 (fifteenth session, HEAD + call6/timeline.patch): where a decode step's skinny GEMMs lose time. Per block
# globaltimer stamps of every skinny GEMM in the decode graph's last replay (NVRAR_EXP_TL): entry, after
# griddepcontrol.wait, after the first iteration, after the main loop, after the stores. Timing-only diagnostics
# (the stamps cost registers and stores), not a measurement of the step.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/t6; rm -rf $W; mkdir -p $W
T0=$(date +%s)
nvidia-smi -L | tee $W/gpus.txt
BUILD_TARGETS="nvrar-llm" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -1
echo "[$(( $(date +%s) - T0 ))s] build done"
for c in 1:128 8:128; do
  B=${c%:*} C=${c#*:}
  [ $(( $(date +%s) - T0 )) -gt 95 ] && break
  NVRAR_EXP_TL=$W/tl_${B}_$C.csv timeout 25 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 \
    --batch-size $B --input-len $C --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/bench_${B}_$C.log 2>&1
  echo "[$(( $(date +%s) - T0 ))s] $B x $C rc=$? $(grep -E '^Decode step \(median' $W/bench_${B}_$C.log) $(wc -l < $W/tl_${B}_$C.csv 2>/dev/null) lines"
done
tar czf $OUT/t6.tgz -C /tmp t6 --exclude=build.log
