#!/usr/bin/env python3
"""Add a PaddlePaddle model converted by paddle2onnx to the fixture zoo
(tests/fixtures/<name>/ and tests/fixtures/manifest.json), with onnxruntime
reference outputs, so the importer is exercised on paddle2onnx graphs.

Provenance and licences: architecture written here with paddle.nn layers
(PaddlePaddle, Apache-2.0); random initialisation from fixed seeds; inputs
are seeded noise; nothing downloaded.

Usage: python3 scripts/make_paddle_fixtures.py  (needs paddlepaddle,
paddle2onnx, onnxruntime; see scripts/requirements-dev.txt)
"""

from __future__ import annotations

import collections
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import paddle
import paddle2onnx

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ATOL, RTOL = 1e-4, 1e-5


class Net(paddle.nn.Layer):
    """Conv-BN-ReLU stem, a depthwise block with a residual add, hardswish,
    adaptive average pool and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = paddle.nn.Sequential(
            paddle.nn.Conv2D(3, 16, 3, stride=2, padding=1), paddle.nn.BatchNorm2D(16), paddle.nn.ReLU()
        )
        self.dw = paddle.nn.Sequential(
            paddle.nn.Conv2D(16, 16, 3, padding=1, groups=16), paddle.nn.BatchNorm2D(16), paddle.nn.Hardswish(),
            paddle.nn.Conv2D(16, 16, 1),
        )
        self.head = paddle.nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.dw(x)
        x = paddle.nn.functional.adaptive_avg_pool2d(x, 1)
        x = paddle.flatten(x, 1)
        return paddle.nn.functional.softmax(self.head(x))


def main() -> None:
    paddle.seed(11)
    rng = np.random.default_rng(11)
    net = Net()
    for layer in net.sublayers():
        if isinstance(layer, paddle.nn.BatchNorm2D):
            c = layer._mean.shape[0]
            layer._mean.set_value(rng.normal(0, 0.1, c).astype(np.float32))
            layer._variance.set_value(rng.uniform(0.5, 2.0, c).astype(np.float32))
            layer.weight.set_value(rng.uniform(0.5, 1.5, c).astype(np.float32))
    net.eval()
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    want = net(paddle.to_tensor(x)).numpy()
    name = "paddle_net_paddle2onnx"
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / "net")
        spec = [paddle.static.InputSpec([1, 3, 32, 32], "float32", "image")]
        paddle.onnx.export(net, prefix, input_spec=spec, opset_version=13)
        Path(prefix + ".onnx").replace(out / "model.onnx")
    proto = onnx.load(out / "model.onnx")
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, {in_name: x})
    diff = float(np.abs(got[0] - want).max())
    assert diff <= ATOL, f"onnxruntime disagrees with Paddle by {diff}"
    np.save(out / "input_0.npy", x)
    for i, g in enumerate(got):
        np.save(out / f"output_{i}.npy", g)
    manifest_path = ROOT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    entry = {
        "name": name,
        "description": "Paddle net (Conv-BN-ReLU stem, depthwise block with residual add and hardswish, "
        "adaptive avg pool, Linear, softmax), converted by paddle2onnx",
        "opset": 13,
        "exporter": f"paddle2onnx {paddle2onnx.__version__}, paddlepaddle {paddle.__version__}",
        "params": int(sum(int(np.prod(p.shape)) for p in net.parameters())),
        "model_bytes": (out / "model.onnx").stat().st_size,
        "inputs": [{"name": in_name, "file": "input_0.npy", "shape": list(x.shape), "model_shape": list(x.shape), "dtype": "float32"}],
        "outputs": [{"name": n, "file": f"output_{i}.npy", "shape": list(got[i].shape), "model_shape": list(got[i].shape), "dtype": "float32"} for i, n in enumerate(out_names)],
        "tolerance": {"atol": ATOL, "rtol": RTOL},
        "ort_vs_paddle_max_abs_diff": diff,
        "ops": dict(sorted(ops.items())),
    }
    manifest["fixtures"] = [f for f in manifest["fixtures"] if f["name"] != name] + [entry]
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{name}: {entry['params']} params, {entry['model_bytes']} bytes, ops {dict(ops)}, ort vs paddle {diff:.2e}")


if __name__ == "__main__":
    main()
