use super::*;

#[test]
fn half_encoding_matches_numpy() {
    // np.float16(v).view(np.uint16) for each v.
    let cases: [(f32, u16); 8] = [
        (1.0, 0x3c00),
        (-2.5, 0xc100),
        (65504.0, 0x7bff),
        (1e6, 0x7c00),
        (6e-8, 0x0001),
        (0.1, 0x2e66),
        (f32::NEG_INFINITY, 0xfc00),
        (1e-9, 0x0000),
    ];
    for (v, bits) in cases {
        assert_eq!(f32_to_f16(v), bits, "{v}");
    }
    assert_eq!(f32_to_bf16(1.0), 0x3f80);
    assert_eq!(f32_to_bf16(-3.0), 0xc040);
}

#[test]
fn strides_row_major() {
    assert_eq!(strides(&[2, 3, 4]), vec![12, 4, 1]);
    assert_eq!(strides(&[]), Vec::<usize>::new());
}
