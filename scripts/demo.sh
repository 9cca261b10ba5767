#!/usr/bin/env bash
# Builds whittle and shows what it tells you about a bundled model:
# MobileNetV2 (width 0.35, 96x96) from the fixture zoo.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p whittle-cli
whittle=target/release/whittle
model=tests/fixtures/mobilenetv2_035_96/model.onnx
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== whittle inspect $model"
$whittle inspect "$model"
echo
echo "== whittle run $model --input tests/fixtures/mobilenetv2_035_96/input_0.npy --output-dir $out"
$whittle run "$model" --input tests/fixtures/mobilenetv2_035_96/input_0.npy --output-dir "$out"
echo
echo "== whittle bench $model --profile"
$whittle bench "$model" --iters 200 --profile
