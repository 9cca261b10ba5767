#!/usr/bin/env bash
# Peer benchmark from a fresh clone: whittle vs tract vs onnxruntime on the
# same ONNX files, in one run.
#
#   bench/run.sh                      # table on stdout
#   bench/run.sh --json > out.json    # machine-readable
#   bench/run.sh --iters 100 --threads 1 --model resnet18_224
#
# Steps: install the Python tools that are missing (versions pinned in
# scripts/requirements-dev.txt; torch/torchvision/onnx only if the models
# still have to be exported), export the models once (bench/models/,
# git-ignored), then build and run the harness (bench/ is its own cargo
# workspace; the first build compiles tract and takes several minutes).
# Arguments are passed to whittle-bench (see --help). Set PYTHON to choose
# the interpreter.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
reqs="$root/scripts/requirements-dev.txt"
PYTHON="${PYTHON:-python3}"

# Pinned requirement line for a package, from requirements-dev.txt.
pin() {
    grep -E "^$1==" "$reqs" || { echo "run.sh: $1 is not pinned in $reqs" >&2; exit 1; }
}

models_ready() {
    local m
    for m in mobilenet_v2_224 mobilenet_v2_035_144 resnet18_224; do
        [[ -f "$here/models/$m.onnx" && -f "$here/models/$m.input.npy" ]] || return 1
    done
}

missing=()
"$PYTHON" -c "import numpy" 2>/dev/null || missing+=("$(pin numpy)")
"$PYTHON" -c "import onnxruntime" 2>/dev/null || missing+=("$(pin onnxruntime)")
if ! models_ready; then
    "$PYTHON" -c "import torch" 2>/dev/null || missing+=("$(pin torch)")
    "$PYTHON" -c "import torchvision" 2>/dev/null || missing+=("$(pin torchvision)")
    "$PYTHON" -c "import onnx" 2>/dev/null || missing+=("$(pin onnx)")
fi
if ((${#missing[@]})); then
    echo "run.sh: installing ${missing[*]}" >&2
    "$PYTHON" -m pip install --quiet "${missing[@]}"
fi

if ! models_ready; then
    echo "run.sh: exporting models to $here/models" >&2
    "$PYTHON" "$here/export_models.py" --out "$here/models" >&2
fi

cd "$here"
# Not --locked: when a whittle crate gains a dependency, cargo adds it to
# bench/Cargo.lock and keeps every pinned version (tract is pinned exactly).
exec cargo run --release --quiet --bin whittle-bench -- \
    --python "$PYTHON" --models-dir "$here/models" "$@"
