#!/usr/bin/env bash
# The long-prompt benchmark of issue 17, in one job on one GPU: nvrar-llm's prefill and decode beside the PyTorch
# reference (scripts/bench_torch_llama.py: a gpt-fast-style Llama-3.1-8B, eager SDPA prefill, compiled decode in a
# CUDA graph) and cuDNN's fused attention alone (scripts/bench_cudnn_attention.py), then one markdown table of all
# three against the issue's goals (scripts/long_table.py -> OUT/long_context.md, also printed).
#
#   bash scripts/engine-long-bench.sh BUILD OUT            e.g. bash scripts/engine-long-bench.sh build/gpu "$OUT"
#   LONG_CASES='prefill:1:2048 decode:1:8192' LONG_SKIP_TORCH=1 bash scripts/engine-long-bench.sh build/gpu out
#
# BUILD holds tools/nvrar-llm (bash scripts/gpu-check.sh build makes build/gpu); OUT receives every log.
# LONG_CASES    space-separated cases, default the 11 of the issue and decode batch 32 x 8192 and 1 x 131072:
#                 prefill:B:T  nvrar-llm bench --batch-size B --input-len T --output-len 2 (prefill_ms_median)
#                 decode:B:C   nvrar-llm bench --batch-size B --input-len C --output-len 64 (decode_step_ms_median)
# LONG_LAYERS   truncate the model in all three (default 32; the table's pass/miss then reads n/a)
# LONG_SKIP_ENGINE=1, LONG_SKIP_TORCH=1, LONG_SKIP_CUDNN=1: leave a piece out (its column says "not run");
#               LONG_TABLE_ONLY=1 only rewrites the table from what OUT holds.
# LONG_WARMUP (1) / LONG_ITERS (3): nvrar-llm --num-iters-warmup / --num-iters, and the torch prefill's --warmup /
#               --iters; a case of more than LONG_BIG_TOKENS (65536) prompt tokens runs nvrar-llm with
#               LONG_BIG_WARMUP (1) / LONG_BIG_ITERS (1) (one 128K-token prefill takes seconds).
# LONG_DECODE_MODE  compile (default) or eager: the torch reference's decode layers; LONG_DECODE_ATTENTION auto
#               (default: the fastest form timed per case), folded, gqa or repeat (bench_torch_llama.py --help).
# LONG_ALLREDUCE    nvrar-llm --allreduce (default auto; at TP 1 only the fused residual + RMSNorm runs)
# LONG_ENGINE_ARGS  more nvrar-llm bench arguments, e.g. '--prefill-chunk 8192'
# LONG_MPIRUN (1): nvrar-llm runs under mpirun -np 1 where mpirun exists; 0 runs it directly.
# LONG_TIMEOUT (300 s) per nvrar-llm case; LONG_TORCH_TIMEOUT (480 s) for each torch script.
# LONG_PYTHON   the Python that has torch (default: the first of python3, /opt/torch/.venv/bin/python3,
#               ./.venv/bin/python3 that imports it). The table needs only python3.
# LONG_DECODE_AB=1  the decode attention A/B (NVRAR_LLM_DECODE_ATTENTION): each decode case runs LONG_AB_REPEAT
#               (default 2) times with the two LONG_DECODE_KERNELS (base, candidate; default 'splitk fused', also
#               mma) alternately (splitk r1, fused r1, splitk r2, fused r2), files
#               OUT/engine_decode_b<B>_<C>_<kernel>_r<n>.{log,json}; then defaults change to LONG_CASES
#               'decode:1:8192 decode:8:8192 decode:32:8192 decode:1:32768 decode:8:32768 decode:1:131072' (batch 32
#               x 32768 would need 137 GB of KV cache), LONG_WARMUP 0 / LONG_ITERS 1 (one prefill per run; the step
#               is the median of the 63 graph-replayed decode steps), LONG_SKIP_TORCH 1 (cuDNN still runs), and the
#               table is OUT/decode_ab.md (scripts/decode_ab_table.py: both kernels per run, their ratio, the
#               eager step's attention time and the K/V bytes it read per second, cuDNN beside them).
# LONG_AB_PIN_GEMM (1) in either A/B: every run of a case after its first pins the GEMM kernels the first chose
#               (its JSON's gemm_plan as NVRAR_LLM_GEMM); 0: each run times its own (the tuner may pick others).
# LONG_PREFILL_AB=1  the prefill attention A/B (NVRAR_LLM_PREFILL_ATTENTION): each prefill case runs LONG_AB_REPEAT
#               (default 2) times with each of LONG_PREFILL_KERNELS (default 'wgmma-tma wgmma-ws'; also flash,
#               flash128, wgmma, wgmma2, splitk) in turn, files
#               OUT/engine_prefill_b<B>_<T>_<kernel>_r<n>.{log,json}; default LONG_CASES 'prefill:1:2048
#               prefill:8:2048 prefill:1:8192 prefill:1:32768', torch and cuDNN skipped unless asked for; table
#               OUT/prefill_ab.md (scripts/prefill_ab_table.py). Measured on an H100: 1 x 8192, 1 x 32768 and 8 x
#               2048 with two kernels, two runs each, in 72 s (bench/results/2026-12-06-engine call 4).
# Files: OUT/engine_<kind>_b<B>_<L>.{log,json}, OUT/torch_llama.{log,json}, OUT/cudnn_attention.{log,json},
#   OUT/long_context.md, and all of them in OUT/long_all.tgz (for tools that bring back few files).
# Device time, measured on one H100 (2026-12-05, bench/results/2026-12-05e-engine calls 4-5): the first 11 cases 126 s
#   for nvrar-llm + cuDNN (the 128K-token prefill alone 38 s) and 102 s for the torch reference; the two long decode
#   cases (batch 32 x 8192, 1 x 131072) 82 s more for nvrar-llm + cuDNN, their torch part not yet measured. LONG_CASES
#   and the LONG_SKIP_* switches shorten it.
#   LONG_DECODE_AB=1, the six default cases x 4 runs, estimated (not yet measured): ~7 minutes (a prefill per run
#   dominates: 8 x 32768 ~30 s, 1 x 131072 ~30 s, 32 x 8192 ~10 s) + ~1 for cuDNN; split it over two device calls
#   (LONG_CASES) to stay inside a 10-minute call.
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: bash scripts/engine-long-bench.sh BUILD OUT   (BUILD holds tools/nvrar-llm; OUT gets the logs)" >&2
  exit 2
fi
BUILD=$1 OUT=$2
[[ "$BUILD" = /* ]] || BUILD=$PWD/$BUILD  # relative to where it was called from, not the repository root
[[ "$OUT" = /* ]] || OUT=$PWD/$OUT
cd "$(dirname "$0")/.."
mkdir -p "$OUT" || exit 2

# Never NVLink multicast (it can take shared GPUs out of service).
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"

AB=${LONG_DECODE_AB:-0}
PREFILL_AB=${LONG_PREFILL_AB:-0}
PREFILL_KERNELS=${LONG_PREFILL_KERNELS:-"wgmma-tma wgmma-ws"}
if ! [[ "${LONG_MPIRUN:-1}" =~ ^[01]$ ]]; then
  echo "engine-long-bench.sh: LONG_MPIRUN='$LONG_MPIRUN': expected 1 (mpirun where it exists) or 0" >&2
  exit 2
fi
DECODE_KERNELS=$(echo ${LONG_DECODE_KERNELS:-"splitk fused"})
if ! [[ "$DECODE_KERNELS" =~ ^(splitk|fused|mma)\ (splitk|fused|mma)$ ]] ||
   [ "${DECODE_KERNELS% *}" = "${DECODE_KERNELS#* }" ]; then
  echo "engine-long-bench.sh: LONG_DECODE_KERNELS='$DECODE_KERNELS': expected two different kernels of splitk, fused," \
    "mma (the base, then the candidate)" >&2
  exit 2
fi
for k in $PREFILL_KERNELS; do
  if ! [[ "$k" =~ ^(flash|flash128|wgmma|wgmma2|wgmma-tma|wgmma-ws|splitk)$ ]]; then
    echo "engine-long-bench.sh: LONG_PREFILL_KERNELS entry '$k': expected flash, flash128, wgmma, wgmma2," \
      "wgmma-tma, wgmma-ws or splitk" >&2
    exit 2
  fi
done
if [ "$AB" = 1 ] && [ "$PREFILL_AB" = 1 ]; then
  echo "engine-long-bench.sh: LONG_DECODE_AB=1 and LONG_PREFILL_AB=1: one A/B per run" >&2
  exit 2
fi
if [ "$PREFILL_AB" = 1 ]; then
  CASES=${LONG_CASES:-"prefill:1:2048 prefill:8:2048 prefill:1:8192 prefill:1:32768"}
  LONG_SKIP_TORCH=${LONG_SKIP_TORCH:-1} LONG_SKIP_CUDNN=${LONG_SKIP_CUDNN:-1}
  AB_REPEAT=${LONG_AB_REPEAT:-2}
  if ! [[ "$AB_REPEAT" =~ ^[1-9][0-9]*$ ]]; then
    echo "engine-long-bench.sh: LONG_AB_REPEAT='$AB_REPEAT': expected a positive integer" >&2
    exit 2
  fi
elif [ "$AB" = 1 ]; then
  CASES=${LONG_CASES:-"decode:1:8192 decode:8:8192 decode:32:8192 decode:1:32768 decode:8:32768 decode:1:131072"}
  LONG_WARMUP=${LONG_WARMUP:-0} LONG_ITERS=${LONG_ITERS:-1} LONG_BIG_WARMUP=${LONG_BIG_WARMUP:-0}
  LONG_SKIP_TORCH=${LONG_SKIP_TORCH:-1}
  AB_REPEAT=${LONG_AB_REPEAT:-2}
  if ! [[ "$AB_REPEAT" =~ ^[1-9][0-9]*$ ]]; then
    echo "engine-long-bench.sh: LONG_AB_REPEAT='$AB_REPEAT': expected a positive integer" >&2
    exit 2
  fi
else
  CASES=${LONG_CASES:-"prefill:1:2048 prefill:1:8192 prefill:8:2048 prefill:8:8192 prefill:1:32768 prefill:1:131072
    decode:1:128 decode:8:128 decode:1:8192 decode:8:8192 decode:1:32768 decode:32:8192 decode:1:131072"}
fi
CASES=$(echo $CASES)  # one line, single spaces
LAYERS=${LONG_LAYERS:-32}
for c in $CASES; do
  if ! [[ "$c" =~ ^(prefill|decode):[1-9][0-9]*:[1-9][0-9]*$ ]]; then
    echo "engine-long-bench.sh: LONG_CASES entry '$c': expected prefill:BATCH:TOKENS or decode:BATCH:CONTEXT" >&2
    exit 2
  fi
done
if ! [[ "$LAYERS" =~ ^[1-9][0-9]*$ ]] || [ "$LAYERS" -gt 32 ]; then
  echo "engine-long-bench.sh: LONG_LAYERS='$LAYERS': expected 1..32" >&2
  exit 2
fi
summary=()
note() { summary+=("$1"); echo "== $1"; }

if [ "${LONG_TABLE_ONLY:-0}" != 1 ] && [ "${LONG_SKIP_ENGINE:-0}" != 1 ]; then
  LLM=$BUILD/tools/nvrar-llm
  launcher=()
  if [ "${LONG_MPIRUN:-1}" = 1 ] && command -v mpirun > /dev/null; then
    launcher=(mpirun --allow-run-as-root --oversubscribe --bind-to none -np 1
      -x NCCL_NVLS_ENABLE -x NVSHMEM_DISABLE_NVLS -x TORCH_SYMM_MEM_DISABLE_MULTICAST -x LD_LIBRARY_PATH)
  fi
  if [ ! -x "$LLM" ]; then
    note "nvrar-llm: $LLM is missing (build it: bash scripts/gpu-check.sh build); engine cases skipped"
  else
    # run_case CASE STEM [VAR=VALUE]: one nvrar-llm bench, with that kernel setting (NVRAR_LLM_DECODE_ATTENTION or
    # NVRAR_LLM_PREFILL_ATTENTION) for it alone if given.
    run_case() {
      local c=$1 stem=$2 setting=${3:-} kind bs len warmup iters outlen rc start lines pass=()
      IFS=: read -r kind bs len <<< "$c"
      warmup=${LONG_WARMUP:-1} iters=${LONG_ITERS:-3}
      if [ $((bs * len)) -gt "${LONG_BIG_TOKENS:-65536}" ]; then
        warmup=${LONG_BIG_WARMUP:-1} iters=${LONG_BIG_ITERS:-1}
      fi
      outlen=$([ "$kind" = prefill ] && echo 2 || echo 64)
      [ -n "$setting" ] && [ ${#launcher[@]} -gt 0 ] && pass=(-x "${setting%%=*}")
      [ -n "${gemm_pin}${NVRAR_LLM_GEMM:-}" ] && [ ${#launcher[@]} -gt 0 ] && pass+=(-x NVRAR_LLM_GEMM)
      rm -f "$OUT/$stem.json"
      start=$SECONDS
      (
        [ -z "$setting" ] || export "${setting?}"
        [ -z "$gemm_pin" ] || export NVRAR_LLM_GEMM="$gemm_pin"
        timeout "${LONG_TIMEOUT:-300}" "${launcher[@]}" "${pass[@]}" "$LLM" bench --model llama3.1-8b --tp 1 \
          --batch-size "$bs" --input-len "$len" --output-len "$outlen" --num-iters-warmup "$warmup" \
          --num-iters "$iters" --allreduce "${LONG_ALLREDUCE:-auto}" \
          $([ "$LAYERS" != 32 ] && echo --num-layers "$LAYERS") ${LONG_ENGINE_ARGS:-} --json "$OUT/$stem.json" \
          > "$OUT/$stem.log" 2>&1
      )
      rc=$?
      lines=$(grep -E '^(Prefill|Time to first|Decode step)' "$OUT/$stem.log" | tr '\n' ' ')
      note "nvrar-llm $c${setting:+ ($setting)}: rc=$rc ($((SECONDS - start)) s) $lines"
      [ $rc -eq 0 ] || tail -3 "$OUT/$stem.log"
    }
    # An A/B case's runs after its first repeat the first one's GEMM kernels (the plan its JSON holds, as
    # NVRAR_LLM_GEMM), so that they differ in the kernel compared, not in the GEMM tuner's picks. LONG_AB_PIN_GEMM=0
    # leaves every run to time its own; an NVRAR_LLM_GEMM of the caller's own is used in every run as it is.
    gemm_pin=""
    pin_after() {  # pin_after STEM: gemm_pin from OUT/STEM.json where the A/B pins
      [ "${LONG_AB_PIN_GEMM:-1}" = 1 ] && [ -z "${NVRAR_LLM_GEMM:-}" ] && [ -z "$gemm_pin" ] || return 0
      gemm_pin=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("gemm_plan", ""))' \
        "$OUT/$1.json" 2> /dev/null)
      if [ -n "$gemm_pin" ]; then
        note "GEMM kernels pinned for the rest of the case: NVRAR_LLM_GEMM=$gemm_pin"
      else
        note "no gemm_plan in $OUT/$1.json (the run failed?): the next run of the case times its own GEMMs"
      fi
    }
    for c in $CASES; do
      IFS=: read -r kind bs len <<< "$c"
      gemm_pin=""
      if [ "$AB" = 1 ] && [ "$kind" = decode ]; then
        for r in $(seq "$AB_REPEAT"); do
          for attn in $DECODE_KERNELS; do
            run_case "$c" "engine_${kind}_b${bs}_${len}_${attn}_r$r" "NVRAR_LLM_DECODE_ATTENTION=$attn"
            pin_after "engine_${kind}_b${bs}_${len}_${attn}_r$r"
          done
        done
      elif [ "$PREFILL_AB" = 1 ] && [ "$kind" = prefill ]; then
        for r in $(seq "$AB_REPEAT"); do
          for k in $PREFILL_KERNELS; do
            run_case "$c" "engine_${kind}_b${bs}_${len}_${k}_r$r" "NVRAR_LLM_PREFILL_ATTENTION=$k"
            pin_after "engine_${kind}_b${bs}_${len}_${k}_r$r"
          done
        done
      else
        run_case "$c" "engine_${kind}_b${bs}_${len}"
      fi
    done
  fi
fi

PY=${LONG_PYTHON:-}
if [ -z "$PY" ]; then
  for cand in python3 /opt/torch/.venv/bin/python3 "$PWD/.venv/bin/python3"; do
    if "$cand" -c 'import torch' > /dev/null 2>&1; then PY=$cand; break; fi
  done
fi
torch_wanted=0
[ "${LONG_TABLE_ONLY:-0}" != 1 ] && { [ "${LONG_SKIP_TORCH:-0}" != 1 ] || [ "${LONG_SKIP_CUDNN:-0}" != 1 ]; } &&
  torch_wanted=1
if [ $torch_wanted = 1 ] && [ -z "$PY" ]; then
  note "torch: no Python here imports torch (set LONG_PYTHON); the reference and the cuDNN floor are skipped"
elif [ $torch_wanted = 1 ]; then
  if [ "${LONG_SKIP_TORCH:-0}" != 1 ]; then
    rm -f "$OUT/torch_llama.json"
    start=$SECONDS
    PYTHONUNBUFFERED=1 timeout "${LONG_TORCH_TIMEOUT:-480}" "$PY" scripts/bench_torch_llama.py --cases $CASES \
      --layers "$LAYERS" --warmup "${LONG_WARMUP:-1}" --iters "${LONG_ITERS:-3}" \
      --decode-mode "${LONG_DECODE_MODE:-compile}" --decode-attention "${LONG_DECODE_ATTENTION:-auto}" \
      --json "$OUT/torch_llama.json" > "$OUT/torch_llama.log" 2>&1
    note "torch reference ($PY): rc=$? ($((SECONDS - start)) s)"
    grep -E '^(#|prefill|decode)' "$OUT/torch_llama.log"
  fi
  if [ "${LONG_SKIP_CUDNN:-0}" != 1 ]; then
    rm -f "$OUT/cudnn_attention.json"
    start=$SECONDS
    PYTHONUNBUFFERED=1 timeout "${LONG_TORCH_TIMEOUT:-480}" "$PY" scripts/bench_cudnn_attention.py --cases $CASES \
      --layers "$LAYERS" --json "$OUT/cudnn_attention.json" > "$OUT/cudnn_attention.log" 2>&1
    note "cuDNN attention floor: rc=$? ($((SECONDS - start)) s)"
    grep -E '^(#|prefill|decode)' "$OUT/cudnn_attention.log"
  fi
fi

if [ "$PREFILL_AB" = 1 ]; then
  python3 scripts/prefill_ab_table.py "$OUT" --cases "$CASES" --kernels "$PREFILL_KERNELS" --repeat "$AB_REPEAT" \
    > "$OUT/prefill_ab_table.log" 2>&1
  note "table: rc=$? -> $OUT/prefill_ab.md"
  echo; cat "$OUT/prefill_ab.md" 2>/dev/null || cat "$OUT/prefill_ab_table.log"
elif [ "$AB" = 1 ]; then
  python3 scripts/decode_ab_table.py "$OUT" --cases "$CASES" --repeat "$AB_REPEAT" --kernels "$DECODE_KERNELS" \
    > "$OUT/decode_ab_table.log" 2>&1
  note "table: rc=$? -> $OUT/decode_ab.md"
  echo; cat "$OUT/decode_ab.md" 2>/dev/null || cat "$OUT/decode_ab_table.log"
else
  python3 scripts/long_table.py "$OUT" --cases "$CASES" > "$OUT/long_table.log" 2>&1
  note "table: rc=$? -> $OUT/long_context.md"
  echo; cat "$OUT/long_context.md" 2>/dev/null || cat "$OUT/long_table.log"
fi
echo; echo "==== summary"; printf '%s\n' "${summary[@]}"
tar czf "/tmp/long_all.$$.tgz" -C "$OUT" --exclude long_all.tgz . 2> /dev/null &&
  mv "/tmp/long_all.$$.tgz" "$OUT/long_all.tgz"
