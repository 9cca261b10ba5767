//! Each rewrite and each refusal on hand-built QDQ graphs.

use super::*;
use crate::passes::fuse_activations;
use crate::{Activation, Attr, DType, Node, Tensor, TensorData, ValueInfo};

/// A QDQ graph under construction: input `x` (f32) quantized as `xq`.
struct B {
    g: Graph,
}

fn t(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn s(v: f32) -> Tensor {
    Tensor::scalar_f32(v)
}

fn i8s(v: i8) -> Tensor {
    t(&[], TensorData::I8(vec![v]))
}

impl B {
    fn new() -> B {
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 2, 4, 4])],
            outputs: vec![ValueInfo::known("out", DType::F32, &[1])],
            ..Graph::default()
        };
        g.opsets.insert(String::new(), 13);
        let mut b = B { g };
        b.init("s_x", s(0.5));
        b.init("z_x", i8s(3));
        b.node("QuantizeLinear", &["x", "s_x", "z_x"], &["xq"]);
        b
    }

    fn init(&mut self, name: &str, v: Tensor) {
        self.g.initializers.insert(name.into(), v);
    }

    fn node(&mut self, op: &str, ins: &[&str], outs: &[&str]) -> &mut Node {
        let name = format!("n{}_{op}", self.g.nodes.len());
        self.g.nodes.push(Node::new(name, op, ins, outs));
        self.g.nodes.last_mut().unwrap()
    }

    /// `DQ(q; scale, zp) -> out`.
    fn dq(&mut self, q: &str, scale: &str, zp: &str, out: &str) {
        let ins: Vec<&str> = [q, scale, zp]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        self.node("DequantizeLinear", &ins, &[out]);
    }

    /// `Q(v) -> vq -> DQ -> out` with its own parameters, ending the graph.
    fn finish(&mut self, v: &str, scale: f32, zp: i8) {
        self.init("s_y", s(scale));
        self.init("z_y", i8s(zp));
        self.node("QuantizeLinear", &[v, "s_y", "z_y"], &["yq"]);
        self.dq("yq", "s_y", "z_y", "out");
    }

    fn conv_weights(&mut self) {
        // Per output channel, axis 0.
        self.init(
            "w",
            t(&[3, 2, 1, 1], TensorData::I8(vec![1, -2, 3, 4, -5, 6])),
        );
        self.init(
            "s_w",
            Tensor::from_f32(vec![3], vec![0.1, 0.2, 0.4]).unwrap(),
        );
        self.init("z_w", t(&[3], TensorData::I8(vec![0, 0, 0])));
        self.dq("w", "s_w", "z_w", "wf");
        let dq = self.g.nodes.last_mut().unwrap();
        dq.attrs.insert("axis".into(), Attr::Int(0));
    }

    fn run(self) -> Graph {
        let (g, _) = fuse_qdq(self.g);
        g
    }
}

fn ops(g: &Graph) -> Vec<String> {
    g.nodes.iter().map(|n| n.op_type.clone()).collect()
}

fn find<'a>(g: &'a Graph, op: &str) -> &'a Node {
    g.nodes.iter().find(|n| n.op_type == op).unwrap()
}

#[test]
fn conv_with_int32_bias_and_fused_relu() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    // Bias quantized with a scale other than x_scale * w_scale: requantized.
    b.init("bq", t(&[3], TensorData::I32(vec![10, -20, 7])));
    b.init("s_b", s(0.01));
    b.dq("bq", "s_b", "", "bf");
    b.node("Conv", &["xf", "wf", "bf"], &["c"]);
    b.node("Relu", &["c"], &["r"]);
    b.finish("r", 0.25, -128);
    let (g, _) = fuse_activations(b.g);
    let g = B { g }.run();
    assert_eq!(
        ops(&g),
        ["QuantizeLinear", "QLinearConv", "DequantizeLinear"]
    );
    let c = find(&g, "QLinearConv");
    assert_eq!(
        c.inputs[..8],
        ["xq", "s_x", "z_x", "w", "s_w", "z_w", "s_y", "z_y"]
    );
    assert_eq!(c.outputs, ["yq"]);
    assert_eq!(c.activation, Activation::Relu);
    // 10*0.01/(0.5*0.1) = 2, -20*0.01/(0.5*0.2) = -2, 7*0.01/(0.5*0.4) = 0.35 -> 0.
    let bias = &g.initializers[&c.inputs[8]];
    assert_eq!(bias.data(), &TensorData::I32(vec![2, -2, 0]));
    assert!(!g.initializers.contains_key("bq"), "orphaned bias dropped");
    assert_eq!(g.outputs[0].name, "out");
}

#[test]
fn conv_with_float_bias_and_created_weight_zero_point() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("w", t(&[3, 2, 1, 1], TensorData::I8(vec![1; 6])));
    b.init("s_w", s(0.1));
    b.dq("w", "s_w", "", "wf");
    b.init(
        "bias",
        Tensor::from_f32(vec![3], vec![0.5, -0.25, 1.0]).unwrap(),
    );
    b.node("Conv", &["xf", "wf", "bias"], &["c"]);
    b.finish("c", 0.25, 0);
    let g = b.run();
    let c = find(&g, "QLinearConv");
    let zp = &g.initializers[&c.inputs[5]];
    assert_eq!(zp.data(), &TensorData::I8(vec![0]));
    // Scale 0.5 * 0.1 = 0.05: 10, -5, 20.
    let bias = &g.initializers[&c.inputs[8]];
    assert_eq!(bias.data(), &TensorData::I32(vec![10, -5, 20]));
}

#[test]
fn conv_refusals_keep_the_float_path() {
    // Weight quantized along the wrong axis.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    b.g.nodes
        .last_mut()
        .unwrap()
        .attrs
        .insert("axis".into(), Attr::Int(1));
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.finish("c", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Conv".to_string()));

    // Activation scale not constant.
    let mut b = B::new();
    b.g.inputs
        .push(ValueInfo::known("dyn_scale", DType::F32, &[]));
    b.dq("xq", "dyn_scale", "z_x", "xf");
    b.conv_weights();
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.finish("c", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Conv".to_string()));

    // Conv output also read by another node.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.node("Relu", &["c"], &["other"]);
    b.g.outputs
        .push(ValueInfo::known("other", DType::F32, &[1]));
    b.finish("c", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Conv".to_string()));

    // A fused activation the integer kernels cannot apply.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    b.node("Conv", &["xf", "wf"], &["c"]).activation = Activation::HardSwish;
    b.finish("c", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Conv".to_string()));

    // Float (unquantized) weights.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init(
        "wf",
        Tensor::from_f32(vec![1, 2, 1, 1], vec![1.0, 2.0]).unwrap(),
    );
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.finish("c", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Conv".to_string()));
}

#[test]
fn qlinear_conv_dq_relu_q_fuses_into_the_clamp() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.init("s_c", s(0.3));
    b.init("z_c", i8s(1));
    b.node("QuantizeLinear", &["c", "s_c", "z_c"], &["cq"]);
    b.dq("cq", "s_c", "z_c", "cf");
    b.init("lo", s(0.0));
    b.init("hi", s(6.0));
    b.node("Clip", &["cf", "lo", "hi"], &["r"]);
    b.finish("r", 0.25, -128);
    let g = b.run();
    assert_eq!(
        ops(&g),
        ["QuantizeLinear", "QLinearConv", "DequantizeLinear"]
    );
    let c = find(&g, "QLinearConv");
    assert_eq!(c.inputs[6..8], ["s_y", "z_y"]);
    assert_eq!(c.outputs, ["yq"]);
    assert!(
        matches!(c.activation, Activation::Clip { max, .. } if max == 6.0),
        "{:?}",
        c.activation
    );
}

#[test]
fn matmul_and_int4_block_matmul() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("w", t(&[4, 2], TensorData::I8(vec![1; 8])));
    b.init("s_w", Tensor::from_f32(vec![2], vec![0.1, 0.2]).unwrap());
    b.dq("w", "s_w", "", "wf");
    b.node("MatMul", &["xf", "wf"], &["m"]);
    b.finish("m", 0.25, 0);
    let g = b.run();
    assert_eq!(find(&g, "QLinearMatMul").inputs[3], "w");

    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("w", t(&[40, 2], TensorData::I4(vec![-3; 80])));
    b.init("s_w", Tensor::from_f32(vec![3, 2], vec![0.1; 6]).unwrap());
    b.dq("w", "s_w", "", "wf");
    let dq = b.g.nodes.last_mut().unwrap();
    dq.attrs.insert("axis".into(), Attr::Int(0));
    dq.attrs.insert("block_size".into(), Attr::Int(16));
    b.node("MatMul", &["xf", "wf"], &["m"]);
    b.finish("m", 0.25, 0);
    b.g.opsets.insert(String::new(), 21);
    let blocked = b.g.clone();
    let g = b.run();
    let q = find(&g, "QBlockLinear");
    assert_eq!(q.domain, WHITTLE_DOMAIN);
    assert_eq!(q.attr("layout"), Some(&Attr::String("matmul".into())));
    assert_eq!(q.attr("block_size"), Some(&Attr::Int(16)));
    assert_eq!(
        g.initializers[&q.inputs[3]].data(),
        &TensorData::I8(vec![-3; 80])
    );
    assert_eq!(g.opsets.get(WHITTLE_DOMAIN), Some(&1));

    // Block size below 16: refused.
    let mut small = blocked;
    small.initializers.insert(
        "s_w".into(),
        Tensor::from_f32(vec![5, 2], vec![0.1; 10]).unwrap(),
    );
    for n in &mut small.nodes {
        if n.attrs.contains_key("block_size") {
            n.attrs.insert("block_size".into(), Attr::Int(8));
        }
    }
    let (g, _) = fuse_qdq(small);
    assert!(ops(&g).contains(&"MatMul".to_string()));
}

#[test]
fn conv1x1_int4_becomes_block_linear() {
    let mut b = B::new();
    b.g.opsets.insert(String::new(), 21);
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("w", t(&[2, 32, 1, 1], TensorData::I4(vec![1; 64])));
    b.init(
        "s_w",
        Tensor::from_f32(vec![2, 1, 1, 1], vec![0.1; 2]).unwrap(),
    );
    b.dq("w", "s_w", "", "wf");
    let dq = b.g.nodes.last_mut().unwrap();
    dq.attrs.insert("axis".into(), Attr::Int(1));
    dq.attrs.insert("block_size".into(), Attr::Int(32));
    b.init("bias", Tensor::from_f32(vec![2], vec![0.5, 1.0]).unwrap());
    b.node("Conv", &["xf", "wf", "bias"], &["c"]);
    b.finish("c", 0.25, 0);
    let g = b.run();
    let q = find(&g, "QBlockLinear");
    assert_eq!(q.attr("layout"), Some(&Attr::String("conv1x1".into())));
    assert_eq!(q.inputs.len(), 8);
}

#[test]
fn gemm_becomes_qgemm_with_scaled_bias() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    // transB: B is [N, K] = [2, 4], per output column along axis 0.
    b.init("w", t(&[2, 4], TensorData::I8(vec![1; 8])));
    b.init("s_w", Tensor::from_f32(vec![2], vec![0.1, 0.2]).unwrap());
    b.init("z_w", t(&[2], TensorData::I8(vec![0, 0])));
    b.dq("w", "s_w", "z_w", "wf");
    b.g.nodes
        .last_mut()
        .unwrap()
        .attrs
        .insert("axis".into(), Attr::Int(0));
    b.init("c", Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap());
    b.node("Gemm", &["xf", "wf", "c"], &["gm"]).attrs.extend([
        ("transB".to_string(), Attr::Int(1)),
        ("alpha".to_string(), Attr::Float(2.0)),
        ("beta".to_string(), Attr::Float(0.5)),
    ]);
    b.finish("gm", 0.25, 0);
    let g = b.run();
    let q = find(&g, "QGemm");
    assert_eq!(q.domain, MS_DOMAIN);
    assert_eq!(q.attr("transB"), Some(&Attr::Int(1)));
    // beta*c / (alpha * 0.5 * s_w): 0.5/0.1 = 5, 1.0/0.2 = 5.
    assert_eq!(
        g.initializers[&q.inputs[6]].data(),
        &TensorData::I32(vec![5, 5])
    );
    assert_eq!(g.opsets.get(MS_DOMAIN), Some(&1));
}

#[test]
fn add_mul_and_dtype_mismatch() {
    for op in ["Add", "Mul"] {
        let mut b = B::new();
        b.dq("xq", "s_x", "z_x", "xf");
        b.init("s_2", s(0.1));
        b.init("z_2", i8s(0));
        b.node("QuantizeLinear", &["x", "s_2", "z_2"], &["x2q"]);
        b.dq("x2q", "s_2", "z_2", "x2f");
        b.node(op, &["xf", "x2f"], &["a"]);
        b.finish("a", 0.25, 0);
        let g = b.run();
        let q = find(&g, &format!("QLinear{op}"));
        assert_eq!(
            q.inputs,
            ["xq", "s_x", "z_x", "x2q", "s_2", "z_2", "s_y", "z_y"]
        );
    }
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("s_2", s(0.1));
    b.init("z_2", t(&[], TensorData::U8(vec![128])));
    b.node("QuantizeLinear", &["x", "s_2", "z_2"], &["x2q"]);
    b.dq("x2q", "s_2", "z_2", "x2f");
    b.node("Add", &["xf", "x2f"], &["a"]);
    b.finish("a", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Add".to_string()));
}

#[test]
fn concat_equal_scales_stays_concat_else_qlinear_concat() {
    for (scale, want) in [(0.5, "Concat"), (0.25, "QLinearConcat")] {
        let mut b = B::new();
        b.dq("xq", "s_x", "z_x", "xf");
        b.dq("xq", "s_x", "z_x", "xf2");
        b.node("Concat", &["xf", "xf2"], &["cc"])
            .attrs
            .insert("axis".into(), Attr::Int(1));
        b.finish("cc", scale, 3);
        let g = b.run();
        let n = find(&g, want);
        assert_eq!(n.outputs, ["yq"]);
        if want == "Concat" {
            assert_eq!(n.inputs, ["xq", "xq"]);
        } else {
            assert_eq!(n.inputs.len(), 8);
            assert_eq!(n.attr("axis"), Some(&Attr::Int(1)));
        }
    }
}

#[test]
fn pools_and_unary_ops() {
    for (op, want) in [
        ("AveragePool", "QLinearAveragePool"),
        ("GlobalAveragePool", "QLinearGlobalAveragePool"),
        ("Sigmoid", "QLinearSigmoid"),
        ("LeakyRelu", "QLinearLeakyRelu"),
        ("Tanh", "QLinearLookup"),
        ("HardSwish", "QLinearLookup"),
    ] {
        let mut b = B::new();
        b.dq("xq", "s_x", "z_x", "xf");
        let n = b.node(op, &["xf"], &["u"]);
        if op == "AveragePool" {
            n.attrs
                .insert("kernel_shape".into(), Attr::Ints(vec![2, 2]));
        }
        b.finish("u", 0.25, 0);
        let g = b.run();
        let n = find(&g, want);
        assert_eq!(n.inputs, ["xq", "s_x", "z_x", "s_y", "z_y"], "{op}");
        if want == "QLinearLookup" {
            assert_eq!(n.attr("op"), Some(&Attr::String(op.into())));
            assert_eq!(n.attr("opset"), Some(&Attr::Int(13)));
        }
        if op == "AveragePool" {
            assert_eq!(n.attr("kernel_shape"), Some(&Attr::Ints(vec![2, 2])));
        }
    }
}

#[test]
fn clip_with_input_bounds_becomes_a_table_with_attributes() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("lo", s(-1.0));
    b.init("hi", s(2.0));
    b.node("Clip", &["xf", "lo", "hi"], &["u"]);
    b.finish("u", 0.25, 0);
    let g = b.run();
    let n = find(&g, "QLinearLookup");
    assert_eq!(n.attr("op.min"), Some(&Attr::Float(-1.0)));
    assert_eq!(n.attr("op.max"), Some(&Attr::Float(2.0)));

    // Runtime bounds: refused.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.node("Clip", &["xf", "x"], &["u"]);
    b.finish("u", 0.25, 0);
    assert!(ops(&b.run()).contains(&"Clip".to_string()));
}

#[test]
fn data_movement_runs_on_int8_when_parameters_match() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.node("MaxPool", &["xf"], &["mp"])
        .attrs
        .insert("kernel_shape".into(), Attr::Ints(vec![2, 2]));
    b.finish("mp", 0.5, 3);
    let g = b.run();
    assert_eq!(ops(&g), ["QuantizeLinear", "MaxPool", "DequantizeLinear"]);
    assert_eq!(find(&g, "MaxPool").inputs, ["xq"]);
    assert_eq!(find(&g, "MaxPool").outputs, ["yq"]);

    // Different output scale: stays float.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("shape", Tensor::vec_i64(vec![1, -1]));
    b.node("Reshape", &["xf", "shape"], &["rs"]);
    b.finish("rs", 0.25, 3);
    let g = b.run();
    assert_eq!(find(&g, "Reshape").inputs[0], "xf");

    // Pad with 0.0 pads with the zero point.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init("pads", Tensor::vec_i64(vec![0, 0, 1, 1, 0, 0, 1, 1]));
    b.node("Pad", &["xf", "pads"], &["pd"]);
    b.finish("pd", 0.5, 3);
    let g = b.run();
    let pad = find(&g, "Pad");
    assert_eq!(pad.inputs[0], "xq");
    assert_eq!(
        g.initializers[&pad.inputs[2]].data(),
        &TensorData::I8(vec![3])
    );

    // Resize with linear interpolation: stays float.
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.init(
        "scales",
        Tensor::from_f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]).unwrap(),
    );
    b.node("Resize", &["xf", "", "scales"], &["rz"])
        .attrs
        .insert("mode".into(), Attr::String("linear".into()));
    b.finish("rz", 0.5, 3);
    assert_eq!(find(&b.run(), "Resize").inputs[0], "xf");
}

#[test]
fn dq_q_pairs_with_equal_parameters_cancel() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.node("QuantizeLinear", &["xf", "s_x", "z_x"], &["xq2"]);
    b.dq("xq2", "s_x", "z_x", "out");
    let g = b.run();
    assert_eq!(ops(&g), ["QuantizeLinear", "DequantizeLinear"]);
    assert_eq!(g.nodes[1].inputs[0], "xq");
}

#[test]
fn pass_is_idempotent_and_respects_supported_ops() {
    let mut b = B::new();
    b.dq("xq", "s_x", "z_x", "xf");
    b.conv_weights();
    b.node("Conv", &["xf", "wf"], &["c"]);
    b.init("s_c", s(0.3));
    b.init("z_c", i8s(1));
    b.node("QuantizeLinear", &["c", "s_c", "z_c"], &["cq"]);
    b.dq("cq", "s_c", "z_c", "cf");
    b.node("Sigmoid", &["cf"], &["sg"]);
    b.finish("sg", 0.25, 0);
    let original = b.g.clone();
    let (once, r1) = fuse_qdq(b.g);
    let (twice, r2) = fuse_qdq(once.clone());
    assert!(r1.rewritten > 0);
    assert_eq!(r2.rewritten, 0);
    assert_eq!(once, twice);

    let (g, _) = fuse_qdq_with(original, &|_, op| op != "QLinearConv");
    assert!(ops(&g).contains(&"Conv".to_string()));
}

#[test]
fn old_opsets_are_left_alone() {
    let mut b = B::new();
    b.g.opsets.insert(String::new(), 9);
    b.dq("xq", "s_x", "z_x", "xf");
    b.node("Sigmoid", &["xf"], &["u"]);
    b.finish("u", 0.25, 0);
    let before = b.g.clone();
    assert_eq!(b.run(), before);
}
