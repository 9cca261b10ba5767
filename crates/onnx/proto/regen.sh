#!/usr/bin/env bash
# Regenerates crates/onnx/src/proto/onnx.rs from onnx.proto with prost-build
# and protox (pure Rust: no protoc needed). With --check, fails if the
# committed file is out of date instead of overwriting it.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crate="$(dirname "$here")"
out="$crate/src/proto/onnx.rs"
target="$out"
if [[ "${1:-}" == "--check" ]]; then
    target="$(mktemp)"
    trap 'rm -f "$target"' EXIT
fi
cargo run --quiet --release --manifest-path "$crate/codegen/Cargo.toml" -- "$here" "$target"
rustfmt --edition 2021 "$target"
if [[ "$target" != "$out" ]]; then
    diff -u "$out" "$target" >/dev/null || { echo "onnx.rs is out of date: run $0" >&2; exit 1; }
    echo "onnx.rs is up to date"
fi
