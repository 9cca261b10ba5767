#!/usr/bin/env python3
"""Writes qblock_linear_cases.rs: whittle::QBlockLinear cases whose reference
outputs come from onnxruntime running the equivalent QDQ graph (opset 21):
DequantizeLinear(x) -> MatMul / Conv 1x1 (DequantizeLinear with block_size on
an INT4 initializer) [+ bias] [-> Relu / Clip] -> QuantizeLinear. onnxruntime
computes in f32 with its own summation order, so tests allow 1.
Usage (from the repository root):
python3 scripts/testgen/qblock_linear_cases_gen.py > crates/runtime/src/ops/quantized/qblock_linear_cases.rs"""
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import onnxruntime as ort

rng = np.random.default_rng(21)
NP2ONNX = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8}
RUST_DT = {np.uint8: "DType::U8", np.int8: "DType::I8"}


def f32_lit(v):
    return np.format_float_positional(np.float32(v), unique=True, trim="0")


def rust_tensor(a):
    a = np.asarray(a)
    shape = ", ".join(str(d) for d in a.shape)
    if a.dtype == np.float32:
        data = ", ".join(f32_lit(v) for v in a.reshape(-1))
        return f"tf(&[{shape}], &[{data}])"
    return f'hx({RUST_DT[a.dtype.type]}, &[{shape}], "{a.tobytes().hex()}")'


def case(name, layout, dt, xshape, n, bs, bias, act):
    k = xshape[-1] if layout == "matmul" else xshape[1]
    nb = -(-k // bs)
    lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
    x = rng.integers(lo, hi, size=xshape).astype(dt)
    x_scale = np.float32(rng.uniform(0.01, 0.05))
    x_zp = dt(rng.integers(lo + 20, hi - 20))
    if layout == "matmul":
        w = rng.integers(-8, 8, size=(k, n)).astype(np.int8)
        w_scale = rng.uniform(0.002, 0.02, size=(nb, n)).astype(np.float32)
        axis = 0
    else:
        w = rng.integers(-8, 8, size=(n, k, 1, 1)).astype(np.int8)
        w_scale = rng.uniform(0.002, 0.02, size=(n, nb, 1, 1)).astype(np.float32)
        axis = 1
    b = rng.uniform(-0.5, 0.5, size=(n,)).astype(np.float32) if bias else None
    y_scale = np.float32(0.5 * x_scale * 100 * 0.011 * np.sqrt(k) / 8)
    y_zp = dt(rng.integers(lo + 40, hi - 40))

    inits = [
        numpy_helper.from_array(np.array(x_scale), "x_scale"),
        numpy_helper.from_array(np.array(x_zp), "x_zp"),
        helper.make_tensor("w", TensorProto.INT4, w.shape, w.reshape(-1).tolist()),
        numpy_helper.from_array(w_scale, "w_scale"),
        numpy_helper.from_array(np.array(y_scale), "y_scale"),
        numpy_helper.from_array(np.array(y_zp), "y_zp"),
    ]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["xf"]),
        helper.make_node("DequantizeLinear", ["w", "w_scale"], ["wf"], axis=axis, block_size=bs),
    ]
    if layout == "matmul":
        nodes.append(helper.make_node("MatMul", ["xf", "wf"], ["mm"]))
        last = "mm"
        if bias:
            inits.append(numpy_helper.from_array(b, "b"))
            nodes.append(helper.make_node("Add", ["mm", "b"], ["ab"]))
            last = "ab"
    else:
        ins = ["xf", "wf"]
        if bias:
            inits.append(numpy_helper.from_array(b, "b"))
            ins.append("b")
        nodes.append(helper.make_node("Conv", ins, ["cv"]))
        last = "cv"
    attrs = []
    if act == "Relu":
        nodes.append(helper.make_node("Relu", [last], ["act"]))
        last = "act"
        attrs.append('("whittle.act", Attr::String("Relu".into()))')
    elif act == "Clip":
        cmin, cmax = np.float32(-30 * y_scale), np.float32(45 * y_scale)
        inits += [numpy_helper.from_array(np.array(cmin), "cmin"),
                  numpy_helper.from_array(np.array(cmax), "cmax")]
        nodes.append(helper.make_node("Clip", [last, "cmin", "cmax"], ["act"]))
        last = "act"
        attrs += ['("whittle.act", Attr::String("Clip".into()))',
                  f'("whittle.act.min", Attr::Float({f32_lit(cmin)}))',
                  f'("whittle.act.max", Attr::Float({f32_lit(cmax)}))']
    nodes.append(helper.make_node("QuantizeLinear", [last, "y_scale", "y_zp"], ["y"]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", NP2ONNX[dt], xshape)],
        [helper.make_tensor_value_info("y", NP2ONNX[dt], None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    so = ort.SessionOptions()
    # Keep the QDQ graph as written (no int4 MatMulNBits rewrite).
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    y = sess.run(None, {"x": x})[0]
    sat = np.mean((y == y.min()) | (y == y.max()))
    assert sat < 0.7, f"{name}: outputs mostly saturated ({sat})"
    inputs = [rust_tensor(x), rust_tensor(np.array(x_scale)), rust_tensor(np.array(x_zp)),
              rust_tensor(w), rust_tensor(w_scale), rust_tensor(np.array(y_scale)),
              rust_tensor(np.array(y_zp))]
    ins = ", ".join(f"Some({t})" for t in inputs)
    if bias:
        ins += f", Some({rust_tensor(b)})"
    attrs = [f'("block_size", Attr::Int({bs}))', f'("layout", Attr::String("{layout}".into()))'] + attrs
    return (f'        QbCase {{ name: "{name}", attrs: vec![{", ".join(attrs)}],\n'
            f'            inputs: vec![{ins}],\n            output: {rust_tensor(y)} }},\n')


CASES = [
    ("mm_u8_k64_bs32", "matmul", np.uint8, [3, 64], 40, 32, True, None),
    ("mm_i8_k80_bs32_short", "matmul", np.int8, [2, 5, 80], 33, 32, False, "Relu"),
    ("mm_u8_k100_bs16_short", "matmul", np.uint8, [7, 100], 70, 16, True, "Clip"),
    ("mm_i8_m1_k256_bs64", "matmul", np.int8, [1, 256], 64, 64, True, None),
    ("conv_u8_k48_bs32_short", "conv1x1", np.uint8, [2, 48, 3, 5], 24, 32, True, "Relu"),
    ("conv_i8_k64_bs16", "conv1x1", np.int8, [1, 64, 6, 6], 36, 16, False, None),
    ("conv_i8_k96_bs64_short", "conv1x1", np.int8, [1, 96, 4, 3], 40, 64, True, "Clip"),
]

print("// @generated by qblock_linear_cases_gen.py (onnxruntime "
      f"{ort.__version__}); do not edit.")
print("use whittle_ir::{Attr, DType};\n")
print("use super::QbCase;")
print("use crate::ops::testing::test_support::{hx, tf};\n")
print("pub(crate) fn cases() -> Vec<QbCase> {\n    vec![")
for c in CASES:
    print(case(*c), end="")
print("    ]\n}")
