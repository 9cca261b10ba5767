#!/usr/bin/env bash
# Runs every test whittle has, installing what the tests need first:
# the ONNX backend node conformance suite (Debian package libonnx-testdata)
# Fashion-MNIST (dataset-fashion-mnist, for the eval/accuracy tests), and an
# aarch64 cross toolchain with qemu-user to run the NEON kernels' tests.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -d /usr/share/libonnx-testdata/data/node ] || need_apt+=(libonnx-testdata)
[ -d /usr/share/datasets/fashion-mnist ] || need_apt+=(dataset-fashion-mnist)
# The NEON kernels are cross-compiled and run under qemu-user.
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# onnxruntime and the ONNX checker are the tests' independent references.
python3 -m pip install --quiet --disable-pip-version-check -r scripts/requirements-test.txt

rustup target list --installed | grep -q aarch64-unknown-linux-gnu ||
  rustup target add aarch64-unknown-linux-gnu

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Tests run optimised: the conformance suite and fixture zoo execute real models.
# The ONNX conformance suite and the fixture zoo print their figures first...
cargo test --release --locked -p whittle --test conformance --test fixtures -- --nocapture
# ...then everything else.
cargo test --workspace --release --locked -- --skip onnx_node_conformance --skip fixture_zoo_matches_onnxruntime
# The kernels again on aarch64 (NEON paths), under qemu-user; see .cargo/config.toml.
cargo clippy --locked -p whittle-kernels --target aarch64-unknown-linux-gnu --all-targets -- -D warnings
cargo test --locked -p whittle-kernels --target aarch64-unknown-linux-gnu
