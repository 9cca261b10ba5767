#!/usr/bin/env python3
"""Add TensorFlow/Keras models converted by tf2onnx to the fixture zoo
(tests/fixtures/<name>/ and tests/fixtures/manifest.json), with onnxruntime
reference outputs, so the importer is exercised on tf2onnx graphs (NHWC
inputs with Transposes, Keras-style BatchNorm, DepthwiseConv2D, Dense).

Provenance and licences: architectures written here with Keras layers
(TensorFlow, Apache-2.0); random initialisation from fixed seeds; inputs are
seeded noise; nothing downloaded. The weights are data made by this script.

Usage: python3 scripts/make_tf_fixtures.py   (needs tensorflow-cpu, tf2onnx,
onnxruntime; see scripts/requirements-dev.txt)
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
ATOL, RTOL = 1e-4, 1e-5


def keras_cnn() -> tf.keras.Model:
    inp = tf.keras.Input((32, 32, 3), batch_size=1, name="image")
    x = tf.keras.layers.Conv2D(16, 3, strides=2, padding="same")(inp)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU(6.0)(x)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = tf.keras.layers.BatchNormalization()(x)
    x = tf.keras.layers.ReLU()(x)
    y = tf.keras.layers.Conv2D(24, 1)(x)
    z = tf.keras.layers.Conv2D(24, 3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Concatenate()([y, z])
    x = tf.keras.layers.MaxPooling2D(2)(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    x = tf.keras.layers.Dense(32, activation="sigmoid")(x)
    out = tf.keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return tf.keras.Model(inp, out)


def randomise_bn(model: tf.keras.Model, rng: np.random.Generator) -> None:
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, g.shape).astype(np.float32),
                rng.normal(0, 0.1, b.shape).astype(np.float32),
                rng.normal(0, 0.1, m.shape).astype(np.float32),
                rng.uniform(0.5, 2.0, v.shape).astype(np.float32),
            ])


def main() -> None:
    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    model = keras_cnn()
    randomise_bn(model, rng)
    x = rng.standard_normal((1, 32, 32, 3)).astype(np.float32)
    want_tf = model(x, training=False).numpy()
    spec = (tf.TensorSpec((1, 32, 32, 3), tf.float32, name="image"),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
    name = "keras_cnn_tf2onnx"
    out = ROOT / name
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out / "model.onnx")
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    got = sess.run(None, {in_name: x})
    diff = float(np.abs(got[0] - want_tf).max())
    assert diff <= ATOL, f"onnxruntime disagrees with TensorFlow by {diff}"
    np.save(out / "input_0.npy", x)
    for i, g in enumerate(got):
        np.save(out / f"output_{i}.npy", g)
    manifest_path = ROOT / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    ops = collections.Counter(n.op_type for n in proto.graph.node)
    entry = {
        "name": name,
        "description": "Keras CNN (Conv2D s2 + BN + ReLU6, DepthwiseConv2D, 1x1/3x3 branches with Concatenate, "
        "MaxPool, GAP, Dense sigmoid/softmax), NHWC input, converted by tf2onnx",
        "opset": 13,
        "exporter": f"tf2onnx {tf2onnx.__version__}, tensorflow {tf.__version__}",
        "params": int(model.count_params()),
        "model_bytes": (out / "model.onnx").stat().st_size,
        "inputs": [{"name": in_name, "file": "input_0.npy", "shape": list(x.shape), "model_shape": list(x.shape), "dtype": "float32"}],
        "outputs": [{"name": n, "file": f"output_{i}.npy", "shape": list(got[i].shape), "model_shape": list(got[i].shape), "dtype": "float32"} for i, n in enumerate(out_names)],
        "tolerance": {"atol": ATOL, "rtol": RTOL},
        "ort_vs_tf_max_abs_diff": diff,
        "ops": dict(sorted(ops.items())),
    }
    manifest["fixtures"] = [f for f in manifest["fixtures"] if f["name"] != name] + [entry]
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{name}: {entry['params']} params, {entry['model_bytes']} bytes, ops {dict(ops)}, ort vs tf {diff:.2e}")


if __name__ == "__main__":
    main()
