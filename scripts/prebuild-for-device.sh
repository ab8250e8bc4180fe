#!/usr/bin/env bash
# Builds GPU targets on a machine without a GPU and stages them, with the shared libraries they need beyond the CUDA
# toolkit's, into one folder a GPU machine can run from: the device time a call would spend compiling (40-70 s for
# nvrar-llm and a test on 16 cores) is spent here instead.
#
#   bash scripts/prebuild-for-device.sh [--out DIR] [--from COMMIT] [--patch FILE]... TARGET...
#   e.g. nvrar-llm test_gemm_gpu; then, on the GPU machine, from the repository root:
#   source DIR/env.sh && DIR/bin/nvrar-llm bench ...
#
# By default the working tree is built (in build/prebuilt). With --from COMMIT (a baseline) or --patch FILE (an
# experiment patch, `patch -p1`, applied in the order given) the script builds a copy instead: `git archive` of COMMIT
# (default HEAD) in build/prebuilt-tree/src with the patches applied, only the files that changed since its last
# use rewritten (so the build in build/prebuilt-tree/build stays incremental); the working tree is left as it is.
#
# The build: build/prebuilt, Release, sm_90 only, NVSHMEM and MPI off (the GPU machine's NVSHMEM and MPI need not
# match this machine's; nvrar-llm at TP 1 and the single-GPU tests use neither). DIR (default .prebuilt, ignored by
# git): bin/ the targets' executables, lib/ libnvrar_gpu.so and every library they resolve under .deps/ (fmt, PCRE2),
# BUILT_FROM (the commit, "+changes" for a dirty tree, " + NAME" per patch) and env.sh, which prints BUILT_FROM, puts
# lib/, the CUDA toolkit's and the Python NCCL wheel's library folders on LD_LIBRARY_PATH and fails, naming the
# library, where an executable still misses one. Keep DIR under the 64 MiB a device call carries; the script warns
# above 60 MiB.
set -euo pipefail

out=.prebuilt
from=""
patches=()
targets=()
die() { echo "prebuild-for-device.sh: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?"prebuild-for-device.sh: --out needs a folder"}; shift 2 ;;
    --from) from=${2:?"prebuild-for-device.sh: --from needs a commit"}; shift 2 ;;
    --patch)
      [ -f "${2:-}" ] || die "--patch ${2:-}: no such file"
      patches+=("$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"); shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || die "name at least one target, e.g. nvrar-llm"
nvcc=${CUDACXX:-/usr/local/cuda/bin/nvcc}
[ -x "$nvcc" ] || die "no CUDA compiler at $nvcc (set CUDACXX)"

src=.
build=build/prebuilt
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || commit+="+changes"
if [ -n "$from" ] || [ ${#patches[@]} -gt 0 ]; then
  rev=${from:-HEAD}
  git rev-parse --verify -q "$rev^{commit}" > /dev/null || die "--from $rev: not a commit of this repository"
  commit=$(git rev-parse --short "$rev^{commit}")
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  git archive "$rev" | tar x -C "$tmp" --exclude=bench/results
  for p in "${patches[@]}"; do
    (cd "$tmp" && patch -p1 -s -f --dry-run < "$p" > /dev/null && patch -p1 -s -f --no-backup-if-mismatch < "$p") ||
      die "--patch $p does not apply to $commit (after the patches before it)"
    commit+=" + $(basename "$p")"
  done
  src=build/prebuilt-tree/src
  build=build/prebuilt-tree/build
  mkdir -p $src
  # Rewrite only the files that differ, and remove those the copy no longer has: ninja then rebuilds what changed.
  (cd "$tmp" && find . -type f) | while read -r f; do
    cmp -s "$tmp/$f" "$src/$f" || { mkdir -p "$src/$(dirname "$f")"; cp "$tmp/$f" "$src/$f"; }
  done
  (cd $src && find . -type f -not -path './.deps/*') | while read -r f; do [ -e "$tmp/$f" ] || rm "$src/$f"; done
  if [ -d .deps ]; then ln -sfn "$PWD/.deps" $src/.deps; fi  # NvrarDependencies.cmake looks beside the sources
fi
cmake -S $src -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DNVRAR_CUDA=ON \
  -DNVRAR_NVSHMEM=OFF -DNVRAR_MPI=OFF -DCMAKE_CUDA_COMPILER="$nvcc" > /dev/null
cmake --build $build --target "${targets[@]}"

rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for t in "${targets[@]}"; do
  exe=$(find $build -type f -name "$t" -perm -u+x -not -path '*/CMakeFiles/*' | head -1)
  [ -n "$exe" ] || { echo "prebuild-for-device.sh: target $t built no executable under $build" >&2; exit 1; }
  cp "$exe" "$out/bin/"
  # The libraries this build made or .deps provides; the toolkit's (cudart, cuBLASLt, NCCL) are the device's own.
  ldd "$exe" | awk -v repo="$PWD/" '$3 ~ "^" repo { print $3 }' | while read -r lib; do cp -L "$lib" "$out/lib/"; done
done

# What the binaries were built from, printed by env.sh into the call's log: a stale folder shows itself.
echo "$commit" > "$out/BUILT_FROM"
cat > "$out/env.sh" <<'EOF'
# Sourced on the GPU machine from the repository root (prebuild-for-device.sh): the staged libraries first, then the
# CUDA toolkit's and the NCCL wheel's folders; returns 1, naming the library, if an executable still misses one.
_prebuilt=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
_nccl=$(python3 -c 'import nvidia.nccl as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null || true)
for _d in "$_nccl" /usr/local/cuda/lib /usr/local/cuda/lib64 "$_prebuilt/lib"; do
  [ -n "$_d" ] && [ -d "$_d" ] && export LD_LIBRARY_PATH="$_d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
echo "prebuilt: built from $(cat "$_prebuilt/BUILT_FROM")"
_missing=$(for _e in "$_prebuilt"/bin/*; do
  ldd "$_e" | sed -n "s|^\s*\(\S*\) => not found|$(basename "$_e"): \1|p"
done)
if [ -n "$_missing" ]; then
  echo "prebuilt executables miss libraries on this machine:"; echo "$_missing"; return 1
fi
EOF

size=$(du -sm "$out" | cut -f1)
echo "prebuild-for-device.sh: $out holds ${targets[*]} (${size} MiB); on the GPU machine: source $out/env.sh"
[ "$size" -le 60 ] || echo "prebuild-for-device.sh: warning: $out is ${size} MiB, over the 60 MiB a call can carry" >&2
