#!/usr/bin/env python3
"""Magnitude vs OBD vs Wanda on the Fashion-MNIST CNN, no fine-tuning.

Prunes tests/models/fashion_cnn.onnx with `whittle prune` at 80% and 90%
unstructured sparsity (per-layer and global scope) and at 2:4, calibrating
OBD and Wanda on the first N training images, and evaluates top-1 on the
10k test set. Prints a markdown table (the one in docs/PRUNING.md).

Usage: python3 scripts/prune_fashion_mnist.py [--whittle target/release/whittle]
           [--calib-samples 256] [--out out/prune_fashion]
"""

import argparse
import json
import subprocess
from pathlib import Path

DATA = Path("/usr/share/datasets/fashion-mnist")


def run(whittle, model, out, extra):
    cmd = [str(whittle), "prune", str(model), "-o", str(out), "--json",
           "--profile-iters", "0", "--eval", str(DATA / "t10k-images-idx3-ubyte.gz")] + extra
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{p.stderr}")
    return json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--whittle", type=Path, default=Path("target/release/whittle"))
    ap.add_argument("--model", type=Path, default=Path("tests/models/fashion_cnn.onnx"))
    ap.add_argument("--calib-samples", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("out/prune_fashion"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    calib = ["--calib", str(DATA / "train-images-idx3-ubyte.gz"),
             "--calib-samples", str(a.calib_samples)]
    rows = []
    dense = None
    for pattern, base in [("80%", ["--sparsity", "0.8"]), ("90%", ["--sparsity", "0.9"]),
                          ("2:4", ["--nm", "2:4"])]:
        scopes = ["layer", "global"] if pattern != "2:4" else ["n:m"]
        for scope in scopes:
            cells = []
            for crit in ["magnitude", "obd", "wanda"]:
                extra = base + ["--criterion", crit] + (calib if crit != "magnitude" else [])
                if scope == "global":
                    extra += ["--scope", "global"]
                out = a.out / f"{crit}_{pattern.replace('%', '').replace(':', 'of')}_{scope}.onnx"
                doc = run(a.whittle, a.model, out, extra)
                acc = doc["accuracy"]
                dense = acc["top1_before"]
                cells.append(100 * acc["top1_after"])
                size = doc["totals"]["file_bytes_after"]
            rows.append((pattern, scope, cells, size))
    print(f"float (dense) top-1: {100 * dense:.2f}%\n")
    print("| sparsity | scope | magnitude | OBD | Wanda | file bytes |")
    print("|---|---|---:|---:|---:|---:|")
    for pattern, scope, cells, size in rows:
        print(f"| {pattern} | {scope} | " + " | ".join(f"{c:.2f}%" for c in cells) + f" | {size} |")


if __name__ == "__main__":
    main()
