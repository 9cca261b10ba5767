#!/usr/bin/env python3
"""Zero the smallest-magnitude weights of every Conv and Gemm layer of an ONNX
model (per layer, unstructured), a stand-in for `whittle prune` used to show
recovery fine-tuning with `whittle train --keep-sparsity` (docs/TRAINING.md).

Usage: python3 scripts/magnitude_prune_onnx.py MODEL OUT --sparsity 0.75
"""

import argparse

import numpy as np
import onnx
from onnx import numpy_helper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--sparsity", type=float, default=0.75)
    args = ap.parse_args()
    m = onnx.load(args.model)
    weights = {n.input[1] for n in m.graph.node if n.op_type in ("Conv", "Gemm")}
    zeroed = total = 0
    for i, init in enumerate(m.graph.initializer):
        if init.name not in weights:
            continue
        w = numpy_helper.to_array(init).copy()
        k = int(round(args.sparsity * w.size))
        if k:
            cut = np.partition(np.abs(w).ravel(), k - 1)[k - 1]
            w[np.abs(w) <= cut] = 0.0
        zeroed += int((w == 0).sum())
        total += w.size
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(m, args.out)
    print(f"{zeroed}/{total} weights zero ({100 * zeroed / total:.1f}%)")


if __name__ == "__main__":
    main()
