#!/usr/bin/env bash
# Compiles every CUDA source under src/gpu to PTX (sm_90, the release flags) and writes one file per kernel entry,
# named by its mangled name, with anonymous-namespace hashes (which depend on the file path) and the function index
# in block labels normalised. Two
# snapshots diffed (diff -r A B) show whether a refactor changed any kernel's code.
#   bash scripts/ptx-snapshot.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: ptx-snapshot.sh OUT_DIR}
rm -rf "$out"; mkdir -p "$out/raw"
nvcc=${NVCC:-/usr/local/cuda/bin/nvcc}
while IFS= read -r f; do
  "$nvcc" -ptx -O3 -DNDEBUG -std=c++20 -arch=compute_90 -Isrc -Iinclude -DNVRAR_HAVE_NVSHMEM=0 \
    "$f" -o "$out/raw/$(echo "$f" | tr '/' '_').ptx"
done < <(find src/gpu -name '*.cu' | sort)
python3 - "$out" <<'PY'
import os, re, sys
out = sys.argv[1]
anon = re.compile(r'\d+_GLOBAL__N__[0-9A-Za-z_]*?_[0-9a-f]{8}')
for name in sorted(os.listdir(os.path.join(out, 'raw'))):
    text = open(os.path.join(out, 'raw', name)).read()
    text = anon.sub('_ANON_', text)
    text = re.sub(r'\$L__BB\d+_', '$L__BB_', text)  # block labels carry the function's index in its file
    for m in re.finditer(r'(?:\.(?:visible|weak)\s+)?\.entry\s+(\S+?)\s*\((.*?)\n}\n', text, re.S):
        body = re.sub(r'^\s*//.*$', '', m.group(0), flags=re.M)
        open(os.path.join(out, m.group(1)[:200] + '.ptx'), 'w').write(body)
PY
rm -rf "$out/raw"
ls "$out" | wc -l
