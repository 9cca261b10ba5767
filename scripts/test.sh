#!/usr/bin/env bash
# Runs every test whittle has, installing what the tests need first:
# the ONNX backend node conformance suite (Debian package libonnx-testdata)
# and Fashion-MNIST (dataset-fashion-mnist, for the eval/accuracy tests).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -d /usr/share/libonnx-testdata/data/node ] || need_apt+=(libonnx-testdata)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Tests run optimised: the conformance suite and fixture zoo execute real models.
# The ONNX conformance suite and the fixture zoo print their figures first...
cargo test --release --locked -p whittle --test conformance --test fixtures -- --nocapture
# ...then everything else.
cargo test --workspace --release --locked -- --skip onnx_node_conformance --skip fixture_zoo_matches_onnxruntime
