//! QuantizeLinear / DequantizeLinear / DynamicQuantizeLinear against
//! onnx.reference values printed by `scripts/testgen/quantize_cases_gen.py`.

use whittle_ir::{Attr, Tensor, TensorData};

use crate::ops::testing::test_support::{build_err, eval, tf, tu8};

fn t(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

#[test]
fn quantize_blocked_int4_with_short_last_block() {
    let x = tf(
        &[2, 5],
        &[-3.5, -0.25, 0.25, 0.75, 1.0, 2.5, -2.5, 7.9, -9.0, 0.5],
    );
    let s = tf(&[2, 3], &[0.5, 1.0, 0.25, 0.5, 2.0, 1.0]);
    let zp = t(&[2, 3], TensorData::I4(vec![1, -2, 0, 0, 3, -1]));
    let attrs = [("axis", Attr::Int(1)), ("block_size", Attr::Int(2))];
    let y = eval(
        "QuantizeLinear",
        21,
        &[Some(x), Some(s), Some(zp)],
        1,
        &attrs,
    )
    .unwrap();
    let want = vec![-6, 1, -2, -1, 4, 5, -5, 7, -1, -1];
    assert_eq!(y[0], t(&[2, 5], TensorData::I4(want)));
}

#[test]
fn quantize_per_axis_rounds_half_to_even_and_saturates() {
    let x = tf(
        &[3, 4],
        &[
            0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300.0, -300.0, 0.3, 0.7, 1.3, 2.6,
        ],
    );
    let s = tf(&[3], &[1.0, 1.0, 0.5]);
    let zp = tu8(&[3], &[128, 0, 10]);
    let y = eval(
        "QuantizeLinear",
        13,
        &[Some(x), Some(s), Some(zp)],
        1,
        &[("axis", Attr::Int(0))],
    )
    .unwrap();
    let want = [128, 130, 130, 128, 0, 0, 255, 0, 11, 11, 13, 15];
    assert_eq!(y[0], tu8(&[3, 4], &want));
}

#[test]
fn quantize_output_dtype_without_zero_point() {
    let x = tf(&[3], &[1000.0, -70000.0, 3.49]);
    let y = eval(
        "QuantizeLinear",
        21,
        &[Some(x), Some(Tensor::scalar_f32(0.5))],
        1,
        &[("output_dtype", Attr::Int(5))],
    )
    .unwrap();
    assert_eq!(y[0], t(&[3], TensorData::I16(vec![2000, -32768, 7])));
}

#[test]
fn dequantize_blocked_uint4() {
    let x = t(
        &[2, 5],
        TensorData::U4(vec![0, 15, 7, 8, 3, 1, 2, 14, 9, 4]),
    );
    let s = tf(&[2, 3], &[0.5, 0.25, 2.0, 1.0, 0.125, 3.0]);
    let zp = t(&[2, 3], TensorData::U4(vec![8, 1, 0, 15, 4, 2]));
    let attrs = [("axis", Attr::Int(-1)), ("block_size", Attr::Int(2))];
    let y = eval(
        "DequantizeLinear",
        21,
        &[Some(x), Some(s), Some(zp)],
        1,
        &attrs,
    )
    .unwrap();
    let want = [-4.0, 3.5, 1.5, 1.75, 6.0, -14.0, -13.0, 1.25, 0.625, 6.0];
    assert_eq!(y[0], tf(&[2, 5], &want));
}

#[test]
fn dequantize_int16_per_tensor() {
    let x = t(&[4], TensorData::I16(vec![-32768, 0, 32767, 100]));
    let zp = t(&[], TensorData::I16(vec![-5]));
    let y = eval(
        "DequantizeLinear",
        21,
        &[Some(x), Some(Tensor::scalar_f32(0.01)), Some(zp)],
        1,
        &[],
    )
    .unwrap();
    let want = [-327.63, 0.049_999_997, 327.72, 1.05];
    assert_eq!(y[0], tf(&[4], &want));
}

#[test]
fn dynamic_quantize() {
    let x = tf(&[2, 2], &[1.0, -2.0, 0.3, 5.0]);
    let y = eval("DynamicQuantizeLinear", 11, &[Some(x)], 3, &[]).unwrap();
    assert_eq!(y[0], tu8(&[2, 2], &[109, 0, 84, 255]));
    assert_eq!(y[1], Tensor::scalar_f32(0.027_450_98));
    assert_eq!(y[2], tu8(&[], &[73]));
}

#[test]
fn bad_parameters_are_named() {
    let x = || Some(tf(&[2, 3], &[0.0; 6]));
    let err = build_err(
        "QuantizeLinear",
        13,
        &[x(), Some(tf(&[2], &[1.0, 1.0]))],
        &[],
    );
    assert!(err.contains("per-axis scale must have shape [3]"), "{err}");
    let err = build_err("QuantizeLinear", 10, &[x(), Some(tf(&[3], &[1.0; 3]))], &[]);
    assert!(err.contains("scalar before opset 13"), "{err}");
    let err = build_err(
        "QuantizeLinear",
        13,
        &[x(), Some(tf(&[2, 2], &[1.0; 4]))],
        &[("block_size", Attr::Int(2))],
    );
    assert!(err.contains("block_size needs opset 21"), "{err}");
    let err = build_err(
        "QuantizeLinear",
        21,
        &[x(), Some(tf(&[2, 1], &[1.0; 2]))],
        &[("block_size", Attr::Int(2))],
    );
    assert!(
        err.contains("blocked scale must have shape [2, 2]"),
        "{err}"
    );
    let err = build_err(
        "QuantizeLinear",
        21,
        &[x(), Some(Tensor::scalar_f32(1.0)), Some(tu8(&[], &[0]))],
        &[("output_dtype", Attr::Int(3))],
    );
    assert!(err.contains("differs from the zero point"), "{err}");
    let err = build_err(
        "DequantizeLinear",
        13,
        &[Some(tf(&[1], &[0.0])), Some(Tensor::scalar_f32(1.0))],
        &[],
    );
    assert!(err.contains("dtype f32"), "{err}");
    let q = Some(t(&[2], TensorData::I8(vec![1, 2])));
    let err = build_err(
        "DequantizeLinear",
        13,
        &[q, Some(Tensor::scalar_f32(1.0)), Some(tu8(&[], &[0]))],
        &[],
    );
    assert!(
        err.contains("zero point dtype u8 differs from x dtype i8"),
        "{err}"
    );
}
