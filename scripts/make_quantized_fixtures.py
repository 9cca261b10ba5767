#!/usr/bin/env python3
"""Quantized fixtures for the int8 end-to-end test
(crates/whittle/tests/quantized.rs).

Each float fixture below (from tests/fixtures, made by make_fixtures.py) is
quantized with onnxruntime's ``quantize_static`` in both formats:

* QDQ: QuantizeLinear/DequantizeLinear around float ops, which whittle's
  ``fuse_qdq`` pass rewrites into integer ops;
* QOperator: QLinearConv, QLinearMatMul, QLinearAdd... directly.

Weights are int8 per channel, activations int8 (QDQ) or uint8 (QOperator,
onnxruntime's default), calibrated with MinMax on random normal inputs from a
fixed seed (a fixture's input_0.npy is not in the calibration set). The
reference output is onnxruntime's on the fixture's input_0.npy. Each output's
tolerance is a few quantization steps of the DequantizeLinear that produces
it. Everything goes to tests/fixtures/quantized/ with a manifest.json.

Usage: python3 scripts/make_quantized_fixtures.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "tests" / "fixtures"
OUT = SRC / "quantized"
SEED = 20261121
CALIB = 16
FIXTURES = ["lenet", "resnet_small", "mobilenetv2_035_96", "concat_branches"]
# Quantization steps of the output a result may be off by: rounding
# differences (fixed point vs float) compound through the layers.
STEPS = 4


class Reader(CalibrationDataReader):
    def __init__(self, name: str, samples: list[np.ndarray]) -> None:
        self.name, self.samples, self.i = name, samples, 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        self.i += 1
        return {self.name: self.samples[self.i - 1]}

    def rewind(self) -> None:
        self.i = 0


def output_tolerances(model: onnx.ModelProto) -> list[float]:
    """STEPS times the scale of the DequantizeLinear producing each output."""
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    tols = []
    for out in model.graph.output:
        n = producer.get(out.name)
        if n is None or n.op_type != "DequantizeLinear" or n.input[1] not in inits:
            raise SystemExit(f"output {out.name} is not produced by a DequantizeLinear")
        tols.append(STEPS * float(inits[n.input[1]].max()))
    return tols


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    manifest = {"fixtures": []}
    src_manifest = json.loads((SRC / "manifest.json").read_text())
    shapes = {f["name"]: f["inputs"][0] for f in src_manifest["fixtures"]}
    for name in FIXTURES:
        inp = shapes[name]
        x = np.load(SRC / name / "input_0.npy").astype(np.float32)
        samples = [rng.standard_normal(inp["shape"]).astype(np.float32) for _ in range(CALIB)]
        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            quant_pre_process(str(SRC / name / "model.onnx"), str(pre))
            for fmt, qfmt, act in [
                ("qdq", QuantFormat.QDQ, QuantType.QInt8),
                ("qop", QuantFormat.QOperator, QuantType.QUInt8),
            ]:
                tag = f"{name}_{fmt}"
                path = OUT / f"{tag}.onnx"
                quantize_static(
                    str(pre),
                    str(path),
                    Reader(inp["name"], samples),
                    quant_format=qfmt,
                    per_channel=True,
                    activation_type=act,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )
                model = onnx.load(str(path))
                so = ort.SessionOptions()
                so.intra_op_num_threads = 1
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                outs = sess.run(None, {inp["name"]: x})
                np.save(OUT / f"{tag}_input_0.npy", x)
                entry = {
                    "name": tag,
                    "model": path.name,
                    "format": fmt,
                    "inputs": [{"name": inp["name"], "file": f"{tag}_input_0.npy", "shape": inp["shape"]}],
                    "outputs": [],
                }
                for i, (o, tol) in enumerate(zip(outs, output_tolerances(model))):
                    np.save(OUT / f"{tag}_output_{i}.npy", o)
                    entry["outputs"].append({"file": f"{tag}_output_{i}.npy", "atol": tol})
                manifest["fixtures"].append(entry)
                ops = sorted({n.op_type for n in model.graph.node})
                print(f"{tag}: {path.stat().st_size} bytes, ops {ops}")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
