use super::*;

#[test]
fn parameters_are_consumed_in_order() {
    let names: Vec<String> = ["Relu", "Affine", "LeakyRelu", "ScaledTanh", "Tanh", "Elu"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let acts = RnnAct::parse_all(&names, &[2.0, 0.3], &[5.0]).unwrap();
    assert_eq!(
        acts,
        [
            RnnAct::Relu,
            RnnAct::Affine(2.0, 5.0),
            RnnAct::LeakyRelu(0.3),
            RnnAct::ScaledTanh(1.0, 1.0),
            RnnAct::Tanh,
            RnnAct::Elu(1.0)
        ]
    );
    assert!(RnnAct::parse_all(&["Swish".to_string()], &[], &[]).is_err());
}

#[test]
fn values_match_definitions() {
    let x = -1.5f32;
    assert_eq!(RnnAct::Relu.apply(x), 0.0);
    assert_eq!(RnnAct::Affine(2.0, 1.0).apply(x), -2.0);
    assert_eq!(RnnAct::LeakyRelu(0.1).apply(x), -0.15);
    assert_eq!(RnnAct::ThresholdedRelu(1.0).apply(1.5), 1.5);
    assert_eq!(RnnAct::ThresholdedRelu(1.0).apply(0.5), 0.0);
    assert!((RnnAct::ScaledTanh(2.0, 0.5).apply(x) - 2.0 * (-0.75f32).tanh()).abs() < 1e-6);
    assert!((RnnAct::HardSigmoid(0.2, 0.5).apply(x) - 0.2).abs() < 1e-6);
    assert!((RnnAct::Elu(1.0).apply(x) - ((-1.5f32).exp() - 1.0)).abs() < 1e-6);
    assert_eq!(RnnAct::Softsign.apply(x), -0.6);
    assert!((RnnAct::Softplus.apply(x) - (1.0 + (-1.5f32).exp()).ln()).abs() < 1e-6);
    assert_eq!(RnnAct::Softplus.apply(100.0), 100.0);
    assert!((RnnAct::Sigmoid.apply(x) - 1.0 / (1.0 + 1.5f32.exp())).abs() < 1e-6);
    assert_eq!(RnnAct::Sigmoid.apply(0.0), 0.5);
}
