#!/usr/bin/env bash
# Call 4 (H200, warm after call 3; the tree of call 2): prefill chunk sizes at 1 x 8192 and 8 x 2048, default
# (4096) / 8192 / 16384, twice each, same job. Run as one command line from .snap (the snapshot of call 2).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
W=/tmp/o4; mkdir -p $W
BUILD_TARGETS=nvrar-llm OUT=$W timeout 100 bash scripts/gpu-check.sh build 2>&1 | tail -1
for ch in default 8192 16384 default 8192 16384; do
  a=""; [ $ch = default ] || a="--prefill-chunk $ch"
  LONG_SKIP_TORCH=1 LONG_SKIP_CUDNN=1 LONG_CASES="prefill:1:8192 prefill:8:2048" LONG_ENGINE_ARGS="$a" timeout 40 \
    bash scripts/engine-long-bench.sh build/gpu $W/c$ch-$RANDOM 2>&1 | grep "^== nvrar-llm" | sed "s/^/[$ch] /" |
    cut -c1-220 | tee -a $W/chunks.txt
done
cp $W/chunks.txt $OUT/
