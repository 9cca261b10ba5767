#!/usr/bin/env python3
"""Writes qlinear_matmul_cases.rs: MatMulInteger, QLinearMatMul and
com.microsoft QGemm cases on random inputs, with outputs computed by
onnxruntime (QLinearMatMul/QGemm round half to even in float; whittle's
fixed-point requantization may differ by 1, so tests allow that).
Usage (from the repository root):
python3 scripts/testgen/qlinear_matmul_cases_gen.py > crates/runtime/src/ops/quantized/qlinear_matmul_cases.rs"""
import numpy as np
import onnx
from onnx import helper, TensorProto
import onnxruntime as ort

rng = np.random.default_rng(7)
NP2ONNX = {np.uint8: TensorProto.UINT8, np.int8: TensorProto.INT8,
           np.int32: TensorProto.INT32, np.float32: TensorProto.FLOAT}
RUST_DT = {np.uint8: "DType::U8", np.int8: "DType::I8", np.int32: "DType::I32"}


def rand_q(dt, shape):
    lo, hi = (0, 256) if dt == np.uint8 else (-128, 128)
    return rng.integers(lo, hi, size=shape).astype(dt)


def run(op, domain, opset, inputs, attrs, out_dt):
    names = [f"x{i}" if v is not None else "" for i, v in enumerate(inputs)]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], domain=domain or None, **attrs)
    graph_inputs = [helper.make_tensor_value_info(n, NP2ONNX[v.dtype.type], v.shape)
                    for n, v in zip(names, inputs) if n]
    out = helper.make_tensor_value_info("y", NP2ONNX[out_dt], None)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(helper.make_graph([node], "g", graph_inputs, [out]),
                              opset_imports=opsets)
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: v for n, v in zip(names, inputs) if n}
    return sess.run(None, feeds)[0]


def rust_tensor(a):
    a = np.asarray(a)
    shape = ", ".join(str(d) for d in a.shape)
    if a.dtype == np.float32:
        data = ", ".join(np.format_float_positional(v, unique=True, trim="0") for v in a.reshape(-1))
        return f"tf(&[{shape}], &[{data}])"
    return f'hx({RUST_DT[a.dtype.type]}, &[{shape}], "{a.astype(a.dtype.newbyteorder("<")).tobytes().hex()}")'


def f32(x):
    return np.array(x, dtype=np.float32)


cases = []


def add(name, op, domain, opset, inputs, attrs, out_dt):
    y = run(op, domain, opset, inputs, attrs, out_dt)
    cases.append((name, op, domain, opset, inputs, attrs, y))


for (adt, bdt, ydt) in [(np.uint8, np.uint8, np.uint8), (np.uint8, np.int8, np.uint8),
                        (np.int8, np.int8, np.int8)]:
    for (ashape, bshape, per_col) in [((3, 17), (17, 5), False), ((2, 3, 8), (8, 33), True),
                                      ((1, 40), (40, 70), True), ((2, 1, 5, 9), (3, 9, 4), False)]:
        n = bshape[-1]
        a, b = rand_q(adt, ashape), rand_q(bdt, bshape)
        bs = f32(rng.uniform(0.002, 0.02, size=(n,) if per_col else ()))
        bz = rand_q(bdt, (n,) if per_col else ()) if bdt == np.uint8 else np.zeros((n,) if per_col else (), bdt)
        k = ashape[-1]
        ys = f32(np.float32(0.01) * k ** 0.5 * 0.05)
        inputs = [a, f32(0.02), rand_q(adt, ()), b, bs, bz, ys, rand_q(ydt, ())]
        tag = f"{np.dtype(adt).name}_{np.dtype(bdt).name}_{'x'.join(map(str, ashape))}_{'x'.join(map(str, bshape))}"
        try:
            add(f"qlinear_matmul_{tag}", "QLinearMatMul", "", 10, inputs, {}, ydt)
        except Exception as e:  # ORT lacks some type combinations
            print(f"// skipped QLinearMatMul {tag}: {str(e).splitlines()[0][:80]}")
        mi = [a, b, rand_q(adt, ()), rand_q(bdt, (n,) if per_col else ())]
        try:
            add(f"matmul_integer_{tag}", "MatMulInteger", "", 10, mi, {}, np.int32)
        except Exception as e:
            print(f"// skipped MatMulInteger {tag}: {str(e).splitlines()[0][:80]}")

for (adt, bdt) in [(np.uint8, np.int8), (np.uint8, np.uint8), (np.int8, np.int8)]:
    for (m, k, n, ta, tb, cshape, per_col, quant) in [
            (4, 20, 7, 0, 1, (7,), True, True), (3, 9, 5, 1, 0, (3, 5), False, True),
            (6, 33, 10, 0, 0, (1, 10), True, False), (2, 16, 3, 0, 1, None, False, True)]:
        a = rand_q(adt, (k, m) if ta else (m, k))
        b = rand_q(bdt, (n, k) if tb else (k, n))
        bs = f32(rng.uniform(0.002, 0.02, size=(n,) if per_col else ()))
        bz = rand_q(bdt, (n,) if per_col else ()) if bdt == np.uint8 else np.zeros((n,) if per_col else (), bdt)
        c = rng.integers(-3000, 3000, size=cshape).astype(np.int32) if cshape else None
        inputs = [a, f32(0.03), rand_q(adt, ()), b, bs, bz, c]
        if quant:
            inputs += [f32(0.4), rand_q(adt, ())]
        attrs = {"transA": ta, "transB": tb, "alpha": 0.75}
        tag = f"{np.dtype(adt).name}_{np.dtype(bdt).name}_{m}x{k}x{n}_t{ta}{tb}{'_f32' if not quant else ''}"
        try:
            add(f"qgemm_{tag}", "QGemm", "com.microsoft", 13, inputs, attrs,
                adt if quant else np.float32)
        except Exception as e:
            print(f"// skipped QGemm {tag}: {str(e).splitlines()[0][:80]}")

print("//! Generated by qlinear_matmul_cases_gen.py (onnxruntime "
      f"{ort.__version__}): do not edit by hand.")
print("use whittle_ir::{Attr, DType};\n")
print("use crate::ops::testing::test_support::{hx, tf};")
print("use super::QCase;\n")
print("pub(crate) fn cases() -> Vec<QCase> {\n    vec![")
for (name, op, domain, opset, inputs, attrs, y) in cases:
    ins = ", ".join("None" if v is None else f"Some({rust_tensor(v)})" for v in inputs)
    at = ", ".join(f'("{k}", Attr::Float({v}))' if isinstance(v, float) else f'("{k}", Attr::Int({v}))'
                   for k, v in attrs.items())
    print(f'        QCase {{ name: "{name}", op: "{op}", domain: "{domain}", opset: {opset}, '
          f'attrs: vec![{at}], inputs: vec![{ins}], output: {rust_tensor(y)} }},')
print("    ]\n}")
