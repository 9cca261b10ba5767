#!/usr/bin/env python3
"""Generates the case tables of the data-movement and misc ops (TopK,
DepthToSpace, SpaceToDepth, CumSum, GatherND, ScatterND, ScatterElements,
Scatter, OneHot, Trilu, EyeLike, LRN, MeanVarianceNormalization, Shrink,
ReverseSequence, MaxUnpool, Einsum, Compress, NonZero).

Expected outputs come from onnxruntime (default), the ONNX reference
evaluator (`ref="onnx"`) or the conformance data, through the helpers of
gen_cases.py; see there. Tables with bool tensors, which the Case format
cannot hold, are written as RefCase literals (scripts/rust_literals.py).

Usage: python3 scripts/testgen/gen_data_ops_cases.py   (rewrites the *_cases.rs
listed below, next to their ops under crates/runtime/src/ops, and
shape/data_ops_refs.rs)
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))

import gen_cases  # noqa: E402
from gen_cases import CONFORMANCE, Table, rand, run_model  # noqa: E402
from rust_literals import rust_attr, rust_tensor  # noqa: E402

rng = np.random.default_rng(11)
i64 = lambda *v: np.array(v, dtype=np.int64)
i32 = lambda *v: np.array(v, dtype=np.int32)
f32 = lambda *v: np.array(v, dtype=np.float32)


def reseed(seed):
    """Fresh generators per table, so each table regenerates identically
    whether the script runs whole or for one table."""
    global rng
    rng = np.random.default_rng(seed)
    gen_cases.rng = np.random.default_rng(seed + 1000)


def ints(lo, hi, *shape, dtype=np.int64):
    return rng.integers(lo, hi, size=shape).astype(dtype)


# Conformance cases with dtypes the Case format lacks (f64, bool): the
# conformance harness runs them.
SKIP = {"test_eyelike_with_dtype"}


def conformance(t, *prefixes):
    for c in sorted(os.listdir(CONFORMANCE)):
        if c.startswith(prefixes) and not c.endswith("_expanded") and c not in SKIP:
            try:
                t.conformance(c)
            except KeyError:
                print(f"skip {c}: dtype the Case format lacks", file=sys.stderr)


def topk():
    reseed(1)
    t = Table("shape/topk_cases.rs")
    x = rand(3, 4, 5)
    # A coarse grid makes ties: equal values must come in index order.
    ties = (np.round(rng.uniform(-2, 2, size=(4, 9))) / 2).astype(np.float32)
    t.add("topk1_attr", "TopK", 1, dict(k=2), [x], (True, True))
    t.add("topk10_axis1", "TopK", 10, dict(axis=1), [x, i64(3)], (True, True))
    for largest in (0, 1):
        t.add(f"topk11_largest{largest}", "TopK", 11, dict(largest=largest), [x, i64(4)], (True, True))
        t.add(f"topk11_ties_largest{largest}", "TopK", 11, dict(largest=largest), [ties, i64(6)],
              (True, True), ref="onnx")
        t.add(f"topk11_ties_axis0_largest{largest}", "TopK", 11, dict(axis=0, largest=largest),
              [ties, i64(3)], (True, True), ref="onnx")
    t.add("topk11_neg_axis", "TopK", 11, dict(axis=-3), [x, i64(2)], (True, True))
    t.add("topk11_k_all", "TopK", 11, dict(axis=2), [x, i64(5)], (True, True))
    t.add("topk11_k0", "TopK", 11, {}, [x, i64(0)], (True, True), ref="onnx")
    t.add("topk11_i64", "TopK", 11, dict(largest=0), [ints(-5, 5, 2, 7), i64(3)], (True, True),
          ref="onnx")
    t.add("topk11_i32", "TopK", 11, {}, [ints(-5, 5, 2, 7, dtype=np.int32), i64(3)], (True, True),
          ref="onnx")
    conformance(t, "test_top_k")
    t.write()


def depth_space():
    reseed(2)
    t = Table("shape/depth_to_space_cases.rs")
    x = rand(2, 8, 3, 2)
    for mode in ("DCR", "CRD"):
        t.add(f"d2s_{mode}_b2", "DepthToSpace", 13, dict(blocksize=2, mode=mode), [x])
    t.add("d2s_default_mode_v11", "DepthToSpace", 11, dict(blocksize=2), [x])
    t.add("d2s_b1", "DepthToSpace", 13, dict(blocksize=1), [x])
    t.add("d2s_i64_crd", "DepthToSpace", 13, dict(blocksize=2, mode="CRD"), [ints(0, 99, 1, 4, 2, 3)],
          ref="onnx")
    t.add("d2s_b3", "DepthToSpace", 13, dict(blocksize=3), [rand(1, 18, 2, 2)])
    t.add("s2d_b2", "SpaceToDepth", 13, dict(blocksize=2), [rand(2, 3, 4, 6)])
    t.add("s2d_b3", "SpaceToDepth", 1, dict(blocksize=3), [rand(1, 2, 3, 6)])
    t.add("s2d_i32", "SpaceToDepth", 13, dict(blocksize=2), [ints(0, 99, 1, 2, 2, 4, dtype=np.int32)],
          ref="onnx")
    conformance(t, "test_depthtospace", "test_spacetodepth")
    t.write()


def cumsum():
    reseed(3)
    t = Table("reduce/cumsum_cases.rs")
    x = rand(3, 4, 2)
    for ex in (0, 1):
        for rev in (0, 1):
            for ax in (0, 1, -1):
                t.add(f"cumsum_ax{ax}_ex{ex}_rev{rev}", "CumSum", 14, dict(exclusive=ex, reverse=rev),
                      [x, i64(ax)])
    t.add("cumsum_i32_axis", "CumSum", 11, {}, [x, i32(1)])
    t.add("cumsum_i64_data", "CumSum", 14, dict(reverse=1), [ints(-9, 9, 4, 3), i64(0)])
    t.add("cumsum_i32_data", "CumSum", 14, dict(exclusive=1), [ints(-9, 9, 4, 3, dtype=np.int32),
                                                              np.array(1, dtype=np.int64)])
    conformance(t, "test_cumsum")
    t.write()


def gather_nd():
    reseed(4)
    t = Table("shape/gather_nd_cases.rs")
    x = rand(2, 3, 4)
    t.add("gathernd_full", "GatherND", 13, {}, [x, i64(0, 2, 3, 1, -1, 0).reshape(2, 3)])
    t.add("gathernd_rows", "GatherND", 13, {}, [x, i64(1, 0, 1).reshape(3, 1)])
    t.add("gathernd_pairs", "GatherND", 11, {}, [x, i64(1, 2, 0, -3, 1, 1, 0, 0).reshape(2, 2, 2)])
    t.add("gathernd_batch1", "GatherND", 12, dict(batch_dims=1),
          [x, i64(2, 1, 0, -3, 1, 0).reshape(2, 3, 1)])
    t.add("gathernd_batch1_pairs", "GatherND", 13, dict(batch_dims=1),
          [x, i64(2, 1, 0, 3, 1, 0, 2, -1).reshape(2, 2, 2)])
    t.add("gathernd_batch2", "GatherND", 13, dict(batch_dims=2),
          [x, ints(0, 4, 2, 3, 1)])
    t.add("gathernd_i64_data", "GatherND", 13, {}, [ints(0, 99, 3, 3), i64(2, 0, 0, 1).reshape(2, 2)])
    conformance(t, "test_gathernd")
    t.write()


def scatter():
    reseed(5)
    t = Table("shape/scatter_cases.rs")
    x = rand(4, 3, 2)
    idx = i64(1, 3, 1, -4).reshape(4, 1)
    upd = rand(4, 3, 2)
    for red in ("none", "add", "mul", "max", "min"):
        attrs = {} if red == "none" else dict(reduction=red)
        # Duplicate indices: with reductions every update combines in.
        ref = "onnx" if red in ("max", "min") else "ort"
        t.add(f"scatternd_{red}_dup", "ScatterND", 18, attrs,
              [x, idx if red != "none" else i64(1, 3, 0, -2).reshape(4, 1), upd], ref=ref)
    t.add("scatternd_elems", "ScatterND", 13, {}, [x, i64(0, 1, 1, 3, 2, 0).reshape(2, 3), rand(2)])
    t.add("scatternd_rows", "ScatterND", 11, {}, [x, i64(0, 2, 1, 1).reshape(2, 2), rand(2, 2)])
    t.add("scatternd_i64", "ScatterND", 16, dict(reduction="add"),
          [ints(0, 9, 5), i64(4, 0, 4).reshape(3, 1), ints(0, 9, 3)])
    d = rand(3, 4)
    ei = i64(0, 2, 1, -1, 2, 0, 1, 1, 0).reshape(3, 3)
    eu = rand(3, 3)
    for red in ("none", "add", "mul", "max", "min"):
        attrs = {} if red == "none" else dict(reduction=red)
        for axis in (0, 1, -1):
            t.add(f"scatterel_{red}_axis{axis}", "ScatterElements", 18, dict(attrs, axis=axis),
                  [d, ei, eu], ref="onnx")
    t.add("scatterel_v11_small_idx", "ScatterElements", 11, dict(axis=1),
          [d, i64(3, 0, 1, 2).reshape(2, 2), rand(2, 2)])
    t.add("scatterel_3d", "ScatterElements", 13, dict(axis=1),
          [rand(2, 3, 2), ints(-3, 3, 2, 4, 2), rand(2, 4, 2)])
    t.add("scatterel_i32", "ScatterElements", 16, dict(axis=0, reduction="add"),
          [ints(0, 9, 3, 2, dtype=np.int32), i64(2, 2, 2, 0).reshape(2, 2), ints(0, 9, 2, 2, dtype=np.int32)])
    t.add("scatter9", "Scatter", 9, dict(axis=1), [d, i64(3, 0, 1, 2).reshape(2, 2), rand(2, 2)])
    conformance(t, "test_scatter")
    t.write()


def onehot():
    reseed(6)
    t = Table("shape/onehot_cases.rs")
    idx = i64(0, 3, -1, 5, -6, 2).reshape(2, 3)
    vals = f32(-1.5, 2.0)
    for axis in (-1, 0, 1, 2, -3):
        t.add(f"onehot_axis{axis}", "OneHot", 11, dict(axis=axis), [idx, i64(5), vals])
    t.add("onehot_v9_float_idx", "OneHot", 9, {}, [f32(0.0, 1.7, 2.2, -0.5), f32(3.0), vals])
    t.add("onehot_i32_depth_i64_vals", "OneHot", 11, {}, [ints(-4, 4, 5, dtype=np.int32),
                                                        np.array(4, dtype=np.int32), i64(0, 7)], ref="onnx")
    conformance(t, "test_onehot")
    t.write()


def trilu_eye():
    reseed(7)
    t = Table("shape/trilu_cases.rs")
    x = rand(2, 4, 5)
    for upper in (0, 1):
        t.add(f"trilu_u{upper}_nok", "Trilu", 14, dict(upper=upper), [x])
        for k in (-5, -2, 0, 1, 3, 7):
            t.add(f"trilu_u{upper}_k{k}", "Trilu", 14, dict(upper=upper), [x, i64(k)])
    t.add("trilu_i64_tall", "Trilu", 14, dict(upper=0), [ints(1, 9, 5, 2), i64(-1)])
    t.add("trilu_batched4d", "Trilu", 14, {}, [rand(2, 1, 3, 3), i64(1)])
    for k in (-2, 0, 3):
        t.add(f"eyelike_k{k}", "EyeLike", 9, dict(k=k), [rand(3, 4)])
    t.add("eyelike_i64_to_f32", "EyeLike", 9, dict(dtype=1), [ints(0, 3, 4, 2)])
    t.add("eyelike_f32_to_i32", "EyeLike", 9, dict(dtype=6, k=1), [rand(2, 3)], ref="onnx")
    conformance(t, "test_tril", "test_triu", "test_eyelike")
    t.write()


def norm_misc():
    reseed(8)
    t = Table("nn/lrn_cases.rs")
    x = rand(2, 6, 3, 2)
    for size in (1, 3, 5, 7):
        t.add(f"lrn_size{size}", "LRN", 13, dict(size=size, alpha=0.5, beta=0.6, bias=1.5), [x])
    # Even sizes: onnxruntime refuses them and onnx.reference loops over the
    # wrong axis, so the expectation is the spec's formula in numpy.
    for size in (2, 8):
        a = dict(size=size, alpha=0.5, beta=0.6, bias=1.5)
        c = x.shape[1]
        sq = np.zeros_like(x, dtype=np.float64)
        for ch in range(c):
            lo, hi = max(0, ch - (size - 1) // 2), min(c, ch + (size - 1) - (size - 1) // 2 + 1)
            sq[:, ch] = (x[:, lo:hi].astype(np.float64) ** 2).sum(axis=1)
        y = (x / (1.5 + 0.5 / size * sq) ** 0.6).astype(np.float32)
        t.cases.append(gen_cases.case_lit(f"lrn_size{size}", "LRN", 13, a, [x], [y], 1e-4))
    t.add("lrn_defaults_v1", "LRN", 1, dict(size=3), [x])
    conformance(t, "test_lrn")
    t.write()

    t = Table("nn/mvn_cases.rs")
    t.add("mvn_default", "MeanVarianceNormalization", 13, {}, [x])
    t.add("mvn_axes_last", "MeanVarianceNormalization", 13, dict(axes=[-1]), [x])
    t.add("mvn_axes_12", "MeanVarianceNormalization", 9, dict(axes=[1, 2]), [x])
    conformance(t, "test_mvn")
    t.write()

    t = Table("elementwise/shrink_cases.rs")
    t.add("shrink_default", "Shrink", 9, {}, [x])
    t.add("shrink_bias", "Shrink", 9, dict(lambd=0.7, bias=0.3), [x])
    t.add("shrink_i32", "Shrink", 9, dict(lambd=1.5, bias=1.0), [ints(-5, 5, 9, dtype=np.int32)],
          ref="onnx")
    t.add("shrink_i8", "Shrink", 9, dict(lambd=1.0, bias=2.0), [ints(-5, 5, 9, dtype=np.int8)],
          ref="onnx")
    conformance(t, "test_shrink")
    t.write()


def seq_unpool():
    reseed(9)
    t = Table("shape/reverse_sequence_cases.rs")
    x = rand(4, 3, 2)
    t.add("revseq_time_major", "ReverseSequence", 10, dict(time_axis=0, batch_axis=1), [x, i64(4, 0, 2)])
    t.add("revseq_batch_major", "ReverseSequence", 10, dict(time_axis=1, batch_axis=0),
          [x, i64(1, 3, 2, 0)])
    t.add("revseq_i64_2d", "ReverseSequence", 10, {}, [ints(0, 9, 3, 2), i64(3, 2)])
    conformance(t, "test_reversesequence")
    t.write()

    t = Table("nn/max_unpool_cases.rs")
    # Indices from a real MaxPool, so the unpool inverts it.
    for name, shape, attrs in [
        ("2d_k2s2", (1, 2, 4, 6), dict(kernel_shape=[2, 2], strides=[2, 2])),
        ("2d_k3s2_pad", (2, 1, 5, 5), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
        ("1d", (1, 3, 8), dict(kernel_shape=[2], strides=[2])),
        ("3d", (1, 1, 4, 4, 4), dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2])),
    ]:
        x = rand(*shape)
        y, idx = run_model("MaxPool", 12, attrs, [x], [True, True], "ort")
        t.add(f"maxunpool_{name}", "MaxUnpool", 11, attrs, [y, idx], ref="onnx")
        if name == "2d_k2s2":
            out = i64(1, 2, 5, 7)
            t.add(f"maxunpool_{name}_outshape", "MaxUnpool", 11, attrs, [y, idx, out], ref="onnx")
    conformance(t, "test_maxunpool")
    t.write()


def einsum():
    reseed(10)
    t = Table("nn/einsum_cases.rs")
    a, b, c = rand(3, 4), rand(4, 5), rand(5, 2)
    ba, bb = rand(2, 3, 4), rand(2, 4, 5)
    sq = rand(4, 4)
    for name, eq, ins in [
        ("matmul", "ij,jk->ik", [a, b]),
        ("matmul_implicit", "ij,jk", [a, b]),
        ("batch_matmul", "bij,bjk->bik", [ba, bb]),
        ("transpose", "ij->ji", [a]),
        ("transpose_implicit", "ba", [a]),
        ("trace", "ii->", [sq]),
        ("diagonal", "ii->i", [sq]),
        ("sum_all", "ij->", [a]),
        ("sum_rows", "ij->i", [a]),
        ("outer", "i,j->ij", [rand(3), rand(4)]),
        ("inner", "i,i", [rand(5), rand(5)]),
        ("chain3", "ij,jk,kl->il", [a, b, c]),
        ("ellipsis_matmul", "...ij,...jk->...ik", [ba, bb]),
        ("ellipsis_broadcast", "...ij,jk->...ik", [ba, b]),
        ("ellipsis_implicit", "...ij,...jk", [ba, bb]),
        ("bilinear", "bn,anm,bm->ba", [rand(2, 3), rand(4, 3, 5), rand(2, 5)]),
        ("spaces", "b i j , b j k -> b k i", [ba, bb]),
        ("upper_case", "Ab,bC->CA", [a, b]),
        ("batch_diag", "...ii->...i", [rand(2, 3, 3)]),
    ]:
        t.add(f"einsum_{name}", "Einsum", 12, dict(equation=eq), ins)
    t.add("einsum_i64", "Einsum", 12, dict(equation="ij,jk->ik"), [ints(-3, 3, 2, 3), ints(-3, 3, 3, 2)])
    conformance(t, "test_einsum")
    t.write()


def grid_sample():
    reseed(11)
    t = Table("nn/grid_sample_cases.rs")
    x = rand(2, 3, 4, 5)
    # Coordinates reach past [-1, 1] so every padding mode matters.
    grid = rand(2, 3, 6, 2, lo=-1.6, hi=1.6)
    for mode in ("bilinear", "nearest", "bicubic"):
        for pad in ("zeros", "border", "reflection"):
            for ac in (0, 1):
                t.add(f"gs16_{mode}_{pad}_ac{ac}", "GridSample", 16,
                      dict(mode=mode, padding_mode=pad, align_corners=ac), [x, grid])
    t.add("gs20_linear_1d", "GridSample", 20, dict(mode="linear", padding_mode="border"),
          [rand(1, 2, 6), rand(1, 5, 1, lo=-1.3, hi=1.3)], ref="onnx")
    t.add("gs20_cubic_3d", "GridSample", 20, dict(mode="cubic", padding_mode="reflection"),
          [rand(1, 2, 3, 4, 3), rand(1, 2, 2, 3, 3, lo=-1.4, hi=1.4)], ref="onnx")
    t.add("gs20_nearest_3d_ac", "GridSample", 20, dict(mode="nearest", align_corners=1),
          [rand(1, 1, 3, 3, 4), rand(1, 2, 3, 2, 3, lo=-1.2, hi=1.2)], ref="onnx")
    conformance(t, "test_gridsample")
    t.write()


def bool_cases():
    """RefCase literals for ops whose inputs are bool (not in the Case format)."""
    reseed(12)
    cases = []

    def add(name, op, opset, attrs, inputs, n_out=1, ref="onnx"):
        outs = run_model(op, opset, attrs, inputs, [True] * n_out, ref)
        a = ", ".join(rust_attr(k, v) for k, v in attrs.items())
        i = ", ".join(f"Some({rust_tensor(x)})" for x in inputs)
        o = ", ".join(rust_tensor(np.asarray(y)) for y in outs)
        cases.append(f'        RefCase {{ name: "{name}", op: "{op}", opset: {opset}, attrs: vec![{a}], '
                     f"inputs: vec![{i}], outputs: vec![{o}] }},\n")

    x = rand(3, 4)
    cond = np.array([True, False, True], dtype=np.bool_)
    add("compress_axis0", "Compress", 11, dict(axis=0), [x, cond])
    add("compress_axis_neg", "Compress", 11, dict(axis=-1), [x, np.array([0, 1, 1, 0], np.bool_)])
    add("compress_flat_short", "Compress", 9, {}, [x, np.array([1, 0, 0, 1, 1], np.bool_)])
    add("compress_none", "Compress", 11, dict(axis=1), [x, np.zeros(4, np.bool_)])
    add("nonzero_f32", "NonZero", 13, {}, [np.array([[0, 1.5, 0], [-2, 0, 3]], np.float32)])
    add("nonzero_bool_3d", "NonZero", 13, {}, [rng.integers(0, 2, (2, 2, 3)).astype(np.bool_)])
    add("nonzero_i64_none", "NonZero", 9, {}, [np.zeros((2, 2), np.int64)])
    add("trilu_bool", "Trilu", 14, {}, [np.ones((3, 4), np.bool_), i64(1)])
    add("gathernd_bool", "GatherND", 13, {}, [np.array([[1, 0], [0, 1]], np.bool_), i64(1, 0).reshape(1, 2)])
    add("scatternd_bool", "ScatterND", 13, {}, [np.zeros((4,), np.bool_), i64(2, 0).reshape(2, 1),
                                                np.ones((2,), np.bool_)])
    add("d2s_bool", "DepthToSpace", 13, dict(blocksize=2), [rng.integers(0, 2, (1, 4, 1, 2)).astype(np.bool_)])
    add("eyelike_bool", "EyeLike", 9, dict(dtype=9), [rand(2, 3)])
    add("onehot_f64_values", "OneHot", 11, {}, [i64(1, 0), np.array(3, dtype=np.int64), np.array([0.5, 7.0])])
    add("revseq_f64", "ReverseSequence", 10, {}, [np.arange(6, dtype=np.float64).reshape(3, 2), i64(2, 3)])
    with open(os.path.join(gen_cases.OPS, "shape/data_ops_refs.rs"), "w") as f:
        f.write("// @generated by gen_data_ops_cases.py; do not edit.\n")
        f.write("#[rustfmt::skip]\nfn bool_cases() -> Vec<RefCase> {\n    vec![\n")
        f.writelines(cases)
        f.write("    ]\n}\n")


if __name__ == "__main__":
    which = sys.argv[1:] or ["topk", "depth_space", "cumsum", "gather_nd", "scatter", "onehot",
                             "trilu_eye", "norm_misc", "seq_unpool", "einsum", "grid_sample",
                             "bool_cases"]
    for w in which:
        globals()[w]()
