//! One backward rule per forward op: given the gradients of a node's
//! outputs, emit the nodes computing the gradients of the inputs that need
//! one (and only those).

use std::collections::{HashMap, HashSet};

use whittle_ir::ops::{Grad, GradInput};
use whittle_ir::{Attr, Graph, Node};

use super::emit::Emit;
use crate::{TrainError, TrainSpec};

fn err(node: &Node, msg: impl Into<String>) -> TrainError {
    TrainError::Node {
        node: node.name.clone(),
        op: node.op_type.clone(),
        msg: msg.into(),
    }
}

fn ints(v: &[usize]) -> Attr {
    Attr::Ints(v.iter().map(|&d| d as i64).collect())
}

/// What a rule sees.
pub(crate) struct Ctx<'n> {
    pub node: &'n Node,
    pub opset: i64,
    /// Gradient of each output, if any flows back into it.
    pub gy: Vec<Option<String>>,
    /// Whether input `i` needs a gradient.
    pub need: Vec<bool>,
    /// Sparse update: weight -> the number of leading output channels
    /// whose gradient is wanted (only weights training fewer than all).
    pub channels: &'n HashMap<String, usize>,
}

impl Ctx<'_> {
    fn input(&self, i: usize) -> &str {
        self.node.inputs.get(i).map_or("", String::as_str)
    }
    fn output(&self, i: usize) -> &str {
        self.node.outputs.get(i).map_or("", String::as_str)
    }
    fn needs(&self, i: usize) -> bool {
        self.need.get(i).copied().unwrap_or(false)
    }
    /// Gradient of output 0 (rules run only when some output has one).
    fn g0(&self) -> Result<&str, TrainError> {
        self.gy
            .first()
            .and_then(|g| g.as_deref())
            .ok_or_else(|| err(self.node, "only output 0 can carry a gradient"))
    }
}

/// Emits the backward nodes of one forward node.
pub(crate) fn backward(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    if c.gy.iter().skip(1).any(Option::is_some) && n.op_type != "Split" {
        return Err(err(
            n,
            "gradients through outputs other than 0 are not supported",
        ));
    }
    match n.op_type.as_str() {
        "Conv" => conv(e, c),
        "Gemm" => gemm(e, c),
        "MatMul" => matmul(e, c),
        "Add" | "Sub" => add_sub(e, c, n.op_type == "Sub"),
        "Mul" => mul(e, c),
        _ if n.info().grad == Grad::Activation => activation(e, c),
        "MaxPool" | "AveragePool" => pool(e, c),
        "GlobalAveragePool" => {
            let g = c.g0()?;
            let x = c.input(0);
            let shape = e.shape(x)?.to_vec();
            let out = e.grad_out(x);
            e.node(
                &n.name,
                "GlobalAveragePoolGrad",
                true,
                &[g],
                &[&out],
                vec![("input_shape", ints(&shape))],
            );
            Ok(())
        }
        "Reshape" | "Flatten" | "Squeeze" | "Unsqueeze" => reshape_back(e, c),
        "Identity" | "Dropout" => {
            let g = c.g0()?.to_string();
            e.pass(c.input(0), &g);
            Ok(())
        }
        "Concat" => concat(e, c),
        "Softmax" => softmax(e, c),
        "BatchNormTrain" => batchnorm(e, c, true),
        "BatchNormalization" => batchnorm(e, c, false),
        "QuantizeLinear" | "DequantizeLinear" => super::quant_rules::backward(e, c),
        other => Err(err(n, format!("no backward rule for {other}"))),
    }
}

/// Explicit begin/end pads of a conv or pool node from its `auto_pad`.
fn explicit_pads(
    node: &Node,
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<Vec<usize>, TrainError> {
    let sr = input.len();
    let auto_pad = node.attr_string("auto_pad", "NOTSET")?;
    let mut pads = vec![0usize; 2 * sr];
    match auto_pad.as_str() {
        "NOTSET" | "" => {
            if let Some(p) = node.attr_ints("pads")? {
                if p.len() != 2 * sr || p.iter().any(|&v| v < 0) {
                    return Err(err(node, format!("pads {p:?} is invalid")));
                }
                for (d, &v) in pads.iter_mut().zip(p) {
                    *d = v as usize;
                }
            }
        }
        "VALID" => {}
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..sr {
                let span = (kernel[i] - 1) * dilations[i] + 1;
                let out = input[i].div_ceil(strides[i]);
                let total = ((out.max(1) - 1) * strides[i] + span).saturating_sub(input[i]);
                let small = total / 2;
                (pads[i], pads[sr + i]) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
            }
        }
        other => return Err(err(node, format!("unknown auto_pad '{other}'"))),
    }
    Ok(pads)
}

/// An ints attribute of `len` positive values, or 1s.
fn window_attr(node: &Node, name: &str, len: usize) -> Result<Vec<usize>, TrainError> {
    match node.attr_ints(name)? {
        None => Ok(vec![1; len]),
        Some(v) if v.len() == len && v.iter().all(|&x| x >= 1) => {
            Ok(v.iter().map(|&x| x as usize).collect())
        }
        Some(v) => Err(err(node, format!("{name} {v:?} is invalid"))),
    }
}

fn conv(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let (x, w) = (c.input(0), c.input(1));
    let xs = e.shape(x)?.to_vec();
    let ws = e.shape(w)?.to_vec();
    if xs.len() < 3 || ws.len() != xs.len() {
        return Err(err(n, format!("unexpected shapes X {xs:?}, W {ws:?}")));
    }
    let sr = xs.len() - 2;
    let strides = window_attr(n, "strides", sr)?;
    let dilations = window_attr(n, "dilations", sr)?;
    let pads = explicit_pads(n, &xs[2..], &ws[2..], &strides, &dilations)?;
    let attrs = || {
        vec![
            ("strides", ints(&strides)),
            ("dilations", ints(&dilations)),
            ("pads", ints(&pads)),
            ("group", Attr::Int(n.attr_int("group", 1).unwrap_or(1))),
        ]
    };
    if c.needs(0) {
        let out = e.grad_out(x);
        let mut a = attrs();
        a.push(("input_shape", ints(&xs)));
        e.node(&n.name, "ConvGradInput", true, &[&g, w], &[&out], a);
    }
    let b = c.input(2);
    let need_w = c.needs(1);
    let need_b = !b.is_empty() && c.needs(2);
    if need_w {
        let dw = e.grad_out(w);
        let db = if need_b { e.grad_out(b) } else { String::new() };
        let mut a = attrs();
        a.push(("kernel_shape", ints(&ws[2..])));
        if let Some(&k) = c.channels.get(w) {
            a.push(("channels", Attr::Int(k as i64)));
        }
        e.node(&n.name, "ConvGradWeight", true, &[&g, x], &[&dw, &db], a);
    } else if need_b {
        // Bias only: sum dY over batch and space.
        let cout = ws[0];
        let mut keep = vec![cout];
        keep.extend(std::iter::repeat_n(1, sr));
        let summed = e.fresh(&format!("{b}.grad_nc"));
        e.node(
            &n.name,
            "SumToShape",
            true,
            &[&g],
            &[&summed],
            vec![("shape", ints(&keep))],
        );
        let shape = e.const_i64(&format!("{b}.shape"), vec![cout as i64]);
        let out = e.grad_out(b);
        e.node(
            &n.name,
            "Reshape",
            false,
            &[&summed, &shape],
            &[&out],
            vec![],
        );
    }
    Ok(())
}

/// `g` summed down to `target` (and scaled), as a contribution to `v`.
fn reduce_to(
    e: &mut Emit<'_>,
    owner: &str,
    v: &str,
    g: &str,
    from: &[usize],
    scale: f32,
    negate: bool,
) -> Result<(), TrainError> {
    let target = e.shape(v)?.to_vec();
    let mut cur = g.to_string();
    if target != from {
        let out = e.fresh(&format!("{v}.grad_red"));
        e.node(
            owner,
            "SumToShape",
            true,
            &[&cur],
            &[&out],
            vec![("shape", ints(&target))],
        );
        cur = out;
    }
    if scale != 1.0 {
        let k = e.const_f32(&format!("{owner}.scale"), vec![], vec![scale]);
        let out = e.fresh(&format!("{v}.grad_scaled"));
        e.node(owner, "Mul", false, &[&cur, &k], &[&out], vec![]);
        cur = out;
    }
    if negate {
        let out = e.fresh(&format!("{v}.grad_neg"));
        e.node(owner, "Neg", false, &[&cur], &[&out], vec![]);
        cur = out;
    }
    if cur == g {
        e.pass(v, &cur);
    } else {
        e.pass_owned(v, &cur);
    }
    Ok(())
}

fn gemm(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let (a, b) = (c.input(0), c.input(1));
    let alpha = n.attr_float("alpha", 1.0)?;
    let beta = n.attr_float("beta", 1.0)?;
    let ta = n.attr_int("transA", 0)? != 0;
    let tb = n.attr_int("transB", 0)? != 0;
    let flag = |v: bool| Attr::Int(i64::from(v));
    if c.needs(0) {
        let out = e.grad_out(a);
        let (ins, attrs) = if !ta {
            // dA = alpha g op(B)^T
            (
                [g.as_str(), b],
                vec![("transA", flag(false)), ("transB", flag(!tb))],
            )
        } else {
            // dA = alpha op(B) g^T
            (
                [b, g.as_str()],
                vec![("transA", flag(tb)), ("transB", flag(true))],
            )
        };
        let mut attrs = attrs;
        attrs.push(("alpha", Attr::Float(alpha)));
        e.node(&n.name, "Gemm", false, &ins, &[&out], attrs);
    }
    if let (true, Some(&k)) = (c.needs(1), c.channels.get(b)) {
        // Sparse update of a [N, K] weight (transB = 1): the first k rows
        // of dB = alpha g^T op(A) need only the first k columns of g.
        let starts = e.const_i64(&format!("{b}.starts"), vec![0]);
        let ends = e.const_i64(&format!("{b}.ends"), vec![k as i64]);
        let axes = e.const_i64(&format!("{b}.axes"), vec![1]);
        let gk = e.fresh(&format!("{g}.first{k}"));
        e.node(
            &n.name,
            "Slice",
            false,
            &[&g, &starts, &ends, &axes],
            &[&gk],
            vec![],
        );
        let out = e.grad_out(b);
        let attrs = vec![
            ("transA", flag(true)),
            ("transB", flag(ta)),
            ("alpha", Attr::Float(alpha)),
        ];
        e.node(&n.name, "Gemm", false, &[&gk, a], &[&out], attrs);
    } else if c.needs(1) {
        let out = e.grad_out(b);
        let (ins, attrs) = if !tb {
            // dB = alpha op(A)^T g
            (
                [a, g.as_str()],
                vec![("transA", flag(!ta)), ("transB", flag(false))],
            )
        } else {
            // dB = alpha g^T op(A)
            (
                [g.as_str(), a],
                vec![("transA", flag(true)), ("transB", flag(ta))],
            )
        };
        let mut attrs = attrs;
        attrs.push(("alpha", Attr::Float(alpha)));
        e.node(&n.name, "Gemm", false, &ins, &[&out], attrs);
    }
    let cin = c.input(2);
    if !cin.is_empty() && c.needs(2) {
        let ys = e.shape(c.output(0))?.to_vec();
        reduce_to(e, &n.name, cin, &g, &ys, beta, false)?;
    }
    Ok(())
}

fn matmul(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let (a, b) = (c.input(0), c.input(1));
    let (sa, sb) = (e.shape(a)?.to_vec(), e.shape(b)?.to_vec());
    if sa.len() < 2 || sb.len() < 2 {
        return Err(err(
            n,
            format!("MatMul backward needs operands of rank >= 2, got {sa:?} and {sb:?}"),
        ));
    }
    if sa.len() == 2 && sb.len() == 2 {
        let flag = |v: bool| Attr::Int(i64::from(v));
        if c.needs(0) {
            let out = e.grad_out(a);
            let attrs = vec![("transA", flag(false)), ("transB", flag(true))];
            e.node(&n.name, "Gemm", false, &[&g, b], &[&out], attrs);
        }
        if c.needs(1) {
            let out = e.grad_out(b);
            let attrs = vec![("transA", flag(true)), ("transB", flag(false))];
            e.node(&n.name, "Gemm", false, &[a, &g], &[&out], attrs);
        }
        return Ok(());
    }
    // Batched: transpose the last two dims, multiply, sum broadcast dims.
    let swap = |r: usize| {
        let mut p: Vec<i64> = (0..r as i64).collect();
        p.swap(r - 1, r - 2);
        Attr::Ints(p)
    };
    let ys = e.shape(c.output(0))?.to_vec();
    for (i, (v, other, so)) in [(a, b, &sb), (b, a, &sa)].into_iter().enumerate() {
        if !c.needs(i) {
            continue;
        }
        let t = e.fresh(&format!("{other}.T"));
        e.node(
            &n.name,
            "Transpose",
            false,
            &[other],
            &[&t],
            vec![("perm", swap(so.len()))],
        );
        let prod = e.fresh(&format!("{v}.grad_full"));
        let ins = if i == 0 {
            [g.as_str(), t.as_str()]
        } else {
            [t.as_str(), g.as_str()]
        };
        e.node(&n.name, "MatMul", false, &ins, &[&prod], vec![]);
        // The product has the broadcast batch dims of Y.
        let mut full = ys[..ys.len() - 2].to_vec();
        let sv = e.shape(v)?.to_vec();
        full.extend_from_slice(&sv[sv.len() - 2..]);
        reduce_to(e, &n.name, v, &prod, &full, 1.0, false)?;
    }
    Ok(())
}

fn add_sub(e: &mut Emit<'_>, c: &Ctx<'_>, sub: bool) -> Result<(), TrainError> {
    let g = c.g0()?.to_string();
    let ys = e.shape(c.output(0))?.to_vec();
    for i in 0..2 {
        if c.needs(i) {
            reduce_to(e, &c.node.name, c.input(i), &g, &ys, 1.0, sub && i == 1)?;
        }
    }
    Ok(())
}

fn mul(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let ys = e.shape(c.output(0))?.to_vec();
    for i in 0..2 {
        if !c.needs(i) {
            continue;
        }
        let (v, other) = (c.input(i), c.input(1 - i));
        let prod = e.fresh(&format!("{v}.grad_full"));
        e.node(&n.name, "Mul", false, &[&g, other], &[&prod], vec![]);
        reduce_to(e, &n.name, v, &prod, &ys, 1.0, false)?;
    }
    Ok(())
}

/// `dX = ActivationGrad(dY, V)`, the derivative of the node's activation
/// (see [`Activation::derivative`](whittle_ir::Activation::derivative)); V is the forward output or input, as
/// the activation says. Parameters given as inputs (Clip's bounds) must be
/// constants and are not trained.
fn activation(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    if (1..n.inputs.len()).any(|i| c.needs(i)) {
        return Err(err(n, "activation parameters cannot be trained"));
    }
    if !c.needs(0) {
        return Ok(());
    }
    let of = n
        .info()
        .activation
        .ok_or_else(|| err(n, "not an activation"))?;
    let scalar = |i: usize| e.value(c.input(i))?.as_scalar_f32();
    let act = of(n, &scalar).ok_or_else(|| {
        err(
            n,
            "its parameters must be constants (Clip bounds computed at run time cannot be differentiated)",
        )
    })?;
    let g = c.g0()?.to_string();
    let x = c.input(0);
    let v = match act.grad_input() {
        GradInput::Output => c.output(0),
        GradInput::Input => x,
    };
    let out = e.grad_out(x);
    e.node_with_activation(&n.name, "ActivationGrad", &[&g, v], &[&out], act);
    Ok(())
}

fn pool(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    if !c.needs(0) {
        return Ok(());
    }
    let g = c.g0()?.to_string();
    let x = c.input(0);
    let xs = e.shape(x)?.to_vec();
    if xs.len() < 3 {
        return Err(err(n, format!("input shape {xs:?} is not N x C x spatial")));
    }
    let sr = xs.len() - 2;
    let kernel = n
        .attr_ints("kernel_shape")?
        .ok_or_else(|| err(n, "kernel_shape is required"))?
        .iter()
        .map(|&k| k.max(1) as usize)
        .collect::<Vec<_>>();
    let strides = window_attr(n, "strides", sr)?;
    let dilations = window_attr(n, "dilations", sr)?;
    let pads = explicit_pads(n, &xs[2..], &kernel, &strides, &dilations)?;
    let mut attrs = vec![
        ("kernel_shape", ints(&kernel)),
        ("strides", ints(&strides)),
        ("dilations", ints(&dilations)),
        ("pads", ints(&pads)),
        ("ceil_mode", Attr::Int(n.attr_int("ceil_mode", 0)?)),
    ];
    let out = e.grad_out(x);
    if n.op_type == "MaxPool" {
        e.node(&n.name, "MaxPoolGrad", true, &[&g, x], &[&out], attrs);
    } else {
        attrs.push((
            "count_include_pad",
            Attr::Int(n.attr_int("count_include_pad", 0)?),
        ));
        attrs.push(("input_shape", ints(&xs)));
        e.node(&n.name, "AveragePoolGrad", true, &[&g], &[&out], attrs);
    }
    Ok(())
}

fn reshape_back(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    if !c.needs(0) {
        return Ok(());
    }
    let g = c.g0()?.to_string();
    let x = c.input(0);
    let xs = e.shape(x)?.iter().map(|&d| d as i64).collect();
    let shape = e.const_i64(&format!("{x}.shape"), xs);
    let out = e.grad_out(x);
    e.node(
        &c.node.name,
        "Reshape",
        false,
        &[&g, &shape],
        &[&out],
        vec![],
    );
    Ok(())
}

fn concat(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let ys = e.shape(c.output(0))?.to_vec();
    let rank = ys.len() as i64;
    let axis = n.attr_int("axis", 0)?;
    let axis = if axis < 0 { axis + rank } else { axis };
    if !(0..rank).contains(&axis) {
        return Err(err(n, format!("axis {axis} is out of range")));
    }
    let mut start = 0i64;
    for (i, v) in n.inputs.iter().enumerate() {
        let len = e.shape(v)?[axis as usize] as i64;
        if c.needs(i) {
            let starts = e.const_i64(&format!("{v}.starts"), vec![start]);
            let ends = e.const_i64(&format!("{v}.ends"), vec![start + len]);
            let axes = e.const_i64(&format!("{v}.axes"), vec![axis]);
            let out = e.grad_out(v);
            e.node(
                &n.name,
                "Slice",
                false,
                &[&g, &starts, &ends, &axes],
                &[&out],
                vec![],
            );
        }
        start += len;
    }
    Ok(())
}

fn softmax(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    let legacy = c.opset < 13;
    let axis = n.attr_int("axis", if legacy { 1 } else { -1 })?;
    if !c.needs(0) {
        return Ok(());
    }
    let g = c.g0()?.to_string();
    let x = c.input(0);
    let out = e.grad_out(x);
    let attrs = vec![
        ("axis", Attr::Int(axis)),
        ("flatten", Attr::Int(i64::from(legacy))),
    ];
    e.node(
        &n.name,
        "SoftmaxGrad",
        true,
        &[&g, c.output(0)],
        &[&out],
        attrs,
    );
    Ok(())
}

/// BatchNormTrain (train mode, inputs X, scale, B; outputs Y, mean,
/// invstd) or frozen BatchNormalization (X, scale, B, mean, var).
fn batchnorm(e: &mut Emit<'_>, c: &Ctx<'_>, train: bool) -> Result<(), TrainError> {
    let n = c.node;
    let g = c.g0()?.to_string();
    let (x, scale, bias) = (c.input(0), c.input(1), c.input(2));
    let (mean, invstd) = if train {
        (c.output(1).to_string(), c.output(2).to_string())
    } else {
        if c.needs(3) || c.needs(4) {
            return Err(err(n, "running statistics cannot be trained"));
        }
        let eps = n.attr_float("epsilon", 1e-5)?;
        let var = e
            .value(c.input(4))
            .ok_or_else(|| err(n, "frozen BatchNorm needs a constant variance"))?
            .to_f32_vec();
        let inv: Vec<f32> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
        let len = inv.len();
        let name = e.const_f32(&format!("{}.invstd", n.name), vec![len], inv);
        (c.input(3).to_string(), name)
    };
    let outs = [
        if c.needs(0) {
            e.grad_out(x)
        } else {
            String::new()
        },
        if c.needs(1) {
            e.grad_out(scale)
        } else {
            String::new()
        },
        if c.needs(2) {
            e.grad_out(bias)
        } else {
            String::new()
        },
    ];
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    e.node(
        &n.name,
        "BatchNormGrad",
        true,
        &[&g, x, scale, &mean, &invstd],
        &outs,
        vec![("training", Attr::Int(i64::from(train)))],
    );
    Ok(())
}

/// Output channels each sparse-updated weight of `spec.channel_ratio`
/// trains: `ceil(r C)` (at least 1; a ratio that rounds to all channels is
/// a full update and is left out). The weight must be trainable and be read
/// only as a Conv weight or a Gemm weight with `transB = 1`, whose axis 0
/// is the output channels, so the trained channels are a prefix in memory.
pub(crate) fn channel_counts(
    g: &Graph,
    spec: &TrainSpec,
    trainable: &HashSet<String>,
) -> Result<HashMap<String, usize>, TrainError> {
    let mut out = HashMap::new();
    for (w, &r) in &spec.channel_ratio {
        if !(r > 0.0 && r <= 1.0) {
            return Err(TrainError::Spec(format!(
                "channel ratio {r} for '{w}' is outside (0, 1]"
            )));
        }
        if !trainable.contains(w) {
            return Err(TrainError::Spec(format!(
                "channel ratio given for '{w}', which is not trainable"
            )));
        }
        for n in &g.nodes {
            for (i, inp) in n.inputs.iter().enumerate() {
                let ok = match n.op_type.as_str() {
                    "Conv" => i == 1,
                    "Gemm" => i == 1 && n.attr_int("transB", 0)? != 0,
                    _ => false,
                };
                if inp == w && !ok {
                    return Err(err(
                        n,
                        format!(
                            "sparse update of '{w}' (input {i}) is not supported: channel \
                             ratios apply to Conv weights and Gemm weights with transB = 1"
                        ),
                    ));
                }
            }
        }
        let c = g.initializers[w].shape().first().copied().unwrap_or(1);
        // A tolerance so that 0.3 * 10 (3.0000001 in f32) means 3 channels.
        let k = ((f64::from(r) * c as f64 - 1e-4).ceil() as usize).clamp(1, c);
        if k < c {
            out.insert(w.clone(), k);
        }
    }
    Ok(out)
}
