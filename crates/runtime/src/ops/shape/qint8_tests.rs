//! The data-movement ops `fuse_qdq` runs on quantized values directly
//! accept i8 and u8 and move the bytes unchanged.

use whittle_ir::{Attr, DType, Tensor, TensorData};

use crate::ops::testing::test_support::{eval, tl};

fn q8(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = match dtype {
        DType::I8 => TensorData::I8((0..n).map(|i| (i as i32 * 37 - 100) as i8).collect()),
        _ => TensorData::U8((0..n).map(|i| (i * 37 % 256) as u8).collect()),
    };
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn i8_elems(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().unwrap()
}

#[test]
fn data_movement_accepts_int8() {
    for dt in [DType::I8, DType::U8] {
        let x = q8(dt, &[1, 2, 3, 4]);
        let v = i8_elems(&x);
        let one = |op: &str, extra: Vec<Option<Tensor>>, attrs: &[(&str, Attr)], opset: i64| {
            let mut ins = vec![Some(x.clone())];
            ins.extend(extra);
            let out = eval(op, opset, &ins, 1, attrs).unwrap_or_else(|e| panic!("{op} {dt}: {e}"));
            assert_eq!(out[0].dtype(), dt, "{op}");
            out.into_iter().next().unwrap()
        };
        assert_eq!(
            i8_elems(&one("Reshape", vec![Some(tl(&[2], &[6, 4]))], &[], 13)),
            v
        );
        assert_eq!(i8_elems(&one("Flatten", vec![], &[], 13)), v);
        assert_eq!(
            i8_elems(&one("Squeeze", vec![Some(tl(&[1], &[0]))], &[], 13)),
            v
        );
        assert_eq!(
            i8_elems(&one("Unsqueeze", vec![Some(tl(&[1], &[0]))], &[], 13)),
            v
        );
        let t = one(
            "Transpose",
            vec![],
            &[("perm", Attr::Ints(vec![0, 1, 3, 2]))],
            13,
        );
        assert_eq!(t.shape(), [1, 2, 4, 3]);
        assert_eq!(i8_elems(&t)[1], v[4]);
        let s = one(
            "Slice",
            vec![
                Some(tl(&[1], &[3])),
                Some(tl(&[1], &[4])),
                Some(tl(&[1], &[3])),
            ],
            &[],
            13,
        );
        assert_eq!(i8_elems(&s), [v[3], v[7], v[11], v[15], v[19], v[23]]);
        let c = eval(
            "Concat",
            13,
            &[Some(x.clone()), Some(x.clone())],
            1,
            &[("axis", Attr::Int(1))],
        )
        .unwrap();
        assert_eq!(c[0].shape(), [1, 4, 3, 4]);
        let sp = eval(
            "Split",
            13,
            &[Some(x.clone())],
            2,
            &[("axis", Attr::Int(1))],
        )
        .unwrap();
        assert_eq!(i8_elems(&sp[1]), v[12..]);
        let pad_value = Tensor::new(
            vec![],
            match dt {
                DType::I8 => TensorData::I8(vec![-7]),
                _ => TensorData::U8(vec![9]),
            },
        )
        .unwrap();
        let p = one(
            "Pad",
            vec![
                Some(tl(&[8], &[0, 0, 0, 1, 0, 0, 0, 0])),
                Some(pad_value.clone()),
            ],
            &[],
            13,
        );
        assert_eq!(p.shape(), [1, 2, 3, 5]);
        assert_eq!(i8_elems(&p)[0], i8_elems(&pad_value)[0]);
        assert_eq!(i8_elems(&p)[1], v[0]);
        let scales = Tensor::from_f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]).unwrap();
        let r = one(
            "Resize",
            vec![None, Some(scales)],
            &[("mode", Attr::String("nearest".into()))],
            13,
        );
        assert_eq!(r.shape(), [1, 2, 6, 8]);
        assert_eq!(i8_elems(&r)[..4], [v[0], v[0], v[1], v[1]]);
        let m = one(
            "MaxPool",
            vec![],
            &[("kernel_shape", Attr::Ints(vec![1, 2]))],
            13,
        );
        assert_eq!(m.shape(), [1, 2, 3, 3]);
    }
}
