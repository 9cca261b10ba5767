use whittle_ir::{Attr, DType, Tensor};
use whittle_kernels::requant::Requant;

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::ops::testing::test_support::{hx, node, tf};
use crate::{Fact, Parallel, Registry, View, ViewMut};

#[path = "qlinear_matmul_cases.rs"]
#[rustfmt::skip]
#[allow(clippy::approx_constant, clippy::excessive_precision, clippy::unreadable_literal)]
mod cases;

/// One onnxruntime-generated case.
pub(crate) struct QCase {
    pub name: &'static str,
    pub op: &'static str,
    pub domain: &'static str,
    pub opset: i64,
    pub attrs: Vec<(&'static str, Attr)>,
    pub inputs: Vec<Option<Tensor>>,
    pub output: Tensor,
}

fn b_index(op: &str) -> usize {
    if op == "MatMulInteger" {
        1
    } else {
        3
    }
}

/// Builds the case's node with B constant or not, runs it on `threads`
/// threads, and returns the output and the kernel name.
fn run(c: &QCase, const_b: bool, threads: usize) -> (Tensor, String) {
    let mut n = node(c.op, &c.inputs, 1, &c.attrs);
    n.domain = c.domain.to_string();
    let bi = b_index(c.op);
    let ctx = BuildCtx {
        node: &n,
        inputs: c
            .inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: if i == bi && !const_b { None } else { Some(t) },
                })
            })
            .collect(),
        opset: c.opset,
    };
    let build = Registry::standard()
        .get(c.domain, c.op)
        .expect("registered");
    let Built::Kernel { outputs, kernel } =
        build(&ctx).unwrap_or_else(|e| panic!("{}: {e}", c.name))
    else {
        panic!("{}: not a kernel", c.name)
    };
    let views: Vec<View<'_>> = c
        .inputs
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) if !kernel.absorbed_inputs().contains(&i) => View::of(t),
            Some(t) => View::new(t.dtype(), &[]),
            None => View::new(DType::F32, &[]),
        })
        .collect();
    let mut out = Tensor::zeros(outputs[0].dtype, outputs[0].shape.clone()).unwrap();
    let mut scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8).max(1)];
    let par = Parallel::new(threads).unwrap();
    let mut rc = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    kernel
        .run(&views, &mut [ViewMut::of(&mut out)], &mut rc)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name));
    (out, kernel.name())
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().unwrap()
}

#[test]
fn onnxruntime_cases_within_one() {
    for c in cases::cases() {
        let (got, name) = run(&c, true, 1);
        // A bias that varies along rows takes the reference loop.
        let full_c = c.op == "QGemm"
            && c.inputs[6]
                .as_ref()
                .is_some_and(|t| t.rank() == 2 && t.shape()[0] > 1);
        let path = if full_c { ".reference" } else { ".qgemm." };
        assert!(name.contains(path), "{}: {name}", c.name);
        assert_eq!(got.shape(), c.output.shape(), "{}", c.name);
        assert_eq!(got.dtype(), c.output.dtype(), "{}", c.name);
        if got.dtype() == DType::F32 {
            for (g, w) in got.to_f64_vec().iter().zip(c.output.to_f64_vec()) {
                assert!(
                    (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                    "{}: {g} vs {w}",
                    c.name
                );
            }
            continue;
        }
        let tol = if c.op == "MatMulInteger" { 0 } else { 1 };
        for (i, (g, w)) in ints(&got).iter().zip(ints(&c.output)).enumerate() {
            assert!((g - w).abs() <= tol, "{} element {i}: {g} vs {w}", c.name);
        }
    }
}

#[test]
fn fast_path_matches_reference_path_and_threads() {
    for c in cases::cases() {
        let (fast, _) = run(&c, true, 1);
        let (slow, name) = run(&c, false, 1);
        assert!(name.contains(".reference"), "{}: {name}", c.name);
        assert_eq!(fast.as_bytes(), slow.as_bytes(), "{}", c.name);
        let (two, _) = run(&c, true, 2);
        assert_eq!(fast.as_bytes(), two.as_bytes(), "{} (2 threads)", c.name);
    }
}

/// The QLinearMatMul cases against a naive int64 accumulation and the
/// documented fixed-point requantization.
#[test]
fn qlinear_matmul_matches_fixed_point_formula() {
    for c in cases::cases()
        .into_iter()
        .filter(|c| c.op == "QLinearMatMul")
    {
        let inp = |i: usize| c.inputs[i].as_ref().unwrap();
        let (a, b) = (inp(0), inp(3));
        let (av, bv) = (ints(a), ints(b));
        let (a_scale, a_zp) = (inp(1).to_f64_vec()[0], ints(inp(2))[0]);
        let (b_scale, b_zp) = (inp(4).to_f64_vec(), ints(inp(5)));
        let (y_scale, y_zp) = (inp(6).to_f64_vec()[0], ints(inp(7))[0]);
        let (k, n) = (a.shape()[a.rank() - 1], b.shape()[b.rank() - 1]);
        let m = a.shape()[a.rank() - 2];
        // Batch broadcasting: these cases have B rank 2, or A's batch [2,1]
        // against B's [3].
        let ab: usize = a.shape()[..a.rank() - 2].iter().product();
        let bb: usize = b.shape()[..b.rank() - 2].iter().product();
        let (lo, hi) = if c.output.dtype() == DType::U8 {
            (0, 255)
        } else {
            (-128, 127)
        };
        let got = ints(&run(&c, true, 1).0);
        let nb = got.len() / (m * n);
        for batch in 0..nb {
            let (ia, ib) = if bb == 1 {
                (batch, 0)
            } else {
                (batch / bb % ab, batch % bb)
            };
            for i in 0..m {
                for j in 0..n {
                    let pick = |v: &[i64]| v[if v.len() == 1 { 0 } else { j }];
                    let acc: i64 = (0..k)
                        .map(|kk| {
                            (av[ia * m * k + i * k + kk] - a_zp)
                                * (bv[ib * k * n + kk * n + j] - pick(&b_zp))
                        })
                        .sum();
                    let bs = b_scale[if b_scale.len() == 1 { 0 } else { j }];
                    let real = a_scale as f32 as f64 * bs as f32 as f64 / y_scale as f32 as f64;
                    let rq = Requant::from_real(real).unwrap();
                    let want = (rq.apply(acc as i32) as i64 + y_zp).clamp(lo, hi);
                    assert_eq!(
                        got[(batch * m + i) * n + j],
                        want,
                        "{} {batch} {i} {j}",
                        c.name
                    );
                }
            }
        }
    }
}

#[test]
fn fused_activations_and_errors() {
    // QLinearMatMul + Relu: outputs never below the zero point.
    let a = hx(DType::U8, &[2, 3], "0a14ff00807f");
    let b = hx(DType::I8, &[3, 2], "7f80017ff001");
    let base = |act: Option<&str>| {
        let mut attrs = vec![];
        if let Some(act) = act {
            attrs.push(("whittle.act", Attr::String(act.to_string())));
            attrs.push(("whittle.act.min", Attr::Float(0.0)));
            attrs.push(("whittle.act.max", Attr::Float(0.5)));
        }
        let inputs = vec![
            Some(a.clone()),
            Some(tf(&[], &[0.05])),
            Some(hx(DType::U8, &[], "80")),
            Some(b.clone()),
            Some(tf(&[], &[0.01])),
            Some(hx(DType::I8, &[], "00")),
            Some(tf(&[], &[0.02])),
            Some(hx(DType::U8, &[], "64")),
        ];
        crate::ops::testing::test_support::eval("QLinearMatMul", 10, &inputs, 1, &attrs)
    };
    let plain = ints(&base(None).unwrap()[0]);
    let relu = ints(&base(Some("Relu")).unwrap()[0]);
    let clip = ints(&base(Some("Clip")).unwrap()[0]);
    for ((p, r), c) in plain.iter().zip(&relu).zip(&clip) {
        assert_eq!(*r, (*p).max(100));
        // Clip(0, 0.5) at scale 0.02, zp 100: 100..=125.
        assert_eq!(*c, (*p).clamp(100, 125));
    }
    assert!(plain.iter().any(|&p| p < 100) && plain.iter().any(|&p| p > 125));
    let err = base(Some("Sigmoid")).unwrap_err().to_string();
    assert!(err.contains("only Relu and Clip"), "{err}");
    // Bad scales and zero-point shapes are build errors naming the input.
    let bad = crate::ops::testing::test_support::build_err(
        "QLinearMatMul",
        10,
        &[
            Some(a.clone()),
            Some(tf(&[], &[-1.0])),
            Some(hx(DType::U8, &[], "80")),
            Some(b.clone()),
            Some(tf(&[], &[0.01])),
            Some(hx(DType::I8, &[], "00")),
            Some(tf(&[], &[0.02])),
            Some(hx(DType::U8, &[], "64")),
        ],
        &[],
    );
    assert!(bad.contains("a_scale"), "{bad}");
    let bad = crate::ops::testing::test_support::build_err(
        "MatMulInteger",
        10,
        &[Some(a), Some(b), None, Some(hx(DType::I8, &[3], "000000"))],
        &[],
    );
    assert!(bad.contains("b_zero_point"), "{bad}");
}
