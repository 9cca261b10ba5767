//! The QDQ file whittle writes computes what the report measured: compiled
//! by whittle (fuse_qdq on), it matches the fake-quant float graph; and its
//! constants follow the contract (int8 per-channel weights with zero point
//! 0, int32 bias with scale x_scale * w_scale).

use std::path::{Path, PathBuf};

use whittle_compress::{quantize, Bits, QuantizeOptions};
use whittle_ir::{DType, Graph, Tensor, TensorData};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Seeded f32 IDX images `[n, 28, 28]` in [0, 1) plus labels.
fn calib(dir: &Path, n: u32) -> PathBuf {
    let mut img = vec![0u8, 0, 0x0D, 3];
    for d in [n, 28, 28] {
        img.extend_from_slice(&d.to_be_bytes());
    }
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..n * 784 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        img.extend_from_slice(&(((s >> 40) as f32) / (1u64 << 24) as f32).to_be_bytes());
    }
    let mut lab = vec![0u8, 0, 0x08, 1];
    lab.extend_from_slice(&n.to_be_bytes());
    lab.extend((0..n).map(|i| (i % 10) as u8));
    let p = dir.join("c-images-idx3-ubyte");
    std::fs::write(&p, img).unwrap();
    std::fs::write(dir.join("c-labels-idx1-ubyte"), lab).unwrap();
    p
}

fn run(g: &Graph, x: &Tensor) -> Vec<f32> {
    let mut p = whittle_runtime::compile(g, &Default::default()).unwrap();
    p.run(std::slice::from_ref(x)).unwrap()[0]
        .as_f32()
        .unwrap()
        .to_vec()
}

fn lenet() -> (Graph, Tensor) {
    let g = whittle_onnx::load_model(&repo("tests/fixtures/lenet/model.onnx")).unwrap();
    let x = whittle_data::read_npy(&repo("tests/fixtures/lenet/input_0.npy")).unwrap();
    (g, x)
}

#[test]
fn qdq_matches_fake_quant_and_follows_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let ds = whittle_data::open_dataset(calib(dir.path(), 64)).unwrap();
    let (g, x) = lenet();
    let opts = QuantizeOptions {
        calib_samples: 64,
        ..QuantizeOptions::default()
    };
    let q = quantize(&g, &ds, &opts, &mut |_| {}).unwrap();
    // Contract: every weight DQ reads i8 with zero points 0; every bias DQ
    // reads i32 with scale = input scale * weight scale.
    let init = |n: &str| q.qdq.initializers.get(n);
    let mut weights = 0;
    for n in q
        .qdq
        .nodes
        .iter()
        .filter(|n| n.op_type == "DequantizeLinear")
    {
        let Some(t) = init(&n.inputs[0]) else {
            continue;
        };
        match t.data() {
            TensorData::I8(_) if n.name.ends_with("_weight_DequantizeLinear") => {
                weights += 1;
                let zp = init(&n.inputs[2]).unwrap().to_i64_vec().unwrap();
                assert!(zp.iter().all(|&z| z == 0));
            }
            TensorData::I32(_) => {
                let layer = q
                    .qdq
                    .nodes
                    .iter()
                    .find(|l| l.inputs.get(2) == Some(&n.outputs[0]))
                    .unwrap();
                let x_dq = q
                    .qdq
                    .nodes
                    .iter()
                    .find(|d| d.outputs[0] == layer.inputs[0])
                    .unwrap();
                let w_dq = q
                    .qdq
                    .nodes
                    .iter()
                    .find(|d| d.outputs[0] == layer.inputs[1])
                    .unwrap();
                let xs = init(&x_dq.inputs[1]).unwrap().as_f32().unwrap()[0];
                let ws = init(&w_dq.inputs[1]).unwrap().as_f32().unwrap();
                let bs = init(&n.inputs[1]).unwrap().as_f32().unwrap();
                for (b, w) in bs.iter().zip(ws) {
                    assert!((b - xs * w).abs() <= 1e-6 * b.abs(), "{b} vs {xs} * {w}");
                }
            }
            _ => {}
        }
    }
    assert_eq!(weights, 5, "2 convs + 3 gemms");
    assert_eq!(
        q.report
            .nodes
            .iter()
            .filter(|n| n.weight_bits == Some(Bits::Int8))
            .count(),
        5
    );
    // The QDQ model compiled by whittle vs its float equivalent: within a
    // few quantization steps of the logits (integer requantization rounds
    // differently from float).
    let a = run(&q.qdq, &x);
    let b = run(&q.fake_quant, &x);
    let step = {
        let out_dq = q
            .qdq
            .nodes
            .iter()
            .find(|n| n.outputs[0] == "logits")
            .unwrap();
        init(&out_dq.inputs[1]).unwrap().as_f32().unwrap()[0]
    };
    for (u, v) in a.iter().zip(&b) {
        assert!((u - v).abs() <= 4.0 * step, "{a:?} vs {b:?} (step {step})");
    }
    // And the quantized model tracks the float one on data like the
    // calibration data (the fixture's own input is Gaussian noise, outside
    // the calibrated [0, 1) range).
    let db = q.report.output_sqnr_db[0].1.unwrap();
    assert!(db > 20.0, "output SQNR {db} dB");
}

#[test]
fn int4_layers_write_block_dequantize() {
    let dir = tempfile::tempdir().unwrap();
    let ds = whittle_data::open_dataset(calib(dir.path(), 32)).unwrap();
    let (g, x) = lenet();
    let opts = QuantizeOptions {
        calib_samples: 32,
        int4: true,
        int4_group: 16,
        ..QuantizeOptions::default()
    };
    let q = quantize(&g, &ds, &opts, &mut |_| {}).unwrap();
    assert_eq!(q.qdq.opset(), 21);
    let blocked: Vec<_> = q
        .qdq
        .nodes
        .iter()
        .filter(|n| n.attr("block_size").is_some())
        .collect();
    assert_eq!(blocked.len(), 3, "the three Gemms");
    for n in blocked {
        assert_eq!(q.qdq.initializers[&n.inputs[0]].dtype(), DType::I4);
        assert_eq!(n.attr_int("axis", -1).unwrap(), 0, "stored as [K, N]");
    }
    let db = q.report.output_sqnr_db[0].1.unwrap();
    assert!(db > 10.0, "output SQNR {db} dB");
    // The int4 QDQ model compiles and runs in whittle.
    let a = run(&q.qdq, &x);
    assert_eq!(a.len(), 10);
}
