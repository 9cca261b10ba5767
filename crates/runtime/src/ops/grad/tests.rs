//! Finite-difference checks of every backward op.
//!
//! For a forward node `y = f(x, ...)` and a random cotangent `R`, the
//! scalar `L = sum(y * R)` (accumulated in f64) has gradient `dL/dx =
//! grad_op(R, ...)`. Each check compares the backward op with central
//! differences `(L(x + eps e_j) - L(x - eps e_j)) / (2 eps)` on a sample of
//! elements `j`.
//!
//! Tolerance: the forward kernels run in f32 and are deterministic, so
//! outputs a perturbation does not reach cancel exactly in `L(+) - L(-)`;
//! the error comes from the few outputs it does reach, each rounded to
//! about 2^-24 relative (times the depth of its sum, <= 100 here), i.e.
//! ~1e-5 absolute on values of order 1, divided by `2 eps`. With eps = 1e-2
//! that is ~5e-4 for smooth ops (whose truncation error, O(eps^2 f'''), is
//! below 1e-4 at these magnitudes, and zero for the linear ops). Ops with
//! kinks (Relu, Clip, HardSwish, MaxPool) use inputs kept at least 0.05
//! away from every kink, so no step crosses one. Hence `|fd - g| <= 2e-3 +
//! 1e-2 |fd|`, a bound wide enough for rounding yet far below any real
//! error (a wrong index or factor shifts gradients by O(0.1 .. 1)).

use whittle_ir::{Activation, Attr, Node, Tensor};
use whittle_kernels::GradInput;

use super::DOMAIN;
use crate::{eval_node, Registry};

/// xorshift64*: reproducible values without a dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub(crate) fn f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub(crate) fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape.to_vec(), (0..n).map(|_| self.f32()).collect()).unwrap()
    }
}

fn eval(node: &Node, inputs: &[Option<Tensor>], opset: i64) -> Vec<Tensor> {
    eval_node(&Registry::standard(), node, inputs, opset)
        .unwrap_or_else(|e| panic!("{}: {e}", node.name))
}

fn grad_node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Node {
    let mut n = Node::new(op, op, inputs, outputs);
    n.domain = DOMAIN.to_string();
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    n
}

fn fwd_node(op: &str, ninputs: usize, attrs: &[(&str, Attr)]) -> Node {
    let names: Vec<String> = (0..ninputs).map(|i| format!("i{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut n = Node::new(op, op, &refs, &["y"]);
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    n
}

/// `sum(y * r)` in f64.
fn dot(y: &Tensor, r: &Tensor) -> f64 {
    y.as_f32()
        .unwrap()
        .iter()
        .zip(r.as_f32().unwrap())
        .map(|(&a, &b)| f64::from(a) * f64::from(b))
        .sum()
}

/// Central differences of `loss` with respect to input `wrt` at up to 40
/// sampled elements, compared with `analytic`.
fn check(
    what: &str,
    inputs: &[Option<Tensor>],
    wrt: usize,
    eps: f32,
    loss: &dyn Fn(&[Option<Tensor>]) -> f64,
    analytic: &Tensor,
) {
    let x = inputs[wrt].as_ref().unwrap();
    assert_eq!(x.shape(), analytic.shape(), "{what}: gradient shape");
    let g = analytic.as_f32().unwrap();
    let n = x.numel();
    let step = (n / 40).max(1);
    let mut checked = 0;
    for j in (0..n).step_by(step) {
        let at = |delta: f32| {
            let mut v = inputs.to_vec();
            v[wrt].as_mut().unwrap().as_f32_mut().unwrap()[j] += delta;
            loss(&v)
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * f64::from(eps));
        let err = (fd - f64::from(g[j])).abs();
        assert!(
            err <= 2e-3 + 1e-2 * fd.abs(),
            "{what}: element {j}: finite difference {fd}, analytic {}",
            g[j]
        );
        checked += 1;
    }
    assert!(checked > 0);
}

/// Checks the gradient of forward `fwd` (output 0) wrt each input in
/// `wrt`, given by output `k` of `grad` run on inputs `grad_inputs(R, y)`.
#[allow(clippy::too_many_arguments)]
fn check_op(
    what: &str,
    fwd: &Node,
    opset: i64,
    inputs: &[Option<Tensor>],
    eps: f32,
    grad: &Node,
    grad_inputs: &dyn Fn(&Tensor, &Tensor) -> Vec<Option<Tensor>>,
    wrt: &[(usize, usize)],
    rng: &mut Rng,
) {
    let y = eval(fwd, inputs, opset).remove(0);
    let r = rng.tensor(y.shape());
    let g = eval(grad, &grad_inputs(&r, &y), 1);
    for &(input, out) in wrt {
        let loss = |v: &[Option<Tensor>]| dot(&eval(fwd, v, opset)[0], &r);
        check(
            &format!("{what} d/d input {input}"),
            inputs,
            input,
            eps,
            &loss,
            &g[out],
        );
    }
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

fn shape_i64(s: &[usize]) -> Vec<i64> {
    s.iter().map(|&d| d as i64).collect()
}

struct ConvCase {
    x: Vec<usize>,
    w: Vec<usize>,
    strides: Vec<i64>,
    pads: Vec<i64>,
    dilations: Vec<i64>,
    group: i64,
}

fn conv_case(c: &ConvCase, rng: &mut Rng) {
    let attrs = [
        ("strides", ints(&c.strides)),
        ("pads", ints(&c.pads)),
        ("dilations", ints(&c.dilations)),
        ("group", Attr::Int(c.group)),
    ];
    let fwd = fwd_node("Conv", 3, &attrs);
    let x = rng.tensor(&c.x);
    let w = rng.tensor(&c.w);
    let b = rng.tensor(&c.w[..1]);
    let inputs = vec![Some(x.clone()), Some(w.clone()), Some(b)];
    let what = format!("conv x{:?} w{:?} g{}", c.x, c.w, c.group);
    let mut gi_attrs = attrs.to_vec();
    gi_attrs.push(("input_shape", ints(&shape_i64(&c.x))));
    let gi = grad_node("ConvGradInput", &["dy", "w"], &["dx"], &gi_attrs);
    check_op(
        &what,
        &fwd,
        13,
        &inputs,
        1e-2,
        &gi,
        &|r, _| vec![Some(r.clone()), Some(w.clone())],
        &[(0, 0)],
        rng,
    );
    let mut gw_attrs = attrs.to_vec();
    gw_attrs.push(("kernel_shape", ints(&shape_i64(&c.w[2..]))));
    let gw = grad_node("ConvGradWeight", &["dy", "x"], &["dw", "db"], &gw_attrs);
    check_op(
        &what,
        &fwd,
        13,
        &inputs,
        1e-2,
        &gw,
        &|r, _| vec![Some(r.clone()), Some(x.clone())],
        &[(1, 0), (2, 1)],
        rng,
    );
}

#[test]
fn conv_grads_match_finite_differences() {
    let mut rng = Rng::new(1);
    let cases = [
        // Dense 2-D, stride 2, asymmetric pads.
        ConvCase {
            x: vec![2, 3, 7, 6],
            w: vec![4, 3, 3, 3],
            strides: vec![2, 2],
            pads: vec![1, 0, 1, 1],
            dilations: vec![1, 1],
            group: 1,
        },
        // Grouped with dilation.
        ConvCase {
            x: vec![2, 4, 7, 7],
            w: vec![6, 2, 3, 2],
            strides: vec![1, 2],
            pads: vec![1, 1, 0, 1],
            dilations: vec![2, 1],
            group: 2,
        },
        // Depthwise with channel multiplier 2.
        ConvCase {
            x: vec![2, 3, 6, 5],
            w: vec![6, 1, 3, 3],
            strides: vec![2, 1],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 2],
            group: 3,
        },
        // Depthwise, strided along x (the direct kernels' strided loops).
        ConvCase {
            x: vec![1, 4, 5, 7],
            w: vec![4, 1, 2, 3],
            strides: vec![1, 2],
            pads: vec![0, 1, 1, 2],
            dilations: vec![1, 1],
            group: 4,
        },
        // Pointwise (the direct product, image by image).
        ConvCase {
            x: vec![2, 5, 4, 4],
            w: vec![3, 5, 1, 1],
            strides: vec![1, 1],
            pads: vec![0, 0, 0, 0],
            dilations: vec![1, 1],
            group: 1,
        },
        // 1-D and 3-D.
        ConvCase {
            x: vec![2, 2, 9],
            w: vec![3, 2, 4],
            strides: vec![2],
            pads: vec![2, 1],
            dilations: vec![1],
            group: 1,
        },
        ConvCase {
            x: vec![1, 2, 4, 4, 3],
            w: vec![2, 1, 2, 3, 2],
            strides: vec![1, 2, 1],
            pads: vec![0, 1, 1, 1, 0, 0],
            dilations: vec![1, 1, 1],
            group: 2,
        },
    ];
    for c in &cases {
        conv_case(c, &mut rng);
    }
}

/// Random values in [-lo..] pushed at least `gap` away from every `kink`.
fn away_from(rng: &mut Rng, shape: &[usize], scale: f32, kinks: &[f32], gap: f32) -> Tensor {
    let mut t = rng.tensor(shape);
    for v in t.as_f32_mut().unwrap() {
        *v *= scale;
        for &k in kinks {
            if (*v - k).abs() < gap {
                *v = k + if *v >= k { gap } else { -gap } * 2.0;
            }
        }
    }
    t
}

#[test]
fn activation_grads_match_finite_differences() {
    let mut rng = Rng::new(2);
    let shape = [2, 3, 4, 5];
    let unary = |op: &str,
                 fwd_attrs: &[(&str, Attr)],
                 extra: Vec<Option<Tensor>>,
                 grad_op: &str,
                 grad_attrs: &[(&str, Attr)],
                 reads_y: bool,
                 x: Tensor,
                 rng: &mut Rng| {
        let fwd = fwd_node(op, 1 + extra.len(), fwd_attrs);
        let mut inputs = vec![Some(x.clone())];
        inputs.extend(extra);
        let gn = grad_node(grad_op, &["dy", "v"], &["dx"], grad_attrs);
        check_op(
            op,
            &fwd,
            13,
            &inputs,
            1e-2,
            &gn,
            &|r, y| {
                let v = if reads_y { y.clone() } else { x.clone() };
                vec![Some(r.clone()), Some(v)]
            },
            &[(0, 0)],
            rng,
        );
    };
    // Each activation through one ActivationGrad node, the typed
    // activation saying which derivative.
    let act = |op: &str,
               fwd_attrs: &[(&str, Attr)],
               extra: Vec<Option<Tensor>>,
               a: Activation,
               x: Tensor,
               rng: &mut Rng| {
        let fwd = fwd_node(op, 1 + extra.len(), fwd_attrs);
        let mut inputs = vec![Some(x)];
        inputs.extend(extra);
        let gn = grad_node("ActivationGrad", &["dy", "v"], &["dx"], &[]).with_activation(a);
        let reads_y = a.grad_input() == GradInput::Output;
        let x = inputs[0].clone().expect("x");
        check_op(
            op,
            &fwd,
            13,
            &inputs,
            1e-2,
            &gn,
            &|r, y| {
                let v = if reads_y { y.clone() } else { x.clone() };
                vec![Some(r.clone()), Some(v)]
            },
            &[(0, 0)],
            rng,
        );
    };
    let x = away_from(&mut rng, &shape, 2.0, &[0.0], 0.05);
    act("Relu", &[], vec![], Activation::Relu, x, &mut rng);
    let x = away_from(&mut rng, &shape, 8.0, &[0.0, 6.0], 0.05);
    let clip_in = vec![Some(Tensor::scalar_f32(0.0)), Some(Tensor::scalar_f32(6.0))];
    let clip = Activation::Clip { min: 0.0, max: 6.0 };
    act("Clip", &[], clip_in, clip, x, &mut rng);
    let x = away_from(&mut rng, &shape, 5.0, &[-3.0, 3.0], 0.05);
    act("HardSwish", &[], vec![], Activation::HardSwish, x, &mut rng);
    let x = rng.tensor(&shape);
    act("Sigmoid", &[], vec![], Activation::Sigmoid, x, &mut rng);
    let x = rng.tensor(&shape);
    act("Tanh", &[], vec![], Activation::Tanh, x, &mut rng);
    let x = away_from(&mut rng, &shape, 3.0, &[0.0], 0.05);
    let leaky = [("alpha", Attr::Float(0.2))];
    let a = Activation::LeakyRelu { alpha: 0.2 };
    act("LeakyRelu", &leaky, vec![], a, x, &mut rng);
    let x = away_from(&mut rng, &shape, 5.0, &[-2.5, 2.5], 0.05);
    let a = Activation::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    act("HardSigmoid", &[], vec![], a, x, &mut rng);
    let x = rng.tensor(&shape);
    act(
        "Swish",
        &[],
        vec![],
        Activation::Swish { alpha: 1.0 },
        x,
        &mut rng,
    );
    for axis in [1i64, -1] {
        let x = rng.tensor(&shape);
        let a = [("axis", Attr::Int(axis))];
        unary("Softmax", &a, vec![], "SoftmaxGrad", &a, true, x, &mut rng);
    }
}

#[test]
fn legacy_softmax_grad_flattens_from_axis() {
    let mut rng = Rng::new(3);
    let x = rng.tensor(&[2, 3, 4]);
    let fwd = fwd_node("Softmax", 1, &[("axis", Attr::Int(1))]);
    let gn = grad_node(
        "SoftmaxGrad",
        &["dy", "y"],
        &["dx"],
        &[("axis", Attr::Int(1)), ("flatten", Attr::Int(1))],
    );
    check_op(
        "softmax opset 11",
        &fwd,
        11,
        &[Some(x)],
        1e-2,
        &gn,
        &|r, y| vec![Some(r.clone()), Some(y.clone())],
        &[(0, 0)],
        &mut rng,
    );
}

/// Distinct values on a 0.05 grid in random order, so no max-pool window
/// has a near tie that a 1e-3 step could flip.
fn distinct(rng: &mut Rng, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    for i in (1..n).rev() {
        v.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

#[test]
fn pool_grads_match_finite_differences() {
    let mut rng = Rng::new(4);
    // (input shape, kernel, strides, pads, ceil_mode)
    type PoolCase<'a> = (&'a [usize], &'a [i64], &'a [i64], &'a [i64], i64);
    let cases: [PoolCase<'_>; 4] = [
        (&[2, 3, 7, 6], &[3, 3], &[2, 2], &[1, 1, 1, 1], 0),
        (&[1, 2, 6, 6], &[2, 2], &[2, 2], &[0, 0, 0, 0], 0),
        (&[1, 2, 7, 5], &[3, 2], &[2, 2], &[1, 0, 0, 1], 1),
        (&[2, 2, 9], &[4], &[3], &[1, 2], 0),
    ];
    for (shape, k, s, p, ceil) in cases {
        let attrs = [
            ("kernel_shape", ints(k)),
            ("strides", ints(s)),
            ("pads", ints(p)),
            ("ceil_mode", Attr::Int(ceil)),
        ];
        let x = distinct(&mut rng, shape);
        let fwd = fwd_node("MaxPool", 1, &attrs);
        let gn = grad_node("MaxPoolGrad", &["dy", "x"], &["dx"], &attrs);
        check_op(
            "maxpool",
            &fwd,
            13,
            &[Some(x.clone())],
            1e-3,
            &gn,
            &|r, _| vec![Some(r.clone()), Some(x.clone())],
            &[(0, 0)],
            &mut rng,
        );
        for include in [0, 1] {
            let mut attrs = attrs.to_vec();
            attrs.push(("count_include_pad", Attr::Int(include)));
            let fwd = fwd_node("AveragePool", 1, &attrs);
            attrs.push(("input_shape", ints(&shape_i64(shape))));
            let gn = grad_node("AveragePoolGrad", &["dy"], &["dx"], &attrs);
            check_op(
                "avgpool",
                &fwd,
                13,
                &[Some(x.clone())],
                1e-2,
                &gn,
                &|r, _| vec![Some(r.clone())],
                &[(0, 0)],
                &mut rng,
            );
        }
    }
    let x = rng.tensor(&[2, 3, 4, 5]);
    let fwd = fwd_node("GlobalAveragePool", 1, &[]);
    let gn = grad_node(
        "GlobalAveragePoolGrad",
        &["dy"],
        &["dx"],
        &[("input_shape", ints(&[2, 3, 4, 5]))],
    );
    check_op(
        "global avgpool",
        &fwd,
        13,
        &[Some(x)],
        1e-2,
        &gn,
        &|r, _| vec![Some(r.clone())],
        &[(0, 0)],
        &mut rng,
    );
}

#[test]
fn losses_match_finite_differences() {
    let mut rng = Rng::new(5);
    let logits = rng.tensor(&[4, 5]).reshaped(vec![4, 5]).unwrap();
    let labels = Tensor::from_i64(vec![4], vec![0, 4, 2, 2]).unwrap();
    let sce = grad_node("SoftmaxCrossEntropy", &["x", "l"], &["loss", "dx"], &[]);
    let inputs = vec![Some(logits.clone()), Some(labels.clone())];
    let out = eval(&sce, &inputs, 1);
    let loss = |v: &[Option<Tensor>]| f64::from(eval(&sce, v, 1)[0].as_f32().unwrap()[0]);
    check("sce", &inputs, 0, 1e-2, &loss, &out[1]);
    // Independent value: -mean(log softmax) computed here in f64.
    let x = logits.as_f32().unwrap();
    let mut want = 0.0f64;
    for (i, &l) in labels.as_i64().unwrap().iter().enumerate() {
        let row = &x[i * 5..][..5];
        let lse = row.iter().map(|&v| f64::from(v).exp()).sum::<f64>().ln();
        want += lse - f64::from(row[l as usize]);
    }
    want /= 4.0;
    let got = f64::from(out[0].as_f32().unwrap()[0]);
    assert!((got - want).abs() < 1e-6, "sce loss {got} vs {want}");

    let p = rng.tensor(&[3, 4]);
    let t = rng.tensor(&[3, 4]);
    let mse = grad_node("MseLoss", &["p", "t"], &["loss", "dp"], &[]);
    let inputs = vec![Some(p), Some(t)];
    let out = eval(&mse, &inputs, 1);
    let loss = |v: &[Option<Tensor>]| f64::from(eval(&mse, v, 1)[0].as_f32().unwrap()[0]);
    check("mse", &inputs, 0, 1e-2, &loss, &out[1]);
}

#[test]
fn sce_rejects_labels_out_of_range() {
    let sce = grad_node("SoftmaxCrossEntropy", &["x", "l"], &["loss", "dx"], &[]);
    let x = Tensor::from_f32(vec![2, 3], vec![0.0; 6]).unwrap();
    for bad in [3i64, -1] {
        let l = Tensor::from_i64(vec![2], vec![0, bad]).unwrap();
        let err = eval_node(&Registry::standard(), &sce, &[Some(x.clone()), Some(l)], 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("out of range"), "{err}");
    }
}

#[test]
fn batchnorm_grads_match_finite_differences() {
    let mut rng = Rng::new(6);
    let shape = [3, 4, 3, 2];
    let x = rng.tensor(&shape);
    let scale = rng.tensor(&[4]);
    let bias = rng.tensor(&[4]);
    let attrs = [("epsilon", Attr::Float(1e-3))];
    let mut fwd = grad_node("BatchNormTrain", &["x", "s", "b"], &["y", "m", "v"], &attrs);
    fwd.outputs = vec!["y".into(), "m".into(), "v".into()];
    let inputs = vec![Some(x.clone()), Some(scale.clone()), Some(bias.clone())];
    let out = eval(&fwd, &inputs, 1);
    // Independent check of the statistics.
    let xv = x.as_f32().unwrap();
    for c in 0..4 {
        let vals: Vec<f64> = (0..3)
            .flat_map(|b| (0..6).map(move |k| (b, k)))
            .map(|(b, k)| f64::from(xv[(b * 4 + c) * 6 + k]))
            .collect();
        let mean = vals.iter().sum::<f64>() / 18.0;
        let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 18.0;
        assert!((f64::from(out[1].as_f32().unwrap()[c]) - mean).abs() < 1e-6);
        let inv = 1.0 / (var + 1e-3).sqrt();
        assert!((f64::from(out[2].as_f32().unwrap()[c]) - inv).abs() < 1e-4 * inv);
    }
    let gn = grad_node(
        "BatchNormGrad",
        &["dy", "x", "s", "m", "v"],
        &["dx", "ds", "db"],
        &[],
    );
    let (m, v) = (out[1].clone(), out[2].clone());
    let (xc, sc) = (x.clone(), scale.clone());
    check_op(
        "batchnorm train",
        &fwd,
        1,
        &inputs,
        1e-2,
        &gn,
        &|r, _| {
            vec![
                Some(r.clone()),
                Some(xc.clone()),
                Some(sc.clone()),
                Some(m.clone()),
                Some(v.clone()),
            ]
        },
        &[(0, 0), (1, 1), (2, 2)],
        &mut rng,
    );

    // Frozen: inference BatchNormalization with running statistics.
    let mean = rng.tensor(&[4]);
    let mut var = rng.tensor(&[4]);
    var.as_f32_mut()
        .unwrap()
        .iter_mut()
        .for_each(|v| *v = v.abs() + 0.5);
    let inv: Vec<f32> = var
        .as_f32()
        .unwrap()
        .iter()
        .map(|v| 1.0 / (v + 1e-3).sqrt())
        .collect();
    let inv = Tensor::from_f32(vec![4], inv).unwrap();
    let fwd = fwd_node("BatchNormalization", 5, &attrs);
    let inputs = vec![
        Some(x.clone()),
        Some(scale.clone()),
        Some(bias),
        Some(mean.clone()),
        Some(var),
    ];
    let gn = grad_node(
        "BatchNormGrad",
        &["dy", "x", "s", "m", "v"],
        &["dx", "ds", "db"],
        &[("training", Attr::Int(0))],
    );
    check_op(
        "batchnorm frozen",
        &fwd,
        15,
        &inputs,
        1e-2,
        &gn,
        &|r, _| {
            vec![
                Some(r.clone()),
                Some(x.clone()),
                Some(scale.clone()),
                Some(mean.clone()),
                Some(inv.clone()),
            ]
        },
        &[(0, 0), (1, 1), (2, 2)],
        &mut rng,
    );
}

#[test]
fn sum_to_shape_is_the_broadcast_gradient() {
    let mut rng = Rng::new(7);
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 4], &[3, 1]),
        (&[2, 3, 4], &[4]),
        (&[2, 3, 4], &[2, 1, 4]),
        (&[2, 3, 4], &[]),
        (&[2, 3, 4], &[2, 3, 4]),
    ];
    for (big, small) in cases {
        let a = rng.tensor(small);
        let fwd = fwd_node("Expand", 2, &[]);
        let shape = Tensor::vec_i64(shape_i64(big));
        let gn = grad_node(
            "SumToShape",
            &["dy"],
            &["dx"],
            &[("shape", ints(&shape_i64(small)))],
        );
        check_op(
            "sum_to_shape",
            &fwd,
            13,
            &[Some(a), Some(shape)],
            1e-2,
            &gn,
            &|r, _| vec![Some(r.clone())],
            &[(0, 0)],
            &mut rng,
        );
    }
    let bad = grad_node("SumToShape", &["dy"], &["dx"], &[("shape", ints(&[5]))]);
    let err = eval_node(&Registry::standard(), &bad, &[Some(rng.tensor(&[2, 4]))], 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not broadcast"), "{err}");
}
