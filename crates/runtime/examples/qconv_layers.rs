//! QLinearConv (int8 activations and per-channel weights, int32 bias, fused
//! Relu) against whittle's f32 Conv (bias, fused Relu) on every conv layer
//! of MobileNetV2 1.0 @ 224 and ResNet-18 @ 224, single-node kernels built
//! through the op registry exactly as compile builds them, one thread,
//! interleaved, minimum of many runs (the machine is shared).
//!
//! `cargo run --release -p whittle-runtime --example qconv_layers [mobilenet|resnet]`

use std::time::Instant;

use whittle_ir::{Attr, DType, Node, Tensor, TensorData};
use whittle_runtime::{
    BuildCtx, Built, Fact, InputFact, Kernel, Parallel, Registry, RunCtx, View, ViewMut,
};

/// (cin, cout, groups, input size, kernel, stride, count).
type Layer = (usize, usize, usize, usize, usize, usize, usize);

fn mobilenet_v2() -> Vec<Layer> {
    let mut v = vec![(3, 32, 1, 224, 3, 2, 1)];
    let (mut cin, mut hw) = (32, 112);
    for (t, c, n, s) in [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ] {
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let hidden = cin * t;
            if t != 1 {
                v.push((cin, hidden, 1, hw, 1, 1, 1));
            }
            v.push((hidden, hidden, hidden, hw, 3, stride, 1));
            hw /= stride;
            v.push((hidden, c, 1, hw, 1, 1, 1));
            cin = c;
        }
    }
    v.push((320, 1280, 1, 7, 1, 1, 1));
    merge(v)
}

fn resnet18() -> Vec<Layer> {
    let mut v = vec![(3, 64, 1, 224, 7, 2, 1)];
    let mut hw = 56;
    let mut cin = 64;
    for (c, s) in [(64, 1), (128, 2), (256, 2), (512, 2)] {
        for b in 0..2 {
            let stride = if b == 0 { s } else { 1 };
            v.push((cin, c, 1, hw, 3, stride, 1));
            if stride != 1 || cin != c {
                v.push((cin, c, 1, hw, 1, stride, 1));
            }
            hw /= stride;
            v.push((c, c, 1, hw, 3, 1, 1));
            cin = c;
        }
    }
    merge(v)
}

/// Counts identical layers once.
fn merge(v: Vec<Layer>) -> Vec<Layer> {
    let mut out: Vec<Layer> = Vec::new();
    for l in v {
        match out
            .iter_mut()
            .find(|o| (o.0, o.1, o.2, o.3, o.4, o.5) == (l.0, l.1, l.2, l.3, l.4, l.5))
        {
            Some(o) => o.6 += 1,
            None => out.push(l),
        }
    }
    out
}

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn conv_node(op: &str, n_inputs: usize, groups: usize, k: usize, stride: usize) -> Node {
    let names: Vec<String> = (0..n_inputs).map(|i| format!("in{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let p = (k / 2) as i64;
    Node::new("conv", op, &names, &["y"])
        .with_attr("group", Attr::Int(groups as i64))
        .with_attr("strides", Attr::Ints(vec![stride as i64; 2]))
        .with_attr("pads", Attr::Ints(vec![p; 4]))
        .with_activation(whittle_ir::Activation::Relu)
}

/// A built kernel with its inputs, output and scratch.
struct Ready {
    kernel: Box<dyn Kernel>,
    inputs: Vec<Tensor>,
    out: Tensor,
    scratch: Vec<u64>,
}

fn build(node: &Node, inputs: Vec<Tensor>) -> Ready {
    let reg = Registry::standard();
    let f = reg.get("", &node.op_type).expect("registered");
    let ctx = BuildCtx {
        node,
        inputs: inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Some(InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: (i > 0).then_some(t),
                })
            })
            .collect(),
        opset: 13,
    };
    let Built::Kernel { outputs, kernel } = f(&ctx).expect("builds") else {
        panic!("constant");
    };
    let out = Tensor::zeros(outputs[0].dtype, outputs[0].shape.clone()).unwrap();
    let scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8)];
    Ready {
        kernel,
        inputs,
        out,
        scratch,
    }
}

impl Ready {
    fn run(&mut self, par: &Parallel) {
        let views: Vec<View<'_>> = self.inputs.iter().map(View::of).collect();
        let mut outs = [ViewMut::of(&mut self.out)];
        let mut rc = RunCtx {
            scratch: bytemuck::cast_slice_mut(&mut self.scratch),
            par,
        };
        self.kernel.run(&views, &mut outs, &mut rc).unwrap();
    }
}

fn main() {
    let which = std::env::args().nth(1);
    let par = Parallel::single();
    let mut s = 1u64;
    for (model, layers) in [
        ("MobileNetV2 1.0 @ 224", mobilenet_v2()),
        ("ResNet-18 @ 224", resnet18()),
    ] {
        if which
            .as_deref()
            .is_some_and(|w| !model.to_lowercase().contains(w))
        {
            continue;
        }
        println!("\n{model}: conv layers, 1 thread (min of runs)");
        println!(
            "{:<26} {:>4} {:>9} {:>9} {:>7} {:>7} {:>6}  int8 kernel",
            "layer", "n", "f32 us", "i8 us", "f32 GM/s", "i8 GM/s", "i8/f32"
        );
        let (mut tf, mut tq, mut macs_all) = (0.0, 0.0, 0.0);
        for &(cin, cout, groups, hw, k, stride, count) in &layers {
            let cg = cin / groups;
            let x_f: Vec<f32> = (0..cin * hw * hw)
                .map(|_| (xorshift(&mut s) % 1000) as f32 / 1000.0)
                .collect();
            let w_f: Vec<f32> = (0..cout * cg * k * k)
                .map(|_| (xorshift(&mut s) % 1000) as f32 / 500.0 - 1.0)
                .collect();
            let f32_inputs = vec![
                Tensor::from_f32(vec![1, cin, hw, hw], x_f).unwrap(),
                Tensor::from_f32(vec![cout, cg, k, k], w_f).unwrap(),
                Tensor::from_f32(vec![cout], vec![0.01; cout]).unwrap(),
            ];
            let mut fk = build(&conv_node("Conv", 3, groups, k, stride), f32_inputs);
            let t = |d: TensorData, shape: Vec<usize>| Tensor::new(shape, d).unwrap();
            let x_q: Vec<i8> = (0..cin * hw * hw).map(|_| xorshift(&mut s) as i8).collect();
            let w_q: Vec<i8> = (0..cout * cg * k * k)
                .map(|_| xorshift(&mut s) as i8)
                .collect();
            let q_inputs = vec![
                t(TensorData::I8(x_q), vec![1, cin, hw, hw]),
                Tensor::scalar_f32(0.02),
                t(TensorData::I8(vec![-5]), vec![]),
                t(TensorData::I8(w_q), vec![cout, cg, k, k]),
                Tensor::from_f32(vec![cout], vec![0.003; cout]).unwrap(),
                t(TensorData::I8(vec![0; cout]), vec![cout]),
                Tensor::scalar_f32(0.05 * ((cg * k * k) as f32).sqrt()),
                t(TensorData::I8(vec![-128]), vec![]),
                t(TensorData::I32(vec![100; cout]), vec![cout]),
            ];
            let mut qk = build(&conv_node("QLinearConv", 9, groups, k, stride), q_inputs);
            assert_eq!(qk.out.dtype(), DType::I8);
            let macs = fk.kernel.macs() as f64;
            let (mut bf, mut bq) = (f64::INFINITY, f64::INFINITY);
            fk.run(&par);
            qk.run(&par);
            let t0 = Instant::now();
            fk.run(&par);
            let reps = ((0.25 / t0.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(5, 2000);
            for _ in 0..reps {
                let t = Instant::now();
                fk.run(&par);
                bf = bf.min(t.elapsed().as_secs_f64());
                let t = Instant::now();
                qk.run(&par);
                bq = bq.min(t.elapsed().as_secs_f64());
            }
            tf += bf * count as f64;
            tq += bq * count as f64;
            macs_all += macs * count as f64;
            println!(
                "{:<26} {:>4} {:>9.1} {:>9.1} {:>7.1} {:>7.1} {:>5.2}x  {}",
                format!("{cin}->{cout} g{groups} {k}x{k}s{stride} @{hw}"),
                count,
                bf * 1e6,
                bq * 1e6,
                macs / bf * 1e-9,
                macs / bq * 1e-9,
                bq / bf,
                qk.kernel.name()
            );
        }
        println!(
            "{:<26} {:>4} {:>9.1} {:>9.1} {:>7.1} {:>7.1} {:>5.2}x  (int8 latency / f32)",
            "total",
            "",
            tf * 1e6,
            tq * 1e6,
            macs_all / tf * 1e-9,
            macs_all / tq * 1e-9,
            tq / tf
        );
    }
}
