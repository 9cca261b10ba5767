#!/usr/bin/env python3
"""Writes qlinear_conv_cases.rs: reference cases for the QLinearConv and
ConvInteger op tests. Each case carries two references:
  * `ort`: onnxruntime's output (rounds half to even in float, so whittle may
    differ by 1 at ties), or None when onnxruntime refuses the combination;
  * `fixed`: a naive fixed-point reference written here from the definition:
    int64 accumulation of (x - x_zp) * (w - w_zp) over the zero-point-padded
    input, TFLite QuantizeMultiplier, SaturatingRoundingDoublingHighMul,
    RoundingDivideByPOT, + y_zp, clamp (with a fused Relu/Clip folded in).
Usage (from the repository root):
python3 scripts/testgen/qlinear_conv_cases_gen.py > crates/runtime/src/ops/quantized/qlinear_conv_cases.rs"""
import math

import numpy as np
import onnx
from onnx import TensorProto, helper
import onnxruntime as ort

RNG = np.random.default_rng(20261122)
I32_MIN, I32_MAX = -(2**31), 2**31 - 1


def quantize_multiplier(real):
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    qf = int(math.floor(q * 2**31 + 0.5))  # C round(): half away from zero, q > 0
    if qf == 2**31:
        qf //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return qf, shift


def srdhm(a, b):
    if a == I32_MIN and b == I32_MIN:
        return I32_MAX
    t = a * b + ((1 << 30) if a * b >= 0 else 1 - (1 << 30))
    q = abs(t) >> 31
    return q if t >= 0 else -q


def rdbpot(x, e):
    mask = (1 << e) - 1
    rem = x & mask
    thr = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > thr else 0)


def requant(acc, m, shift):
    x = min(max(acc << max(shift, 0), I32_MIN), I32_MAX)
    return rdbpot(srdhm(x, m), max(-shift, 0))


def conv_acc(x, w, xzp, wzp, bias, group, strides, dil, pads):
    """int64 accumulators of a 2-D conv, padding by the zero point."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    pt, pl, pb, pr = pads
    xp = np.full((n, c, h + pt + pb, wd + pl + pr), xzp, dtype=np.int64)
    xp[:, :, pt:pt + h, pl:pl + wd] = x
    xp -= xzp
    wc = w.astype(np.int64) - np.asarray(wzp, dtype=np.int64).reshape(-1, 1, 1, 1)
    oh = (h + pt + pb - dil[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (wd + pl + pr - dil[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, oh, ow), dtype=np.int64)
    mg = m // group
    for co in range(m):
        g = co // mg
        for ci in range(cg):
            for ky in range(kh):
                for kx in range(kw):
                    y0, x0 = ky * dil[0], kx * dil[1]
                    patch = xp[:, g * cg + ci,
                               y0:y0 + strides[0] * (oh - 1) + 1:strides[0],
                               x0:x0 + strides[1] * (ow - 1) + 1:strides[1]]
                    out[:, co] += patch * wc[co, ci, ky, kx]
        if bias is not None:
            out[:, co] += int(bias[co])
    return out


def np_dtype(signed):
    return np.int8 if signed else np.uint8


def onnx_dtype(a):
    return {np.dtype(np.int8): TensorProto.INT8, np.dtype(np.uint8): TensorProto.UINT8,
            np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}[a.dtype]


def run_ort(op, attrs, inputs, out_dtype, out_shape):
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    while names and names[-1] == "":
        names.pop()
    node = helper.make_node(op, names, ["y"], **attrs)
    inits = [helper.make_tensor(f"in{i}", onnx_dtype(a), a.shape, a.flatten().tolist())
             for i, a in enumerate(inputs) if a is not None and i > 0]
    x = inputs[0]
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("in0", onnx_dtype(x), x.shape)],
        [helper.make_tensor_value_info("y", out_dtype, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    try:
        sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"in0": x})[0]
    except Exception:  # combination not implemented by onnxruntime
        return None


def rust_f32(v):
    return np.format_float_positional(np.float32(v), unique=True, trim="0")


def emit_in(a):
    if a is None:
        return "None"
    kind = {np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.int32): "I32",
            np.dtype(np.float32): "F32"}[a.dtype]
    shape = ", ".join(str(d) for d in a.shape)
    if kind == "F32":
        data = ", ".join(rust_f32(v) for v in a.flatten())
        return f"Some(In {{ dt: Dt::F32, shape: &[{shape}], i: &[], f: &[{data}] }})"
    data = ", ".join(str(int(v)) for v in a.flatten())
    return f"Some(In {{ dt: Dt::{kind}, shape: &[{shape}], i: &[{data}], f: &[] }})"


def emit_attr(k, v):
    if isinstance(v, str):
        return f'("{k}", A::S("{v}"))'
    if isinstance(v, float):
        return f'("{k}", A::F({rust_f32(v)}))'
    if isinstance(v, int):
        return f'("{k}", A::I({v}))'
    return f'("{k}", A::Is(&[{", ".join(str(int(x)) for x in v)}]))'


def ints(a):
    return ", ".join(str(int(v)) for v in np.asarray(a).flatten())


def case(name, op, attrs, inputs, out_shape, out_dt, fixed, ort_out, act=None):
    at = dict(attrs)
    if act is not None:
        at.update(act)
    at_s = ", ".join(emit_attr(k, v) for k, v in sorted(at.items()))
    ins = ", ".join(emit_in(a) for a in inputs)
    ort_s = "None" if ort_out is None else f"Some(&[{ints(ort_out)}])"
    shape = ", ".join(str(d) for d in out_shape)
    print(f'    QCase {{ name: "{name}", op: "{op}", attrs: &[{at_s}], inputs: &[{ins}], '
          f'out_dt: Dt::{out_dt}, out_shape: &[{shape}], fixed: &[{ints(fixed)}], ort: {ort_s} }},')


def geometry(attrs, x_shape, w_shape):
    kh, kw = w_shape[2:]
    strides = attrs.get("strides", [1, 1])
    dil = attrs.get("dilations", [1, 1])
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    if attrs.get("auto_pad") == "SAME_UPPER":
        pads = [0, 0, 0, 0]
        for d, (i, k) in enumerate(zip(x_shape[2:], (kh, kw))):
            o = -(-i // strides[d])
            total = max((o - 1) * strides[d] + (k - 1) * dil[d] + 1 - i, 0)
            pads[d], pads[d + 2] = total // 2, total - total // 2
    return strides, dil, [pads[0], pads[1], pads[2], pads[3]]


def qlinear(name, x_shape, w_shape, attrs, x_signed, w_signed, y_signed,
            per_channel=True, w_zp_kind="zero", with_bias=True, act=None):
    group = attrs.get("group", 1)
    m = w_shape[0]
    xlo, xhi = (-128, 127) if x_signed else (0, 255)
    wlo, whi = (-128, 127) if w_signed else (0, 255)
    x = RNG.integers(xlo, xhi + 1, x_shape).astype(np_dtype(x_signed))
    w = RNG.integers(wlo, whi + 1, w_shape).astype(np_dtype(w_signed))
    x_scale = np.float32(RNG.uniform(0.005, 0.05))
    x_zp = np.array(RNG.integers(xlo, xhi + 1), dtype=np_dtype(x_signed))
    w_scale = (RNG.uniform(0.002, 0.02, m) if per_channel
               else np.array(RNG.uniform(0.002, 0.02))).astype(np.float32)
    if w_zp_kind == "zero":
        w_zp = np.array(0 if w_signed else 128, dtype=np_dtype(w_signed))
    elif w_zp_kind == "tensor":
        w_zp = np.array(RNG.integers(wlo, whi + 1), dtype=np_dtype(w_signed))
    else:
        w_zp = RNG.integers(wlo, whi + 1, m).astype(np_dtype(w_signed))
    ylo, yhi = (-128, 127) if y_signed else (0, 255)
    y_zp = np.array(RNG.integers(ylo + 40, yhi - 40), dtype=np_dtype(y_signed))
    cg_k = w_shape[1] * w_shape[2] * w_shape[3]
    # Output scale so that results spread over the 8-bit range.
    y_scale = np.float32(x_scale * float(np.mean(w_scale)) * 60.0 * math.sqrt(cg_k))
    bias = RNG.integers(-3000, 3000, m).astype(np.int32) if with_bias else None
    strides, dil, pads = geometry(attrs, x_shape, w_shape)
    acc = conv_acc(x.astype(np.int64), w, int(x_zp), np.broadcast_to(w_zp.astype(np.int64), (m,)),
                   bias, group, strides, dil, pads)
    lo, hi = ylo, yhi
    if act is not None:
        if act["whittle.act"] == "Relu":
            lo = int(y_zp)
        else:
            q = lambda v: int(min(max(np.rint(np.float32(v) / y_scale) + int(y_zp), ylo), yhi))
            lo, hi = q(act["whittle.act.min"]), q(act["whittle.act.max"])
    ws = np.broadcast_to(w_scale, (m,))
    fixed = np.zeros_like(acc)
    for co in range(m):
        mult, shift = quantize_multiplier(float(x_scale) * float(ws[co]) / float(y_scale))
        f = np.vectorize(lambda a: requant(int(a), mult, shift))
        fixed[:, co] = np.clip(f(acc[:, co]) + int(y_zp), lo, hi)
    inputs = [x, np.array(x_scale, dtype=np.float32), x_zp, w, w_scale, w_zp,
              np.array(y_scale, dtype=np.float32), y_zp, bias]
    if bias is None:
        inputs = inputs[:8]
    ort_out = run_ort("QLinearConv", attrs, inputs,
                      TensorProto.INT8 if y_signed else TensorProto.UINT8, acc.shape)
    if ort_out is not None:
        ort_out = np.clip(ort_out.astype(np.int64), lo, hi)
    case(name, "QLinearConv", attrs, inputs, acc.shape, "I8" if y_signed else "U8",
         fixed, ort_out, act)


def conv_integer(name, x_shape, w_shape, attrs, x_signed, w_signed, per_channel_zp=False):
    group = attrs.get("group", 1)
    m = w_shape[0]
    xlo, xhi = (-128, 127) if x_signed else (0, 255)
    wlo, whi = (-128, 127) if w_signed else (0, 255)
    x = RNG.integers(xlo, xhi + 1, x_shape).astype(np_dtype(x_signed))
    w = RNG.integers(wlo, whi + 1, w_shape).astype(np_dtype(w_signed))
    x_zp = np.array(RNG.integers(xlo, xhi + 1), dtype=np_dtype(x_signed))
    w_zp = (RNG.integers(wlo, whi + 1, m) if per_channel_zp
            else np.array(RNG.integers(wlo, whi + 1))).astype(np_dtype(w_signed))
    strides, dil, pads = geometry(attrs, x_shape, w_shape)
    acc = conv_acc(x.astype(np.int64), w, int(x_zp), np.broadcast_to(w_zp.astype(np.int64), (m,)),
                   None, group, strides, dil, pads)
    inputs = [x, w, x_zp, w_zp]
    ort_out = run_ort("ConvInteger", attrs, inputs, TensorProto.INT32, acc.shape)
    case(name, "ConvInteger", attrs, inputs, acc.shape, "I32", acc, ort_out)


def main():
    print("// Generated by qlinear_conv_cases_gen.py; do not edit.")
    print("use super::tests::{QCase, In, Dt, A};")
    print()
    print("pub(crate) const CASES: &[QCase] = &[")
    p1 = {"pads": [1, 1, 1, 1]}
    for xs in (False, True):
        t = "i8" if xs else "u8"
        qlinear(f"dw3x3_s1_{t}", [1, 8, 9, 10], [8, 1, 3, 3], {"group": 8, **p1}, xs, True, xs)
        qlinear(f"dw3x3_s2_{t}", [2, 6, 11, 9], [6, 1, 3, 3],
                {"group": 6, "strides": [2, 2], **p1}, xs, True, xs)
        qlinear(f"dw5x5_s1_{t}", [1, 4, 12, 17], [4, 1, 5, 5],
                {"group": 4, "pads": [2, 2, 2, 2]}, xs, True, xs)
        qlinear(f"dw5x5_s2_{t}", [1, 4, 13, 12], [4, 1, 5, 5],
                {"group": 4, "strides": [2, 2], "pads": [1, 2, 2, 1]}, xs, True, xs)
        qlinear(f"conv3x3_{t}", [1, 5, 8, 7], [6, 5, 3, 3], p1, xs, True, xs)
        qlinear(f"conv3x3_s2_{t}", [2, 4, 9, 9], [7, 4, 3, 3], {"strides": [2, 2], **p1}, xs, True, xs)
        qlinear(f"conv1x1_{t}", [1, 16, 5, 6], [24, 16, 1, 1], {}, xs, True, xs)
        qlinear(f"grouped_{t}", [1, 6, 7, 7], [9, 2, 3, 3], {"group": 3, **p1}, xs, True, xs)
        qlinear(f"dilated_{t}", [1, 3, 10, 10], [4, 3, 3, 3],
                {"dilations": [2, 2], "pads": [2, 2, 2, 2]}, xs, True, xs)
        qlinear(f"same_upper_{t}", [1, 3, 8, 9], [5, 3, 4, 4],
                {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, xs, True, xs)
    # uint8 weights with zero points (ORT QOperator models), per tensor and
    # per channel; per-tensor scales; no bias; mixed output type.
    qlinear("u8w_tensor_zp", [1, 4, 7, 8], [6, 4, 3, 3], p1, False, False, False,
            w_zp_kind="tensor")
    qlinear("u8w_channel_zp", [1, 4, 7, 8], [6, 4, 3, 3], p1, False, False, False,
            w_zp_kind="channel")
    qlinear("dw_u8w_channel_zp", [1, 5, 9, 9], [5, 1, 3, 3], {"group": 5, **p1}, False, False,
            False, w_zp_kind="channel")
    qlinear("per_tensor_no_bias", [1, 3, 6, 6], [4, 3, 3, 3], p1, False, True, False,
            per_channel=False, with_bias=False)
    qlinear("i8_in_u8_out", [1, 3, 6, 6], [4, 3, 3, 3], p1, True, True, False)
    qlinear("dw_multiplier2", [1, 3, 8, 8], [6, 1, 3, 3], {"group": 3, **p1}, True, True, True)
    qlinear("conv1d", [2, 3, 15, 1], [4, 3, 3, 1], {"pads": [1, 0, 1, 0]}, False, True, False)
    # Fused activations (whittle.act), folded into the clamp.
    qlinear("relu_dw", [1, 4, 8, 8], [4, 1, 3, 3], {"group": 4, **p1}, True, True, True,
            act={"whittle.act": "Relu"})
    qlinear("clip_conv", [1, 4, 8, 8], [8, 4, 3, 3], p1, False, True, False,
            act={"whittle.act": "Clip", "whittle.act.min": 0.0, "whittle.act.max": 6.0})
    qlinear("clip_dw_i8", [1, 4, 8, 8], [4, 1, 3, 3], {"group": 4, **p1}, True, True, True,
            act={"whittle.act": "Clip", "whittle.act.min": -0.5, "whittle.act.max": 0.8})
    conv_integer("ci_u8_u8", [1, 3, 7, 7], [4, 3, 3, 3], p1, False, False)
    conv_integer("ci_u8_i8_channel_zp", [2, 4, 6, 6], [6, 2, 3, 3], {"group": 2}, False, True,
                 per_channel_zp=True)
    conv_integer("ci_i8_dw", [1, 4, 6, 6], [4, 1, 3, 3], {"group": 4, "strides": [2, 2], **p1},
                 True, True)
    print("];")


main()
