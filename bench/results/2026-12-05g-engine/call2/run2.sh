#!/usr/bin/env bash
# Call 2 (2026-12-05g): RoPE + KV append as a block per token row (16-byte accesses, cos/sin once per row) and the
# decode attention / residual + RMSNorm launched with PDL, against base 3b45ec1: test_engine_gpu (the row kernel
# against the per-pair kernel, bit for bit) and memcheck of the RoPE tests; prefill A/B (instrumented prefill's
# phases, 1 warm-up + 3 timed) at 8 x 2048, 1 x 8192, 1 x 2048, 1 x 32768, alternating, two runs each; decode at
# 1 x 128 and 8 x 128 with the tensor-core attention's split floor NVRAR_EXP_SPLIT_FLOOR (a temporary experiment
# variable) 0 / 128 / 256 keys. Ran from .snap as `bash run2.sh`.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab $W/split
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 580 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
(cmake -S base -B /tmp/nvrar-base -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_NVSHMEM=ON \
   -DNVRAR_MPI=ON -DCMAKE_PREFIX_PATH=$PWD/.deps && cmake --build /tmp/nvrar-base -j 5 --target nvrar-llm) > $W/base-build.log 2>&1 &
bp=$!
BUILD_TARGETS="nvrar-llm test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
timeout 120 build/gpu/tests/test_engine_gpu --gtest_brief=1 > $W/test_engine_gpu.log 2>&1
stamp "test_engine_gpu rc=$? $(grep -E "PASSED|FAILED" $W/test_engine_gpu.log | tr "\n" " ")"
timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Rope*" > $W/memcheck_rope.log 2>&1
stamp "memcheck rope rc=$? $(grep -E "ERROR SUMMARY" $W/memcheck_rope.log)"
wait $bp; stamp "base build rc=$?"
prefill() {  # B L cfg rep bin
  local b=$1 l=$2 cfg=$3 r=$4 bin=$5
  timeout 90 $bin bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 2 \
    --num-iters-warmup 1 --num-iters 3 --json $W/ab/prefill_${b}_${l}_${cfg}_r$r.json > $W/ab/prefill_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "prefill $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 8:2048 1:8192 1:2048 1:32768; do IFS=: read -r b l <<< "$c"
  prefill $b $l base $r /tmp/nvrar-base/tools/nvrar-llm
  prefill $b $l new $r build/gpu/tools/nvrar-llm
done; stamp "prefill round $r done"; done
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
for r in 1 2; do for c in 1:128 8:128; do IFS=: read -r b l <<< "$c"; for f in 0 128 256; do
  NVRAR_EXP_SPLIT_FLOOR=$f timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/split/decode_${b}_${l}_f${f}_r$r.json > $W/split/decode_${b}_${l}_f${f}_r$r.log 2>&1 || echo "split $b $f failed"
done; done; done
stamp "split floors done"
for f in $W/split/*.json; do python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1].split(\"/\")[-1], d[\"decode_step_ms_median\"])" $f; done | tee $W/split_summary.txt
stamp end
'
tar czf $OUT/r2.tgz -C /tmp o2
