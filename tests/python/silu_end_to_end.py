#!/usr/bin/env python3
"""SiLU end to end, against onnxruntime.

Builds a small CNN with onnx.helper that holds SiLU both ways users meet it:
as `x * Sigmoid(x)` (how PyTorch and TF exporters write it) and as ONNX
opset 24's `Swish` (with alpha 1 and alpha 1.5). Then, with the `whittle`
binary given on the command line:

1. f32: `whittle run` matches onnxruntime; `whittle inspect` shows every
   SiLU fused into the Conv/Gemm before it (no Sigmoid, Mul or Swish node
   left).
2. int8: `whittle quantize` writes a QDQ file; whittle's integer plan runs
   each Swish by one lookup table and the x*Sigmoid(x) form as an int8
   Sigmoid table times an int8 Mul (the file's literal semantics), with no
   float node left, and matches onnxruntime's literal QDQ semantics (graph
   optimisations off) within two output quantization steps.
3. structured pruning: `whittle prune --channels 0.5` passes channels
   through SiLU (fewer parameters) and onnxruntime agrees with whittle on the
   pruned file.
4. training: `whittle train` differentiates through SiLU and the loss falls.

Exit status 0 when every check holds; the failing check is printed
otherwise. Run by `crates/cli/tests/silu.rs`.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)


def conv_w(cout, cin, k):
    w = RNG.standard_normal((cout, cin, k, k)).astype(np.float32)
    return w * np.float32(1.5 / np.sqrt(cin * k * k))


def build_model(path: Path):
    inits = [
        numpy_helper.from_array(conv_w(8, 3, 3), "w1"),
        numpy_helper.from_array(RNG.standard_normal(8).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(conv_w(16, 8, 3), "w2"),
        numpy_helper.from_array(conv_w(16, 16, 1), "w3"),
        numpy_helper.from_array(
            (RNG.standard_normal((16, 10)) * 0.3).astype(np.float32), "wg"
        ),
        numpy_helper.from_array(np.zeros(10, np.float32), "bg"),
    ]
    nodes = [
        # SiLU as exporters write it: Sigmoid and Mul.
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c1"], ["s1"]),
        helper.make_node("Mul", ["c1", "s1"], ["a1"]),
        # Opset 24's Swish, alpha 1 (SiLU).
        helper.make_node("Conv", ["a1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Swish", ["c2"], ["a2"]),
        # Swish with alpha 1.5, and the Mul operands the other way round.
        helper.make_node("Conv", ["a2", "w3"], ["c3"]),
        helper.make_node("Swish", ["c3"], ["a3"], alpha=1.5),
        helper.make_node("GlobalAveragePool", ["a3"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"]),
        helper.make_node("Sigmoid", ["g"], ["sg"]),
        helper.make_node("Mul", ["sg", "g"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "silu_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 24)])
    model.ir_version = 10
    onnx.save(model, str(path))


def whittle(binary, *args):
    out = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"whittle {' '.join(map(str, args))} failed:\n{out.stdout}\n{out.stderr}")
    return out.stdout


def whittle_run(binary, model: Path, x: np.ndarray, work: Path) -> np.ndarray:
    xin = work / "x.npy"
    np.save(xin, x)
    outdir = work / f"out_{model.stem}"
    whittle(binary, "run", model, "--input", f"x={xin}", "--output-dir", outdir)
    return np.load(outdir / "y.npy")


def ort_run(model: Path, x: np.ndarray, optimise=True) -> np.ndarray:
    opts = ort.SessionOptions()
    if not optimise:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def plan_nodes(binary, model: Path):
    doc = json.loads(whittle(binary, "inspect", model, "--json"))
    report = doc.get("report", doc)
    return report["nodes"]


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def output_step(q) -> float:
    """The scale of the DequantizeLinear that writes the graph output."""
    inits = {t.name: numpy_helper.to_array(t) for t in q.graph.initializer}
    out = q.graph.output[0].name
    dq = next(n for n in q.graph.node if out in n.output)
    if dq.op_type != "DequantizeLinear":
        raise SystemExit(f"FAILED: the int8 model's output comes from {dq.op_type}, not DequantizeLinear")
    return float(inits[dq.input[1]].item())


def write_data(path: Path, n: int):
    x = RNG.standard_normal((n, 3, 16, 16)).astype(np.float32)
    # Labels a linear probe of the input can learn, so the loss can fall.
    y = (x[:, 0, :8, :].mean(axis=(1, 2)) > 0).astype(np.int64) * 3
    np.savez(path, x=x, y=y)
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--whittle", required=True)
    args = ap.parse_args()
    bin_ = args.whittle
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / "silu.onnx"
        build_model(model)
        x = RNG.standard_normal((1, 3, 16, 16)).astype(np.float32)

        # 1. f32, fused.
        want = ort_run(model, x)
        got = whittle_run(bin_, model, x, work)
        err = float(np.abs(got - want).max())
        check(err <= 1e-5 * max(1.0, float(np.abs(want).max())), f"f32 matches onnxruntime (max |diff| {err:.2e})")
        nodes = plan_nodes(bin_, model)
        ops = [n["op"] for n in nodes]
        check(not {"Sigmoid", "Mul", "Swish"} & set(ops), f"every SiLU fused (plan ops {ops})")
        kernels = [n["kernel"] for n in nodes if n["op"] in ("Conv", "Gemm")]
        check(
            sum(k.endswith("+silu") for k in kernels) == 3 and sum(k.endswith("+swish") for k in kernels) == 1,
            f"epilogues say silu/swish ({kernels})",
        )

        # 2. int8 by lookup table.
        data = work / "data.npz"
        xs = write_data(data, 64)
        qmodel = work / "silu_int8.onnx"
        whittle(bin_, "quantize", model, "-o", qmodel, "--calib", data, "--calib-samples", 64)
        qnodes = plan_nodes(bin_, qmodel)
        kernels = [n["kernel"] for n in qnodes]
        # Swish nodes: one 256-entry table each. The exporters' x*Sigmoid(x)
        # keeps the QDQ file's literal semantics: an int8 Sigmoid table and
        # an int8 Mul.
        swish_tables = [k for k in kernels if k.startswith("qlinear_lookup.swish")]
        sigmoid_tables = [k for k in kernels if "sigmoid" in k and "lookup" in k]
        int8_muls = [k for k in kernels if k.startswith("qlinear_mul")]
        check(
            len(swish_tables) == 2 and len(sigmoid_tables) == 2 and len(int8_muls) == 2,
            f"every SiLU runs in int8, Swish as one table ({kernels})",
        )
        check(not any(n["op"] in ("Conv", "Gemm") for n in qnodes), "no float Conv/Gemm left in the int8 plan")
        step = output_step(onnx.load(str(qmodel)))
        for i in range(4):
            xi = xs[i : i + 1]
            want = ort_run(qmodel, xi, optimise=False)
            got = whittle_run(bin_, qmodel, xi, work)
            err = float(np.abs(got - want).max())
            check(err <= 2 * step + 1e-6, f"int8 sample {i} within two steps of onnxruntime's QDQ semantics ({err:.4f}, step {step:.4f})")

        # 3. Structured pruning through SiLU.
        pmodel = work / "silu_pruned.onnx"
        whittle(bin_, "prune", model, "-o", pmodel, "--channels", "0.5")
        before = sum(numpy_helper.to_array(t).size for t in onnx.load(str(model)).graph.initializer)
        after = sum(numpy_helper.to_array(t).size for t in onnx.load(str(pmodel)).graph.initializer)
        check(after < 0.6 * before, f"pruning removed channels through SiLU ({before} -> {after} params)")
        want = ort_run(pmodel, x)
        got = whittle_run(bin_, pmodel, x, work)
        err = float(np.abs(got - want).max())
        check(err <= 1e-5 * max(1.0, float(np.abs(want).max())), f"pruned model: whittle = onnxruntime ({err:.2e})")

        # 4. Training through SiLU.
        tmodel = work / "silu_trained.onnx"
        out = whittle(bin_, "train", model, "-o", tmodel, "--data", data, "--epochs", 4, "--batch-size", 16, "--lr", 0.05, "--json")
        doc = json.loads(out)
        losses = [e["loss"] for e in doc["epochs"]]
        check(losses[-1] < losses[0], f"training loss falls ({losses})")
        want = ort_run(tmodel, x)
        got = whittle_run(bin_, tmodel, x, work)
        check(float(np.abs(got - want).max()) <= 1e-4, "trained model: whittle = onnxruntime")
    print("silu: all checks passed")


if __name__ == "__main__":
    sys.exit(main())
