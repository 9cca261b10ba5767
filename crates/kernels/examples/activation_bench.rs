//! `Activation::apply_slice` for Sigmoid, SiLU and Tanh on 1M floats in
//! [-8, 8): the scalar libm formula against each SIMD path of
//! `whittle_kernels::vmath` this CPU has, timed interleaved in the same run
//! (medians). Each timed call first copies the input into the buffer (the
//! activation is in place); the `copy` row times that alone, and the
//! `net` ratio subtracts it.
//!
//! `cargo run --release -p whittle-kernels --example activation_bench [filter]`

mod common;

use common::{rand_vec, time, times_x, Args, Budget, Table};
use whittle_kernels::vmath::MathIsa;
use whittle_kernels::Activation;

const N: usize = 1 << 20;

fn ms(secs: f64) -> String {
    format!("{:.3}", secs * 1e3)
}

fn main() {
    let args = Args::parse(&[]);
    let src: Vec<f32> = rand_vec(N, 7).iter().map(|v| v * 8.0).collect();
    let isas: Vec<MathIsa> = MathIsa::available().collect();
    let budget = Budget::new(3.0, 5, 200);
    let table = Table::new(&[10, 8, 10, 9, 9]);
    table.row(&["act", "isa", "median ms", "vs scalar", "net"]);
    for (name, act) in [
        ("sigmoid", Activation::Sigmoid),
        ("silu", Activation::Swish { alpha: 1.0 }),
        ("tanh", Activation::Tanh),
    ] {
        if !args.wants(name) {
            continue;
        }
        let mut bufs: Vec<Vec<f32>> = vec![vec![0.0; N]; isas.len() + 1];
        let (copy_buf, act_bufs) = bufs.split_first_mut().expect("copy buffer");
        let mut fs: Vec<Box<dyn FnMut() + '_>> = Vec::new();
        let src = &src;
        fs.push(Box::new(move || copy_buf.copy_from_slice(src)));
        for (isa, buf) in isas.iter().zip(act_bufs.iter_mut()) {
            let isa = *isa;
            fs.push(Box::new(move || {
                buf.copy_from_slice(src);
                act.apply_slice_with(isa, buf);
            }));
        }
        let mut refs: Vec<&mut dyn FnMut()> = fs.iter_mut().map(|f| &mut **f as _).collect();
        let stats = time(budget, &mut refs);
        let copy = stats[0].pick();
        let scalar = stats[1].pick();
        table.row(&[name, "copy", &ms(copy), "", ""]);
        for (isa, s) in isas.iter().zip(&stats[1..]) {
            let t = s.pick();
            table.row(&[
                name,
                isa.name(),
                &ms(t),
                &times_x(scalar / t),
                &times_x((scalar - copy) / (t - copy).max(1e-9)),
            ]);
        }
    }
}
