#!/usr/bin/env python3
"""onnxruntime's static int8 quantization of the Fashion-MNIST reference model:
the baseline whittle's own quantizer has to beat.

For each calibration method (MinMax, Entropy, Percentile) this runs
``onnxruntime.quantization.quantize_static`` with QDQ format, per-channel
symmetric int8 weights and asymmetric uint8 activations (the scheme whittle
uses), calibrated on N seeded-random samples of the Fashion-MNIST *training*
set, then measures top-1 accuracy of the float and int8 models on the 10k test
set with onnxruntime (CPU EP).

The model is first run through ``quant_pre_process`` (shape inference and ORT
graph optimisation, which folds BatchNormalization into Conv), as the
onnxruntime documentation recommends; quantizing the raw graph would put Q/DQ
pairs around every BN and be an unfairly weak baseline.

Quantized models go to out/ort_quant/ (ignored by git) with results.json.

Usage: python3 scripts/ort_quantize_baseline.py [--model tests/models/fashion_cnn.onnx]
           [--calib 1000] [--methods minmax,entropy,percentile]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_fashion_mnist import DATA, load  # noqa: E402

SEED = 1234
METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


class Reader(CalibrationDataReader):
    """Feeds calibration samples one batch at a time."""

    def __init__(self, name: str, x: np.ndarray, batch: int = 50) -> None:
        self.batches = [x[i : i + batch] for i in range(0, len(x), batch)]
        self.name = name
        self.i = 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    pred = np.concatenate(
        [sess.run(None, {name: x[i : i + 1000]})[0].argmax(1) for i in range(0, len(x), 1000)]
    )
    return float((pred == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("tests/models/fashion_cnn.onnx"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--calib", type=int, default=1000, help="calibration samples")
    ap.add_argument("--methods", default="minmax,entropy,percentile")
    ap.add_argument("--out", type=Path, default=Path("out/ort_quant"))
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    xtr, _ = load("train", args.data)
    xte, yte = load("t10k", args.data)
    rng = np.random.default_rng(SEED)
    calib = xtr[rng.choice(len(xtr), size=args.calib, replace=False)]

    pre = args.out / "fashion_cnn_pre.onnx"
    quant_pre_process(str(args.model), str(pre))
    name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    results = {
        "model": str(args.model),
        "calibration_samples": args.calib,
        "calibration_set": "Fashion-MNIST train, seeded random subset",
        "scheme": "QDQ, per-channel symmetric int8 weights, asymmetric uint8 activations",
        "onnxruntime": ort.__version__,
        "float_top1": accuracy(args.model, xte, yte),
        "int8_top1": {},
    }
    print(f"float            top-1 {results['float_top1']:.4f}")
    for m in args.methods.split(","):
        m = m.strip()
        out = args.out / f"fashion_cnn_int8_{m}.onnx"
        t0 = time.time()
        extra = {}
        if m == "percentile":
            extra = {"CalibPercentile": 99.999}
        quantize_static(
            str(pre),
            str(out),
            Reader(name, calib),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=METHODS[m],
            extra_options=extra,
        )
        acc = accuracy(out, xte, yte)
        results["int8_top1"][m] = acc
        print(f"int8 {m:<11} top-1 {acc:.4f}  ({time.time() - t0:.0f}s, {out})")
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
