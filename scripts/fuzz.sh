#!/usr/bin/env bash
# Fuzzes one of whittle's parsers for a bounded time.
#
#   scripts/fuzz.sh [TARGET] [SECONDS]
#
# TARGET is a cargo-fuzz target in fuzz/ (import: ONNX model bytes; tensor:
# TensorProto bytes; compile: model bytes imported, compiled and executed;
# default import); SECONDS defaults to 60. The corpus is
# seeded from the ONNX conformance suite when it is installed. Crashes are
# saved under fuzz/artifacts/TARGET/ and make the script fail.
#
# cargo-fuzz needs nightly-only flags (-Zsanitizer); on a stable toolchain
# RUSTC_BOOTSTRAP=1 unlocks them.
set -euo pipefail
target="${1:-import}"
secs="${2:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
suite=/usr/share/libonnx-testdata/data/node

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install --locked cargo-fuzz
fi

corpus="$root/fuzz/corpus/$target"
mkdir -p "$corpus"
if [[ -d "$suite" && -z "$(ls -A "$corpus")" ]]; then
    case "$target" in
        import|compile) pattern='model.onnx' ;;
        tensor) pattern='*.pb' ;;
        *) pattern='' ;;
    esac
    if [[ -n "$pattern" ]]; then
        # Small seeds keep each run fast; name them by case to avoid clashes.
        find "$suite" -name "$pattern" -size -16k | while read -r f; do
            rel="${f#"$suite"/}"
            cp "$f" "$corpus/${rel//\//_}"
        done
    fi
fi

cd "$root/fuzz"
# -malloc_limit_mb turns any single oversized allocation into a crash. The
# parsers never need more than 512 MB; compile may plan tensors up to its
# 2 GiB per-tensor limit and arenas up to 4 GiB (allocated zeroed, so untouched
# pages cost no memory).
malloc_mb=512
rss_mb=2048
if [[ "$target" == compile ]]; then
    malloc_mb=4400
    rss_mb=8192
fi
RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$secs" -max_len=65536 -malloc_limit_mb="$malloc_mb" -rss_limit_mb="$rss_mb" \
    -print_final_stats=1
