use std::collections::HashMap;

use whittle_ir::{DType, Graph, Tensor};

use crate::Regularizer;

/// The training objective.
#[derive(Clone, Debug, PartialEq)]
pub enum Loss {
    /// Mean softmax cross-entropy of the `[N, C]` value `logits` against a
    /// new int64 graph input `labels` of shape `[N]` (class indices).
    SoftmaxCrossEntropy {
        /// Name of the logits value (before any Softmax).
        logits: String,
        /// Name of the labels input the training graph gets.
        labels: String,
    },
    /// Mean squared error of `output` against a new f32 graph input
    /// `target` of the same shape.
    Mse {
        /// Name of the predicted value.
        output: String,
        /// Name of the target input the training graph gets.
        target: String,
    },
}

/// How BatchNormalization nodes train.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchNormMode {
    /// Normalise with batch statistics (as PyTorch's `model.train()`); the
    /// training graph also outputs each node's batch mean and inverse
    /// standard deviation so the running statistics can be updated.
    #[default]
    Train,
    /// Keep the running statistics fixed (frozen BatchNorm, as in
    /// fine-tuning): BatchNorm is a per-channel affine map.
    Frozen,
}

/// What to train and against what.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainSpec {
    /// The loss.
    pub loss: Loss,
    /// Initializers to train; they become graph inputs of the training
    /// graph, each with a gradient output `<name>.grad`.
    pub trainable: Vec<String>,
    /// BatchNormalization behaviour.
    pub batchnorm: BatchNormMode,
    /// Static shapes for graph inputs (e.g. the batch size), overriding
    /// symbolic dims.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Forward values to keep as extra outputs (e.g. the logits, for
    /// training accuracy).
    pub keep_outputs: Vec<String>,
    /// Sparse update: trainable weight name -> fraction r in (0, 1] of its
    /// output channels that train (the first `ceil(r * C)`; axis 0 of a
    /// Conv weight or of a Gemm weight with `transB = 1`). The weight's
    /// gradient then has only those channels.
    pub channel_ratio: HashMap<String, f32>,
    /// Sparsity-inducing penalties (see [`Regularizer`]).
    pub regularizers: Vec<Regularizer>,
    /// Weight name -> 0/1 f32 mask of the same shape: masked entries stay
    /// exactly 0 (recovery fine-tuning after pruning).
    pub masks: HashMap<String, Tensor>,
}

impl TrainSpec {
    /// A spec training `trainable` for `loss`, BatchNorm in train mode.
    pub fn new(loss: Loss, trainable: Vec<String>) -> TrainSpec {
        TrainSpec {
            loss,
            trainable,
            batchnorm: BatchNormMode::Train,
            input_shapes: HashMap::new(),
            keep_outputs: Vec::new(),
            channel_ratio: HashMap::new(),
            regularizers: Vec::new(),
            masks: HashMap::new(),
        }
    }
}

/// Every f32 initializer a layer learns: weights and biases of Conv, Gemm,
/// MatMul, and the scale and bias of normalization layers, plus constant
/// operands of Add/Sub/Mul. Running statistics and shape tensors are left
/// out. Order follows the graph's initializers.
pub fn default_trainable(graph: &Graph) -> Vec<String> {
    let mut role: HashMap<&str, bool> = HashMap::new();
    for n in &graph.nodes {
        let learnable: &[usize] = match n.op_type.as_str() {
            "Conv" | "ConvTranspose" => &[1, 2],
            "Gemm" => &[0, 1, 2],
            "MatMul" | "Add" | "Sub" | "Mul" => &[0, 1],
            "BatchNormalization" | "InstanceNormalization" | "LayerNormalization" => &[1, 2],
            _ => &[],
        };
        for (i, inp) in n.inputs.iter().enumerate() {
            let e = role.entry(inp.as_str()).or_insert(true);
            *e &= learnable.contains(&i);
        }
    }
    graph
        .initializers
        .iter()
        .filter(|(name, t)| t.dtype() == DType::F32 && role.get(name.as_str()) == Some(&true))
        .map(|(name, _)| name.clone())
        .collect()
}
