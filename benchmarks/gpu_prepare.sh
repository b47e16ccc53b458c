#!/usr/bin/env bash
# Prepares, on a machine with network access, what benchmarks/gpu.sh needs on a lent GPU machine
# that can download nothing and does not get ../shared/data:
#   .gpu/wheels  the wheels its python3 (3.12, torch 2.11, manylinux x86_64) lacks for the ddpm
#                part: diffusers at the version pinned in constraints.txt, and the requirements of
#                it that image does not have: importlib_metadata and its lazy-importer (filelock,
#                huggingface-hub >= 1.32, numpy, regex, requests, safetensors >= 0.8, Pillow and
#                zipp are there; diffusers reads the standard library's importlib.metadata on
#                Python >= 3.8, so these two only complete the install). augmentgen itself runs
#                from the source tree (PYTHONPATH), so no wheel.
#   .gpu/data    the Fashion-MNIST idx files, read through AUGMENTGEN_DATA_DIR (benchmarks/protocol.py).
# .gpu is ignored through .git/info/exclude (not .gitignore: it is this checkout's business), so
# the device call must name it: carry [".gpu"]. Everything that travels (tracked files plus .gpu)
# must stay under the 64 MiB a device call takes; this prints both sizes.
#
#   bash benchmarks/gpu_prepare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}"
data_src="${DATA_SRC:-../shared/data/fashion-mnist}"
pin() {  # the version constraints.txt pins for $1
    local v
    v=$(sed -n "s/^$1==\([^ #]*\).*/\1/p" constraints.txt)
    [ -n "$v" ] || { echo "no pin for $1 in constraints.txt" >&2; exit 1; }
    echo "$v"
}
# importlib_metadata and lazy-importer are not pinned (diffusers asks for any version): the ones
# this checkout's venv runs with (importlib_metadata 10 needs lazy-importer; 8.7 needs nothing new).
installed() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null; }
wheels=("diffusers==$(pin diffusers)")
if v=$(installed importlib_metadata); then
    wheels+=("importlib_metadata==$v")
    if v=$(installed lazy-importer); then wheels+=("lazy-importer==$v"); fi
else
    wheels+=("importlib_metadata==8.7.0")
fi

mkdir -p .gpu/wheels .gpu/data/fashion-mnist
grep -qxF '/.gpu/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.gpu/' >> .git/info/exclude; }
# One version of each package: two wheels of one name stop the whole install there.
rm -f .gpu/wheels/*.whl
for w in "${wheels[@]}"; do
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .gpu/wheels "$w"
done
# Read-only sources (../shared) would make the copies read-only too and block the next run's copy.
for f in "$data_src"/*-ubyte.gz; do
    install -m 0644 "$f" .gpu/data/fashion-mnist/
done
[ -f "$data_src/README.md" ] && install -m 0644 "$data_src/README.md" .gpu/data/fashion-mnist/

git check-ignore -q .gpu/wheels || { echo ".gpu is not ignored: check .git/info/exclude" >&2; exit 1; }
ls -l .gpu/wheels
gpu_mib=$(du -sb .gpu | awk '{printf "%.1f", $1 / 1048576}')
tree_mib=$( (git ls-files -z; git ls-files -z -o --exclude-standard) | du -cb --files0-from=- 2>/dev/null |
            tail -1 | awk '{printf "%.1f", $1 / 1048576}')
total=$(awk -v a="$gpu_mib" -v b="$tree_mib" 'BEGIN {printf "%.1f", a + b}')
echo ".gpu: $gpu_mib MiB; with the working tree that travels ($tree_mib MiB): $total MiB of the 64 MiB a call takes"
awk -v t="$total" 'BEGIN {exit !(t > 60)}' && { echo "too large: over 60 MiB" >&2; exit 1; }
echo 'device call: carry [".gpu"], command "INSTALL=0 PARTS=ddpm bash benchmarks/gpu.sh", timeout_s 600'
