//! Training for whittle, compiled rather than interpreted.
//!
//! [`build_training_graph`] turns a forward [`Graph`](whittle_ir::Graph)
//! plus a [`TrainSpec`] (the loss and the trainable initializers) into a
//! [`TrainGraph`]: an ordinary graph whose trainable weights are inputs and
//! whose outputs are the loss and one gradient per weight. Backward nodes
//! are the ops of the `whittle.grad` domain of `whittle-runtime`, so the
//! training graph compiles, plans its memory and runs like any inference
//! graph. Gradient work that no trainable tensor needs is never emitted.
//!
//! [`fuse_updates`] adds the [`Sgd`] or [`Adam`] update node right after
//! each weight gradient, and the weights, optimizer slots and running
//! statistics become persistent state of the compiled plan; [`Trainer`]
//! compiles that graph once and steps it over batches of a
//! [`whittle_data::Dataset`].

mod autodiff;
pub mod checkpoint;
mod error;
mod memory;
mod optim;
mod qas;
pub mod regularize;
mod schedule;
mod scheme;
mod spec;
mod trainer;

pub use autodiff::{build_training_graph, BatchNormStats, TrainGraph};
pub use autodiff::{fuse_updates, FuseOptions, FusedGraph, StateRole, StateTensor};
pub use checkpoint::{epoch_order, fingerprint, Checkpoint, CheckpointError};
pub use error::TrainError;
pub use memory::plan_training_memory_with;
pub use optim::{Adam, Optimizer, Sgd};
pub use optim::{Slot, UpdateRule};
pub use qas::{
    layer_tensors, quantized_tensors, rematerialize_dequantize, QasSgd, QuantTensor, Rounding,
};
pub use regularize::{zero_groups, Groups, Penalty, Regularizer};
pub use schedule::{LrSchedule, ScheduleError, ScheduleKind};
pub use scheme::{
    LayerRule, LayerTraining, RegularizerConfig, ResolvedScheme, SchemeMode, UpdateScheme,
};
pub use spec::{default_trainable, BatchNormMode, Loss, TrainSpec};
pub use trainer::{plan_training_memory, TrainMemory, TrainState};
pub use trainer::{StepStats, Trainer, TrainerOptions};
