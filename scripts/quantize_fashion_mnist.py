#!/usr/bin/env python3
"""Acceptance check for `whittle quantize` on the Fashion-MNIST CNN.

Quantizes tests/models/fashion_cnn.onnx twice on the SAME calibration samples
(a seeded random subset of the Fashion-MNIST training set):

* onnxruntime's ``quantize_static`` (QDQ, per-channel int8 weights, uint8
  activations, after ``quant_pre_process`` as its documentation recommends),
* ``whittle quantize`` (defaults),

then measures top-1 on the 10k test set of: the float model (onnxruntime),
the onnxruntime int8 model (in onnxruntime), whittle's int8 model run by
whittle (``whittle eval``), and whittle's exported QDQ model run by
onnxruntime (top-1 agreement with whittle's own predictions must be >= 99.5%).

Acceptance: whittle int8 within 0.3 points of float, and no worse than
onnxruntime. Exit status 1 if a check fails.

If this whittle build cannot run the QDQ model yet (the int8 kernels and
QuantizeLinear/DequantizeLinear ops live on other branches until they are
merged), whittle runs the float equivalent written by
``--fake-quant-output`` instead, and the table says so.

Usage: python3 scripts/quantize_fashion_mnist.py [--whittle target/release/whittle]
           [--calib 500] [--ort-methods minmax,entropy,percentile] [--out out/quantize_fashion]
"""

from __future__ import annotations

import argparse
import gzip
import json
import struct
import subprocess
import sys
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

DATA = Path("/usr/share/datasets/fashion-mnist")
SEED = 1234
ORT_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not a u8 IDX file"
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(split: str, data: Path) -> tuple[np.ndarray, np.ndarray]:
    x = read_idx(data / f"{split}-images-idx3-ubyte.gz")
    y = read_idx(data / f"{split}-labels-idx1-ubyte.gz")
    # whittle's default preprocessing of u8 data: x / 255 in f32.
    return (x.astype(np.float32) / np.float32(255.0))[:, None], y.astype(np.int64)


class Reader(CalibrationDataReader):
    def __init__(self, name: str, x: np.ndarray, batch: int = 50) -> None:
        self.batches = [x[i : i + batch] for i in range(0, len(x), batch)]
        self.name, self.i = name, 0

    def get_next(self):
        if self.i >= len(self.batches):
            return None
        self.i += 1
        return {self.name: self.batches[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def ort_logits(path: Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[i : i + 1000]})[0] for i in range(0, len(x), 1000)])


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10((ref.astype(np.float64) ** 2).sum() / ((ref - got).astype(np.float64) ** 2).sum()))


def whittle_eval(whittle: str, model: Path, data: Path, preds: Path) -> dict | None:
    cmd = [whittle, "eval", str(model), "--data", str(data), "--json", "--predictions", str(preds)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  whittle eval {model.name}: {r.stderr.strip().splitlines()[-1] if r.stderr else 'failed'}")
        return None
    return json.loads(r.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=Path("tests/models/fashion_cnn.onnx"))
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--whittle", default="target/release/whittle")
    ap.add_argument("--calib", type=int, default=500, help="calibration samples")
    ap.add_argument("--ort-methods", default="minmax,entropy,percentile")
    ap.add_argument("--whittle-args", default="", help="extra flags for whittle quantize")
    ap.add_argument("--out", type=Path, default=Path("out/quantize_fashion"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    xtr, ytr = load("train", args.data)
    xte, yte = load("t10k", args.data)
    idx = np.random.default_rng(SEED).choice(len(xtr), size=args.calib, replace=False)
    calib_x, calib_y = xtr[idx], ytr[idx]
    # The same samples for both tools: whittle reads them from a .npz
    # (float data: no further scaling).
    calib_npz = args.out / "calib.npz"
    np.savez(calib_npz, x=calib_x, y=calib_y)
    test_idx = args.data / "t10k-images-idx3-ubyte.gz"

    # rows: (model, run by, top-1, agreement with float, logits SQNR vs float)
    rows = []
    float_logits = ort_logits(args.model, xte)
    float_pred = float_logits.argmax(1)
    float_top1 = float((float_pred == yte).mean())
    rows.append(("float", "onnxruntime", float_top1, 1.0, None))

    def row(name: str, by: str, logits: np.ndarray) -> float:
        pred = logits.argmax(1)
        acc = float((pred == yte).mean())
        rows.append((name, by, acc, float((pred == float_pred).mean()), sqnr(float_logits, logits)))
        return acc

    pre = args.out / "fashion_cnn_pre.onnx"
    quant_pre_process(str(args.model), str(pre))
    in_name = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    ort_best = 0.0
    for m in [m.strip() for m in args.ort_methods.split(",") if m.strip()]:
        out = args.out / f"ort_int8_{m}.onnx"
        extra = {"CalibPercentile": 99.999} if m == "percentile" else {}
        quantize_static(
            str(pre), str(out), Reader(in_name, calib_x),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=ORT_METHODS[m], extra_options=extra,
        )
        acc = row(f"onnxruntime int8 ({m})", "onnxruntime", ort_logits(out, xte))
        ort_best = max(ort_best, acc)

    wq = args.out / "whittle_int8.onnx"
    wfake = args.out / "whittle_int8_fake.onnx"
    cmd = [args.whittle, "quantize", str(args.model), "-o", str(wq), "--calib", str(calib_npz),
           "--calib-samples", str(args.calib), "--fake-quant-output", str(wfake), "--json"]
    cmd += args.whittle_args.split()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(r.stderr)
        return 1
    report = json.loads(r.stdout)
    (args.out / "whittle_report.json").write_text(json.dumps(report, indent=2) + "\n")

    preds = args.out / "whittle_int8_pred.npy"
    ev = whittle_eval(args.whittle, wq, test_idx, preds)
    path = "whittle (int8 QDQ)"
    if ev is None:
        path = "whittle (fake-quant: this build cannot run QDQ)"
        ev = whittle_eval(args.whittle, wfake, test_idx, preds)
        if ev is None:
            return 1
    whittle_top1 = float(ev["top1"])
    whittle_pred = np.load(preds)
    rows.append((f"whittle int8 ({report['method']})", path, whittle_top1,
                 float((whittle_pred == float_pred).mean()), None))
    qdq_logits = ort_logits(wq, xte)
    row("whittle int8 QDQ export", "onnxruntime", qdq_logits)
    agreement = float((qdq_logits.argmax(1) == whittle_pred).mean())

    print(f"\nFashion-MNIST CNN, {args.calib} calibration samples (seed {SEED}), 10k test images\n")
    print(f"{'model':<34} {'run by':<48} {'top-1':>7} {'= float':>8} {'SQNR dB':>8}")
    print("-" * 109)
    for name, by, acc, agree, db in rows:
        dbs = "-" if db is None else f"{db:.1f}"
        print(f"{name:<34} {by:<48} {100 * acc:6.2f}% {100 * agree:7.2f}% {dbs:>8}")
    print("(= float: top-1 agreement with the float model; SQNR: test-set logits vs float)")
    print(f"\nwhittle int8 vs its QDQ export in onnxruntime: top-1 agreement {100 * agreement:.2f}%")
    print(f"output SQNR (calibration data): {report['output_sqnr_db']}")

    checks = [
        (f"whittle int8 within 0.3 points of float ({100 * (whittle_top1 - float_top1):+.2f})",
         abs(whittle_top1 - float_top1) <= 0.003),
        (f"whittle int8 no worse than onnxruntime's best ({100 * (whittle_top1 - ort_best):+.2f})",
         whittle_top1 >= ort_best),
        (f"QDQ export agrees with whittle on >= 99.5% ({100 * agreement:.2f}%)", agreement >= 0.995),
    ]
    ok = True
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}  {text}")
        ok &= passed
    results = {
        "calibration_samples": args.calib, "seed": SEED, "onnxruntime": ort.__version__,
        "rows": [{"model": n, "run_by": b, "top1": a, "agreement_with_float": g, "logits_sqnr_db": d}
                 for n, b, a, g, d in rows],
        "agreement_whittle_vs_ort_qdq": agreement, "pass": ok,
    }
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
