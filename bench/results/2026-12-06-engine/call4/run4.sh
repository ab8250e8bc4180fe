#!/usr/bin/env bash
# Call 4 (2026-12-06, tenth session): the new code's first run on a GPU. (1) The RMSNorm inside the decode GEMMs
# (NVRAR_LLM_FUSE_NORM): test_skinny_norm_gpu, test_gemm_gpu, memcheck and racecheck of the new tests; the decode A/B
# 0 / 1 at five shapes, two rounds, every run after the first pinned to the first run's GEMM plan (NVRAR_LLM_GEMM).
# (2) Call 3's script: the prefill attention wgmma-ws (its tests, where a hang is cut by the timeout; the prefill A/B
# against wgmma-tma; memcheck). (3) The fp32 check with the norm fusion on, with the time left.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o4; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W OUT
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 575 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; cp $W/timeline.txt $OUT/; }
left() { echo $(( 570 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_skinny_norm_gpu test_gemm_gpu test_flash_prefill_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for t in test_skinny_norm_gpu test_gemm_gpu; do
  timeout 90 build/gpu/tests/$t --gtest_brief=1 > $W/$t.log 2>&1
  stamp "$t rc=$? $(grep -E "PASSED|FAILED" $W/$t.log | tr "\n" " ")"
done
head -c 2500 $W/test_skinny_norm_gpu.log
for tool in memcheck racecheck; do
  timeout 90 compute-sanitizer --tool $tool --error-exitcode 9 build/gpu/tests/test_skinny_norm_gpu --gtest_brief=1 > $W/${tool}_norm.log 2>&1
  stamp "$tool skinny norm rc=$?"
done
PIN=""
run() {  # B L value round (value 0: cfg base, 1: cfg fnorm)
  local b=$1 l=$2 v=$3 r=$4 cfg=base; [ $3 = 1 ] && cfg=fnorm
  local f=$W/ab/decode_${b}_${l}_${cfg}_r$r
  NVRAR_LLM_FUSE_NORM=$v NVRAR_LLM_GEMM=$PIN timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 \
    --batch-size $b --input-len $l --output-len 64 --num-iters-warmup 0 --num-iters 1 --json $f.json > $f.log 2>&1 \
    || echo "run $b $l $cfg r$r failed: $(tail -2 $f.log)"
  [ -n "$PIN" ] || PIN=$(python3 -c "import json; print(json.load(open(\"$f.json\")).get(\"gemm_plan\", \"\"))" 2>/dev/null)
}
for c in 1:128 8:128 1:8192 8:8192 1:32768; do
  PIN=""
  for r in 1 2; do run ${c%:*} ${c#*:} 0 $r; run ${c%:*} ${c#*:} 1 $r; done
  stamp "decode $c done (pinned: ${PIN:0:60}...)"
done
python3 sum1.py $W > $W/ab_summary.md; cp $W/ab_summary.md $OUT/; cat $W/ab_summary.md
grep -h "Residual stream" $W/ab/*fnorm_r1.log | sort | uniq -c
timeout 90 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 --gtest_filter="*WgmmaWs*" > $W/flash_ws.log 2>&1
rc=$?; stamp "flash wgmma-ws rc=$rc $(grep -E "PASSED|FAILED" $W/flash_ws.log | tr "\n" " ")"; head -c 2000 $W/flash_ws.log
if [ $rc = 0 ]; then
  LONG_PREFILL_AB=1 LONG_PREFILL_KERNELS="wgmma-tma wgmma-ws" LONG_CASES="prefill:1:8192 prefill:1:32768 prefill:8:2048" \
    timeout 150 bash scripts/engine-long-bench.sh build/gpu $W/pab > $W/pab.log 2>&1
  stamp "prefill A/B rc=$?"; cp $W/pab/prefill_ab.md $OUT/ 2>/dev/null; cat $W/pab/prefill_ab.md
  timeout 60 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_flash_prefill_gpu --gtest_brief=1 --gtest_filter="*WgmmaWs*" > $W/memcheck_ws.log 2>&1
  stamp "memcheck wgmma-ws rc=$?"
fi
if [ $(left) -gt 100 ]; then
  LONG_CHECK_ENVS=NVRAR_LLM_FUSE_NORM=1 timeout $(( $(left) - 5 )) bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
  stamp "longcheck (fuse norm) rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
  grep -E "PASSED|FAILED|ratio" $W/lc.log | head -20
fi
stamp end
'
cp $W/timeline.txt $OUT/ 2>/dev/null
tar czf $OUT/r4.tgz -C /tmp o4
