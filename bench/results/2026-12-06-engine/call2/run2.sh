#!/usr/bin/env bash
# Call 2 (2026-12-06): the tensor-core decode attention requesting its first two K/V tiles before griddepcontrol.wait
# (all keys but each row's newest), toggled in this snapshot only by NVRAR_EXP_EARLY_KV=1 (cfg e1; base = 0, the
# loads after the wait as before); NVRAR_EXP_KPS=K (temporary) sets the keys per split at long contexts (cfg
# e1k<K>). Tests with the toggle on and off, compute-sanitizer; decode A/B, two rounds; the fp32 check with it on.
set -u
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
W=/tmp/o2; rm -rf $W; mkdir -p $W/ab
T0=$(date +%s); export T0 W
nvidia-smi -L > $W/gpus.txt; cat $W/gpus.txt
timeout 560 bash -c '
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a $W/timeline.txt; }
left() { echo $(( 555 - ($(date +%s) - T0) )); }
BUILD_TARGETS="nvrar-llm test_gemm_gpu test_engine_gpu" OUT=$W bash scripts/gpu-check.sh build 2>&1 | tail -2
stamp build done
for e in 1 0; do for t in test_gemm_gpu test_engine_gpu; do
  NVRAR_EXP_EARLY_KV=$e timeout 120 build/gpu/tests/$t --gtest_brief=1 > $W/${t}_e$e.log 2>&1
  stamp "$t early=$e rc=$? $(grep -E "PASSED|FAILED" $W/${t}_e$e.log | tr "\n" " ")"
done; done
run() {  # B L cfg rep [env...]
  local b=$1 l=$2 cfg=$3 r=$4; shift 4
  env "$@" timeout 60 build/gpu/tools/nvrar-llm bench --model llama3.1-8b --tp 1 --batch-size $b --input-len $l --output-len 64 \
    --num-iters-warmup 0 --num-iters 1 --json $W/ab/decode_${b}_${l}_${cfg}_r$r.json > $W/ab/decode_${b}_${l}_${cfg}_r$r.log 2>&1 \
    || echo "run $b $l $cfg r$r failed"
}
for r in 1 2; do for c in 1:128 8:128 1:8192 8:8192 1:32768; do IFS=: read -r b l <<< "$c"
  run $b $l base $r NVRAR_EXP_EARLY_KV=0
  run $b $l e1 $r NVRAR_EXP_EARLY_KV=1
done; stamp "round $r done"; done
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
export NVRAR_EXP_EARLY_KV=1
timeout 150 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*Attention*" > $W/memcheck_attention.log 2>&1
stamp "memcheck attention rc=$?"
timeout 100 compute-sanitizer --tool racecheck --error-exitcode 9 build/gpu/tests/test_engine_gpu --gtest_brief=1 --gtest_filter="*TensorCoreAttention*:*AttentionMatches*" > $W/racecheck_attention.log 2>&1
stamp "racecheck attention rc=$?"
timeout 100 compute-sanitizer --tool memcheck --error-exitcode 9 build/gpu/tests/test_gemm_gpu --gtest_brief=1 --gtest_filter="*SeesTheNewKeys*" > $W/memcheck_newkeys.log 2>&1
stamp "memcheck new keys rc=$?"
for r in 1 2; do for c in 1:8192 8:8192 1:32768; do IFS=: read -r b l <<< "$c"
  for k in 192 512 1024; do run $b $l e1k$k $r NVRAR_EXP_EARLY_KV=1 NVRAR_EXP_KPS=$k; done
done; stamp "kps round $r done"; [ $(left) -lt 150 ] && break; done
python3 sum1.py $W > $W/ab_summary.md; cat $W/ab_summary.md
if [ $(left) -gt 80 ]; then
  timeout $(( $(left) - 5 )) bash scripts/engine-long-check.sh build/gpu $W/lc > $W/lc.log 2>&1
  stamp "longcheck (early=1) rc=$? $(grep -cE "PASSED" $W/lc.log) passed lines"
fi
stamp end
'
cp $W/timeline.txt $W/ab_summary.md $OUT/ 2>/dev/null
tar czf $OUT/r2.tgz -C /tmp o2
