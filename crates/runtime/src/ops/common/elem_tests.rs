use super::*;

#[test]
fn integer_semantics() {
    // Independent reference: Python's // and % and C's fmod.
    assert_eq!(7i32.div(-2), -3);
    assert_eq!((-7i32).div(2), -3);
    assert_eq!(5i32.div(0), 0);
    assert_eq!(i32::MIN.div(-1), i32::MIN);
    assert_eq!((-4i32).modulo(3), 2); // Python: -4 % 3 == 2
    assert_eq!(4i32.modulo(-3), -2); // Python: 4 % -3 == -2
    assert_eq!((-4i32).fmod(3), -1); // C: fmod(-4, 3) == -1
    assert_eq!(7u8.modulo(0), 0);
    assert_eq!(200u8.add(100), 44);
    assert_eq!(Num::abs(i8::MIN), i8::MIN);
    assert_eq!((-5i16).sign(), -1);
    assert_eq!(0u16.sign(), 0);
}

#[test]
fn float_semantics() {
    assert_eq!((-4.5f32).modulo(2.0), 1.5); // Python: -4.5 % 2 == 1.5
    assert_eq!((-4.5f64).fmod(2.0), -0.5);
    assert!(1.0f32.min_nan(f32::NAN).is_nan());
    assert!(f64::NAN.max_nan(1.0).is_nan());
    assert_eq!(0.0f32.sign(), 0.0);
    assert!(f32::NAN.sign().is_nan());
    assert_eq!(Num::abs(f16::from_f32(-2.5)), f16::from_f32(2.5));
    assert_eq!(
        f16::from_f32(1.0).add(f16::from_f32(0.5)),
        f16::from_f32(1.5)
    );
    assert!(f16::NAN.nonzero() && !bf16::ZERO.nonzero());
}

#[test]
fn with_type_dispatch() {
    let size = |dt: DType| with_type!(dt, [F32, F16, I64], T => std::mem::size_of::<T>(), _ => 0);
    assert_eq!(
        (
            size(DType::F32),
            size(DType::F16),
            size(DType::I64),
            size(DType::U8)
        ),
        (4, 2, 8, 0)
    );
}
