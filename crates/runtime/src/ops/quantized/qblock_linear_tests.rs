use whittle_ir::{Attr, DType, Tensor};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::ops::testing::test_support::{hx, node, tf};
use crate::{Fact, Parallel, Registry, View, ViewMut};

#[path = "qblock_linear_cases.rs"]
#[rustfmt::skip]
#[allow(clippy::approx_constant, clippy::excessive_precision, clippy::unreadable_literal)]
mod cases;

/// One onnxruntime-generated case (the QDQ graph's output).
pub(crate) struct QbCase {
    pub name: &'static str,
    pub attrs: Vec<(&'static str, Attr)>,
    pub inputs: Vec<Option<Tensor>>,
    pub output: Tensor,
}

fn build(inputs: &[Option<Tensor>], attrs: &[(&str, Attr)]) -> Result<Built, crate::OpError> {
    let mut n = node("QBlockLinear", inputs, 1, attrs);
    n.domain = "whittle".to_string();
    let ctx = BuildCtx {
        node: &n,
        inputs: inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: if i == 0 { None } else { Some(t) },
                })
            })
            .collect(),
        opset: 1,
    };
    let build = Registry::standard()
        .get("whittle", "QBlockLinear")
        .expect("registered");
    build(&ctx)
}

/// Builds and runs on `threads` threads: output, kernel name, weight bytes.
fn run(c: &QbCase, threads: usize) -> (Tensor, String, usize) {
    let Built::Kernel { outputs, kernel } =
        build(&c.inputs, &c.attrs).unwrap_or_else(|e| panic!("{}: {e}", c.name))
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
    (out, kernel.name(), kernel.weight_bytes())
}

#[test]
fn onnxruntime_qdq_cases_within_one_and_threads_bit_exact() {
    for c in cases::cases() {
        let (got, name, wbytes) = run(&c, 1);
        assert!(
            name.starts_with("qblock_linear.int4."),
            "{}: {name}",
            c.name
        );
        assert_eq!(got.shape(), c.output.shape(), "{}", c.name);
        assert_eq!(got.dtype(), c.output.dtype(), "{}", c.name);
        let (g, w) = (got.to_i64_vec().unwrap(), c.output.to_i64_vec().unwrap());
        let mut off = 0;
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert!((a - b).abs() <= 1, "{} element {i}: {a} vs {b}", c.name);
            off += usize::from(a != b);
        }
        assert!(
            off * 20 <= g.len(),
            "{}: {off} of {} off by one",
            c.name,
            g.len()
        );
        // Half a byte per weight, 4 per block scale and per bias value.
        let w_numel = c.inputs[3].as_ref().unwrap().numel();
        let s_numel = c.inputs[4].as_ref().unwrap().numel();
        let b_numel = c.inputs.get(7).map_or(0, |b| b.as_ref().unwrap().numel());
        let want = w_numel.div_ceil(2) + 4 * (s_numel + b_numel);
        assert_eq!(wbytes, want, "{}: weight bytes", c.name);
        let (two, _, _) = run(&c, 2);
        assert_eq!(got.as_bytes(), two.as_bytes(), "{} (2 threads)", c.name);
    }
}

fn base_inputs(k: usize, n: usize, w_val: i8) -> Vec<Option<Tensor>> {
    vec![
        Some(hx(DType::U8, &[2, k], &"05".repeat(2 * k))),
        Some(tf(&[], &[0.1])),
        Some(hx(DType::U8, &[], "00")),
        Some(hx(
            DType::I8,
            &[k, n],
            &format!("{:02x}", w_val as u8).repeat(k * n),
        )),
        Some(tf(&[k.div_ceil(16), n], &vec![0.5; k.div_ceil(16) * n])),
        Some(tf(&[], &[0.25])),
        Some(hx(DType::U8, &[], "0a")),
    ]
}

fn err(inputs: &[Option<Tensor>], attrs: &[(&str, Attr)]) -> String {
    match build(inputs, attrs) {
        Ok(b) => panic!("unexpectedly built: {b:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn small_case_by_hand() {
    // x = 5 (zp 0, scale 0.1), w = -3, scale 0.5, K = 20 (blocks 16 + 4):
    // y = 20 * 0.5 * -1.5 = -15 -> -15 / 0.25 + 10 = -50 -> clamps to 0.
    // With w = 1: 20 * 0.5 * 0.5 = 5 -> 20 + 10 = 30.
    let bs = [("block_size", Attr::Int(16))];
    for (w, want) in [(-3i8, 0u8), (1, 30)] {
        let c = QbCase {
            name: "hand",
            attrs: bs.to_vec(),
            inputs: base_inputs(20, 3, w),
            output: hx(DType::U8, &[2, 3], &format!("{want:02x}").repeat(6)),
        };
        let (got, _, _) = run(&c, 1);
        assert_eq!(got.as_bytes(), c.output.as_bytes(), "w = {w}");
    }
}

#[test]
fn bad_attributes_and_inputs_are_errors() {
    let ok = base_inputs(32, 4, 1);
    let bs = ("block_size", Attr::Int(16));
    assert!(err(&ok, &[]).contains("block_size is required"));
    assert!(err(&ok, &[("block_size", Attr::Int(8))]).contains(">= 16"));
    assert!(err(&ok, &[bs.clone(), ("layout", Attr::String("nhwc".into()))]).contains("layout"));
    let mut bad_w = ok.clone();
    bad_w[3] = base_inputs(32, 4, 9)[3].clone();
    assert!(err(&bad_w, std::slice::from_ref(&bs)).contains("int4 range"));
    let mut bad_s = ok.clone();
    bad_s[4] = Some(tf(&[1, 4], &[0.5; 4]));
    assert!(err(&bad_s, std::slice::from_ref(&bs)).contains("w_scale has shape"));
    let leaky = [
        bs.clone(),
        ("whittle.act", Attr::String("LeakyRelu".into())),
    ];
    assert!(err(&ok, &leaky).contains("only Relu and Clip"));
    let conv = [bs.clone(), ("layout", Attr::String("conv1x1".into()))];
    assert!(err(&ok, &conv).contains("conv1x1 layout needs"));
    let mut bad_zp = ok.clone();
    bad_zp[6] = Some(hx(DType::I8, &[], "00"));
    assert!(err(&bad_zp, &[bs]).contains("y_zero_point"));
}
