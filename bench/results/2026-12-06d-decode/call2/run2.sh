#!/usr/bin/env bash
# Call 2 (fourteenth session, tree of HEAD 76cd387 + this script): on the H200 the issue's goals are set for, the
# one-job long-prompt table of issue 17 (nvrar-llm + cuDNN, then the PyTorch reference), after the persistent
# kernel's test and a layers / persistent pair at 1 x 128 and 8 x 128.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt; cp $W/gpus.txt $OUT/
timeout 585 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 580 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_decode_megakernel_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 40 build/gpu/tests/test_decode_megakernel_gpu --gtest_brief=1 > $W/mk.log 2>&1
stamp "test_decode_megakernel_gpu rc=$? $(grep -E "PASSED|FAILED" $W/mk.log | tr "\n" " ")"
for case in layers:1 persistent:1 layers:8 persistent:8; do
  k=${case%:*} B=${case#*:}
  NVRAR_LLM_DECODE_KERNEL=$k timeout 30 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $B \
    --input-len 128 --output-len 64 --num-iters-warmup 1 --num-iters 3 > $W/ab/${k}_$B.log 2>&1
  stamp "$k batch $B rc=$? $(grep -E "^Decode step \(median|rror" $W/ab/${k}_$B.log | head -2 | tr "\n" " ")"
done
LONG_SKIP_TORCH=1 LONG_TIMEOUT=90 timeout $(( $(left) - 150 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_engine.log 2>&1
stamp "engine+cudnn rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null
LONG_SKIP_ENGINE=1 LONG_SKIP_CUDNN=1 LONG_TORCH_TIMEOUT=$(( $(left) - 12 )) timeout $(( $(left) - 8 )) bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_torch.log 2>&1
stamp "torch rc=$?"
LONG_TABLE_ONLY=1 bash scripts/engine-long-bench.sh build/gpu $W/lb > $W/lb_table.log 2>&1
cp $W/lb/long_context.md $OUT/ 2>/dev/null; cat $W/lb/long_context.md
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null
rm -f $W/lb/long_all.tgz
tar czf $OUT/r2.tgz -C /tmp o2
