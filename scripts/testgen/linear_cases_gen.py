#!/usr/bin/env python3
"""Writes linear_cases.rs: reference cases for the Conv, ConvTranspose, Gemm
and MatMul op tests. Conformance cases come from the ONNX backend node suite
(/usr/share/libonnx-testdata); extra cases are random inputs run through
onnxruntime (onnx.reference mishandles grouped ConvTranspose). Usage (from the repository root):
python3 scripts/testgen/linear_cases_gen.py > crates/runtime/src/ops/nn/linear_cases.rs"""
import glob
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort

SUITE = "/usr/share/libonnx-testdata/data/node"
PREFIXES = ["basic_conv", "conv_", "convtranspose", "gemm", "matmul_"]


def rust_f32(x):
    x = float(x)
    if np.isnan(x):
        return "f32::NAN"
    # Shortest text that reads back as the same f32.
    return np.format_float_positional(np.float32(x), unique=True, trim="0")


def emit_tensor(a):
    a = np.asarray(a, dtype=np.float32)
    shape = ", ".join(str(d) for d in a.shape)
    data = ", ".join(rust_f32(v) for v in a.reshape(-1))
    return f"(&[{shape}], &[{data}])"


def emit_attr(name, v):
    if isinstance(v, bytes):
        return f'("{name}", A::S("{v.decode()}"))'
    if isinstance(v, str):
        return f'("{name}", A::S("{v}"))'
    if isinstance(v, float):
        return f'("{name}", A::F({rust_f32(v)}))'
    if isinstance(v, int):
        return f'("{name}", A::I({v}))'
    return f'("{name}", A::Is(&[{", ".join(str(int(x)) for x in v)}]))'


def emit(name, op, opset, attrs, inputs, outputs):
    ins = ", ".join("None" if i is None else f"Some({emit_tensor(i)})" for i in inputs)
    outs = ", ".join(emit_tensor(o) for o in outputs)
    at = ", ".join(emit_attr(k, v) for k, v in sorted(attrs.items()))
    print(f'    Case {{ name: "{name}", op: "{op}", opset: {opset}, attrs: &[{at}], inputs: &[{ins}], outputs: &[{outs}] }},')


def suite_cases():
    for case in sorted(glob.glob(f"{SUITE}/test_*")):
        base = os.path.basename(case)
        if not any(base.startswith("test_" + p) for p in PREFIXES):
            continue
        m = onnx.load(f"{case}/model.onnx")
        n = m.graph.node[0]
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        d = f"{case}/test_data_set_0"
        ins = [numpy_helper.to_array(onnx.load_tensor(f)) for f in sorted(glob.glob(f"{d}/input_*.pb"))]
        outs = [numpy_helper.to_array(onnx.load_tensor(f)) for f in sorted(glob.glob(f"{d}/output_*.pb"))]
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        emit(base, n.op_type, m.opset_import[0].version, attrs, ins, outs)


def run_ref(op, attrs, inputs, opset=13):
    names = [f"i{k}" if x is not None else "" for k, x in enumerate(inputs)]
    node = helper.make_node(op, names, ["y"], **attrs)
    g = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, x.shape) for n, x in zip(names, inputs) if x is not None],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    feeds = {n: x for n, x in zip(names, inputs) if x is not None}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def extra(name, op, attrs, *inputs, opset=13):
    inputs = [None if x is None else np.asarray(x, np.float32) for x in inputs]
    y = run_ref(op, attrs, inputs, opset)
    emit(name, op, opset, attrs, inputs, [y])


rng = np.random.default_rng(42)


def r(*shape):
    return rng.uniform(-1, 1, size=shape).astype(np.float32)


def extra_cases():
    extra("dw3x3s2_pad1_bias", "Conv", {"group": 4, "pads": [1, 1, 1, 1], "strides": [2, 2]}, r(1, 4, 9, 11), r(4, 1, 3, 3), r(4))
    extra("dw3x3s1_mult2", "Conv", {"group": 3, "pads": [1, 1, 1, 1]}, r(2, 3, 7, 10), r(6, 1, 3, 3), r(6))
    extra("dw5x5s1_same_upper", "Conv", {"group": 3, "auto_pad": "SAME_UPPER"}, r(1, 3, 8, 9), r(3, 1, 5, 5), None)
    extra("grouped_dilated_asym", "Conv", {"group": 2, "dilations": [2, 1], "pads": [1, 0, 2, 1], "strides": [1, 2]}, r(1, 4, 8, 9), r(6, 2, 3, 3), r(6))
    extra("conv1d", "Conv", {"strides": [2], "pads": [1, 1], "dilations": [2]}, r(2, 3, 12), r(4, 3, 3), r(4))
    extra("conv3d", "Conv", {"pads": [1, 1, 1, 1, 1, 1]}, r(1, 2, 4, 5, 6), r(3, 2, 2, 3, 3), r(3))
    extra("same_upper_s2", "Conv", {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, r(1, 2, 8, 8), r(3, 2, 3, 3), None)
    extra("valid_s1", "Conv", {"auto_pad": "VALID"}, r(1, 2, 6, 7), r(5, 2, 3, 2), r(5))
    extra("pointwise_bias", "Conv", {}, r(2, 5, 4, 6), r(7, 5, 1, 1), r(7))
    extra("pointwise_wide", "Conv", {}, r(1, 20, 5, 9), r(9, 20, 1, 1), r(9))
    extra("convt_groups_dil", "ConvTranspose", {"group": 2, "strides": [2, 3], "dilations": [1, 2], "pads": [1, 0, 0, 1], "output_padding": [1, 0]}, r(1, 4, 3, 4), r(4, 3, 3, 2), r(6))
    extra("convt_same_lower", "ConvTranspose", {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, r(1, 2, 3, 3), r(2, 2, 3, 3), None)
    extra("convt_1d_bias", "ConvTranspose", {"strides": [2]}, r(2, 3, 5), r(3, 2, 4), r(2))
    extra("gemm_rowbias_trans", "Gemm", {"alpha": 0.5, "beta": 2.0, "transA": 1, "transB": 1}, r(6, 5), r(7, 6), r(5, 1))
    extra("gemm_vec_bias", "Gemm", {"beta": -1.5}, r(5, 6), r(6, 7), r(7))
    extra("gemm_scalar_11", "Gemm", {}, r(3, 4), r(4, 5), r(1, 1))
    extra("gemm_big", "Gemm", {"alpha": 1.25}, r(7, 20), r(20, 33), r(33))
    extra("gemm_full_c", "Gemm", {"beta": 0.5, "transB": 1}, r(9, 17), r(18, 17), r(9, 18))
    extra("matmul_1d_a", "MatMul", {}, r(4), r(4, 3))
    extra("matmul_1d_b", "MatMul", {}, r(2, 3, 4), r(4))
    extra("matmul_1d_both", "MatMul", {}, r(4), r(4))
    extra("matmul_bcast", "MatMul", {}, r(2, 1, 3, 4), r(3, 4, 5))
    extra("matmul_bcast_a", "MatMul", {}, r(5, 4), r(2, 4, 3))
    extra("matmul_batched_b1", "MatMul", {}, r(3, 7, 20), r(1, 20, 33))
    extra("matmul_1d_a_batched_b", "MatMul", {}, r(4), r(2, 4, 3))


print("// Generated by linear_cases_gen.py; do not edit.")
print("use super::linear_cases_types::{Case, A};")
print()
print("pub(crate) const CASES: &[Case] = &[")
suite_cases()
extra_cases()
print("];")
