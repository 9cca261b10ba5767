"""Rust literal emitters shared by the op-test generators."""
import numpy as np
from onnx import TensorProto

DT = {
    np.float32: (TensorProto.FLOAT, "F32"), np.float64: (TensorProto.DOUBLE, "F64"),
    np.float16: (TensorProto.FLOAT16, "F16"), np.int64: (TensorProto.INT64, "I64"),
    np.int32: (TensorProto.INT32, "I32"), np.uint8: (TensorProto.UINT8, "U8"),
    np.bool_: (TensorProto.BOOL, "Bool"),
}


FN = {"F32": "tf", "F64": "td", "F16": "th", "I64": "tl", "I32": "ti", "U8": "tu8", "Bool": "tb"}


def rust_val(v, kind):
    if kind in ("F32", "F64"):
        f = float(v)
        ty = kind.lower()
        if np.isnan(f):
            return f"{ty}::NAN"
        if np.isinf(f):
            return f"{ty}::INFINITY" if f > 0 else f"{ty}::NEG_INFINITY"
        r = repr(f)
        return r if ("." in r or "e" in r) else r + ".0"
    if kind == "F16":
        return str(int(np.array(v, np.float16).view(np.uint16)))
    if kind == "Bool":
        return "1" if v else "0"
    return str(int(v))


def rust_tensor(a):
    a = np.asarray(a)
    kind = DT[a.dtype.type][1]
    if a.size > 64:
        # Large tensors as little-endian hex: a third of the decimal size.
        hexs = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes().hex()
        return f'hx(DType::{kind}, &[{", ".join(map(str, a.shape))}], "{hexs}")'
    vals = ", ".join(rust_val(v, kind) for v in a.ravel())
    return f"{FN[kind]}(&[{', '.join(map(str, a.shape))}], &[{vals}])"


def rust_attr(k, v):
    if isinstance(v, str):
        return f'("{k}", Attr::String("{v}".into()))'
    if isinstance(v, float):
        return f'("{k}", Attr::Float({v!r}))'
    if isinstance(v, int):
        return f'("{k}", Attr::Int({v}))'
    return f'("{k}", Attr::Ints(vec!{list(v)!r}))'
