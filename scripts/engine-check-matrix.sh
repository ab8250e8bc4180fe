#!/usr/bin/env bash
# GPU machine: nvrar-llm check (logits against transformers) of the tiny model under several settings, to find which
# one breaks a result. Needs a build in build/gpu (scripts/gpu-check.sh build).
#   bash scripts/engine-check-matrix.sh [tp] -- 'ENV=V ENV2=W [--check-flag]' ...
# Each quoted entry: environment assignments and nvrar-llm check flags for one run (e.g. 'NVRAR_PDL=0',
# 'NVRAR_LLM_GEMM=skinny2 --no-graph'). Logs go to $OUT (or ./out); one summary line per entry.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
NVSHMEM_ROOT=$(python3 -c 'import nvidia.nvshmem as m; print(list(m.__path__)[0])' 2>/dev/null || true)
export LD_LIBRARY_PATH="${NVSHMEM_ROOT:+$NVSHMEM_ROOT/lib:}${LD_LIBRARY_PATH:-}"
tp=1
if [ "${1:-}" != "--" ] && [ $# -gt 0 ]; then tp=$1; shift; fi
[ "${1:-}" = "--" ] && shift
ref="$OUT/tiny-matrix"
python3 scripts/hf_reference.py --out "$ref" --steps 32 > "$OUT/matrix_ref.log" 2>&1 || { tail -5 "$OUT/matrix_ref.log"; exit 1; }
i=0
for entry in "$@"; do
  i=$((i + 1))
  envs=() flags=()
  for word in $entry; do
    if [[ "$word" == *=* && "$word" != --* ]]; then envs+=("$word"); else flags+=("$word"); fi
  done
  log="$OUT/matrix_$i.log"
  env "${envs[@]}" timeout 120 mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$tp" \
    build/gpu/tools/nvrar-llm check --model-dir "$ref" --reference "$ref/reference.json" --tp "$tp" "${flags[@]}" \
    > "$log" 2>&1
  echo "matrix $i [$entry] rc=$? $(grep -E 'PASSED|FAILED|rror' "$log" | tail -1)"
done
rm -rf "$ref"
