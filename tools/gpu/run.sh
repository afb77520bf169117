#!/usr/bin/env bash
# Run the GPU suite (on the GPU machine, from the repository root, with .gpu_carry carried):
#
#   bash tools/gpu/run.sh OUT_DIR            # preset gpu: about 8 minutes, needs JAX on a GPU
#   bash tools/gpu/run.sh OUT_DIR --smoke    # the same Python on the CPU, tiny sizes
#   bash tools/gpu/run.sh OUT_DIR --steps iwae,metrics --box iwae=120   # (suite.py options)
#
# Installs the carried wheels (.gpu_carry/wheels, from tools/gpu/prepare.sh) into a target folder
# without dependencies and puts it and the repository on PYTHONPATH (the project itself needs no
# install), points JAXROBUST_DATA at the carried caches, keeps JAX from preallocating GPU memory
# (JAX and PyTorch share the GPU in one process), checks that JAX's backend is the GPU (not with
# --smoke), then runs tools/gpu/suite.py. OUT_DIR gets gpu_suite.{md,json,log} and
# gpu_preflight.log.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
OUT=""
SMOKE=0
REST=()
for arg in "$@"; do
    case "$arg" in
        --smoke) SMOKE=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) if [ -z "$OUT" ] && [ "${arg#-}" = "$arg" ]; then OUT="$arg"; else REST+=("$arg"); fi ;;
    esac
done
if [ -z "$OUT" ]; then
    echo "usage: bash tools/gpu/run.sh OUT_DIR [--smoke] [suite.py options]" >&2
    exit 2
fi
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
PRE="$OUT/gpu_preflight.log"
: > "$PRE"
say() { echo "[run.sh] $*" | tee -a "$PRE"; }

PY="${PYTHON:-python3}"
CARRY="$ROOT/.gpu_carry"
SITE="${JAXROBUST_SITE:-/tmp/jaxrobust-gpu-site}"
say "python: $(command -v "$PY") ($("$PY" -V 2>&1)); repo $ROOT; out $OUT"

if compgen -G "$CARRY/wheels/*.whl" > /dev/null; then
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$SITE" "$CARRY"/wheels/*.whl >> "$PRE" 2>&1; then
        say "installed $(ls "$CARRY"/wheels/*.whl | wc -l) carried wheels into $SITE"
    else
        # No pip (e.g. a venv made without it): a pure-Python wheel is a zip of its packages.
        say "pip install failed (see $PRE): unpacking the wheels into $SITE instead"
        mkdir -p "$SITE"
        for wheel in "$CARRY"/wheels/*.whl; do
            "$PY" -m zipfile -e "$wheel" "$SITE" >> "$PRE" 2>&1 || say "WARNING: could not unpack $wheel"
        done
    fi
    export PYTHONPATH="$ROOT:$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
    say "no carried wheels in $CARRY/wheels (run tools/gpu/prepare.sh on the CPU machine)"
    export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${JAXROBUST_DATA:-}" ] && [ -d "$CARRY/data" ]; then
    export JAXROBUST_DATA="$CARRY/data"
fi
say "JAXROBUST_DATA=${JAXROBUST_DATA:-<default cache>}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false
export GIT_PYTHON_REFRESH=quiet  # foolbox imports GitPython; the machine may have no git
export MPLBACKEND=Agg
export PYTHONUNBUFFERED=1

if command -v nvidia-smi > /dev/null; then nvidia-smi >> "$PRE" 2>&1; fi

# The project and what it imports (a missing wheel shows here, not in every step), and JAX's
# backend: the GPU unless --smoke.
SMOKE="$SMOKE" "$PY" - >> "$PRE" 2>&1 <<'EOF'
import importlib
import os
import sys

try:
    import jax

    for name in ("jaxrobust", "jaxrobust.train", "jaxrobust.evaluate", "ml_collections", "torch"):
        importlib.import_module(name)
except Exception as err:
    print(f"IMPORT ERROR: {type(err).__name__}: {err}")
    sys.exit(3)
for name in ("torchattacks", "foolbox", "torchmetrics", "sklearn"):
    try:
        importlib.import_module(name)
        print(f"{name}: ok")
    except Exception as err:
        print(f"{name}: NOT importable ({type(err).__name__}: {err})")
backend = jax.default_backend()
print(f"JAX backend {backend}: {jax.devices()}")
if os.environ["SMOKE"] == "0" and backend != "gpu":
    sys.exit(4)
EOF
status=$?
if [ "$status" = 3 ]; then
    say "ERROR: jaxrobust or a package it needs does not import (see $PRE):"
    tail -3 "$PRE"
    exit 3
elif [ "$status" = 4 ]; then
    say "ERROR: JAX's default backend is not the GPU: $(grep 'JAX backend' "$PRE" | tail -1)"
    say "(is the jax CUDA plugin installed and a GPU visible? --smoke runs on the CPU)"
    exit 4
elif [ "$status" != 0 ]; then
    say "ERROR: the preflight check failed (exit $status, see $PRE):"
    tail -5 "$PRE"
    exit "$status"
fi
say "imports ok ($(grep -c 'NOT importable' "$PRE") optional peer(s) missing); $(grep 'JAX backend' "$PRE" | tail -1)"

if [ "$SMOKE" = 0 ]; then
    exec "$PY" tools/gpu/suite.py "$OUT" ${REST[@]+"${REST[@]}"}
fi
exec "$PY" tools/gpu/suite.py "$OUT" --smoke ${REST[@]+"${REST[@]}"}
