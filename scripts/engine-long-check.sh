#!/usr/bin/env bash
# GPU machine: nvrar-llm's logits against an fp32 forward (scripts/hf_reference.py) over the shapes and prompt lengths
# of the long-prompt work (2-layer models, and two of the shapes with 32 layers: "_l32"), and chunked against unchunked
# prefill. Run by `scripts/gpu-check.sh longcheck`.
#   bash scripts/engine-long-check.sh BUILD OUT
# LONG_CHECKS: a subset of the case names below. Each case: a random tiny Llama written by hf_reference.py with the
# case's shape, then `nvrar-llm check` (TP 1) against its fp32 logits; the long case also runs with two chunk sizes
# and compares our logits of both runs, with the decode GEMMs pinned to skinny variant 0 (NVRAR_LLM_GEMM=skinny0,
# unless LONG_CHECK_ENVS sets it; prefill's GEMMs stay cuBLASLt), since each run times its own GEMM choice and two
# variants may round differently.
# LONG_CHECK_ENVS: the settings to check each case under, space-separated (unset: "default NVRAR_LLM_ACTIVATIONS=fp32",
# the two numerics modes); "default" is the unset settings, anything else is VAR=value[,VAR=value] set for nvrar-llm,
# e.g.
#   LONG_CHECK_ENVS='default NVRAR_LLM_PREFILL_ATTENTION=wgmma \
#                    NVRAR_LLM_PREFILL_ATTENTION=flash128,NVRAR_LLM_DECODE_ATTENTION=fused'
# (logs check_<case>_<env tag>_c<chunk>.log; the tag is the env with '=' and ',' replaced).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:?build dir}; OUT=${2:?output dir}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
LLM=$BUILD/tools/nvrar-llm
# name | hf_reference.py arguments | nvrar-llm check --prefill-chunk values (the first is checked; others compared)
cases=(
  "p1_d64_gqa1|--prompt-len 1 --steps 16 --head-dim 64 --heads 4 --kv-heads 4 --hidden 256|0"
  "p300_d64_gqa4_tied|--prompt-len 300 --steps 16 --head-dim 64 --heads 12 --kv-heads 3 --hidden 384 --tied --plain-rope --eps 1e-6|0"
  "p300_d128_gqa8|--prompt-len 300 --steps 16 --head-dim 128 --heads 8 --kv-heads 1 --hidden 512|0"
  "p300_d64_gqa8_h512|--prompt-len 300 --steps 16 --head-dim 64 --heads 8 --kv-heads 1 --hidden 512|0"
  "p2048_d128_gqa4|--prompt-len 2048 --steps 8 --head-dim 128 --heads 8 --kv-heads 2 --hidden 512|0"
  "p2048_d64_gqa8_tied|--prompt-len 2048 --steps 8 --head-dim 64 --heads 8 --kv-heads 1 --hidden 256 --tied|0"
  "p1_d64_gqa1_l32|--prompt-len 1 --steps 16 --head-dim 64 --heads 4 --kv-heads 4 --hidden 256 --layers 32|0"
  "p300_d64_gqa4_tied_l32|--prompt-len 300 --steps 16 --head-dim 64 --heads 12 --kv-heads 3 --hidden 384 --tied --plain-rope --eps 1e-6 --layers 32|0"
  "p9000_d128_gqa4|--prompt-len 9000 --steps 4 --head-dim 128 --heads 8 --kv-heads 2 --hidden 512 --batch 1|2048 16384"
)
status=0
for c in "${cases[@]}"; do
  IFS='|' read -r name args chunks <<< "$c"
  if [ -n "${LONG_CHECKS:-}" ] && [[ " $LONG_CHECKS " != *" $name "* ]]; then continue; fi
  dir="$OUT/ref_$name"
  if ! python3 scripts/hf_reference.py --out "$dir" $args > "$OUT/ref_$name.log" 2>&1; then
    echo "== longcheck $name: hf_reference.py FAILED"; tail -5 "$OUT/ref_$name.log"; status=1; continue
  fi
  for env_spec in ${LONG_CHECK_ENVS:-default NVRAR_LLM_ACTIVATIONS=fp32}; do
  tag=$([ "$env_spec" = default ] && echo "" || echo "_$(echo "$env_spec" | tr '=,' '-_')")
  env_args=()
  [ "$env_spec" = default ] || IFS=',' read -r -a env_args <<< "$env_spec"
  outs=()
  pin=()  # several chunk sizes: the same decode GEMM kernels in every run (env_args may override)
  [ "$(wc -w <<< "$chunks")" -ge 2 ] && pin=(NVRAR_LLM_GEMM=skinny0)
  for chunk in $chunks; do
    log="$OUT/check_${name}${tag}_c$chunk.log"
    env "${pin[@]}" "${env_args[@]}" $LLM check --model-dir "$dir" --reference "$dir/reference.json" --tp 1 --allreduce nvrar \
      $([ "$chunk" != 0 ] && echo --prefill-chunk $chunk) --logits-out "$OUT/logits_${name}${tag}_c$chunk.json" \
      > "$log" 2>&1
    rc=$?
    [ $rc -eq 0 ] || status=1
    echo "== longcheck $name${tag:+ ($env_spec)} chunk $chunk: rc=$rc $(grep -E 'PASSED|FAILED' "$log" | tail -1)"
    grep -E 'against fp32|MISMATCH|rror' "$log" | head -4
    outs+=("$OUT/logits_${name}${tag}_c$chunk.json")
  done
  if [ ${#outs[@]} -ge 2 ]; then  # chunked against unchunked: one bf16 rounding of the largest logit at most
    python3 - "${outs[@]}" <<'PY' || status=1
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
diff = max(abs(x - y) for sa, sb in zip(a, b) for ra, rb in zip(sa, sb) for x, y in zip(ra, rb))
top = max(abs(x) for s in a for r in s for x in r)
ok = diff <= top / 128
print(f"== longcheck chunked vs unchunked logits: max diff {diff:.5f} (bound {top / 128:.5f}): {'ok' if ok else 'DIFFER'}")
sys.exit(0 if ok else 1)
PY
  fi
  done
  rm -rf "$dir"
done
exit $status
