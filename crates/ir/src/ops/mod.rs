//! What passes need to know about an op, in one place.
//!
//! Every pass that treats ops by kind asks [`op_info`] instead of keeping its
//! own list of names: the quantizer and the QDQ rewrite ask how an op runs in
//! int8 ([`Int8Form`]), activation fusion asks whether an op is a fusable
//! activation ([`OpInfo::activation`](field@OpInfo::activation)) and whether
//! a producer applies one in its epilogue
//! ([`OpInfo::epilogue`](field@OpInfo::epilogue)), structured pruning asks how channels
//! flow through it ([`ChannelFlow`]), and autodiff asks how it differentiates
//! ([`Grad`]). The table itself is in `catalog.rs`: adding an op, or teaching
//! passes something new about one, is an entry there.
//!
//! An activation's formula and derivative live with [`Activation`] in the
//! kernels crate (kernels need them and cannot depend on the IR); this module
//! maps ONNX nodes to it.

mod catalog;

use crate::{Graph, Node};
pub use whittle_kernels::{Activation, GradInput};

/// How an op runs on int8 values without a dedicated integer kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Form {
    /// No generic form: it stays float, or a dedicated rewrite handles it
    /// (Conv, Gemm, MatMul, Add, pooling, ...).
    None,
    /// A unary op whose 256 possible int8 inputs map through a table
    /// (`whittle.QLinearLookup`); its output gets its own scale.
    Lookup,
    /// Moves or selects values without arithmetic, so it runs on the
    /// quantized values with its input's scale and zero point.
    SameScale,
}

/// How channels (axis 1) flow from an op's input to its output, for
/// structured pruning's dependency groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelFlow {
    /// Unknown: pruning pins every channel it touches.
    Pinned,
    /// Elementwise on one input: channel c in is channel c out; other inputs
    /// are parameters (pinned).
    Elementwise,
    /// Elementwise over broadcast inputs: every input's channel c is tied.
    Broadcast,
    /// Pools over space: channel c in is channel c out.
    Pool,
    /// Reduces over axes: channels pass when axis 1 is kept.
    Reduce,
    /// The structured-pruning tracer has a rule of its own for this op
    /// (Conv, Gemm, Concat, Reshape, ...).
    Rule,
}

/// How an op differentiates in the autodiff pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grad {
    /// Not differentiable by whittle: training through it is an error.
    None,
    /// An activation: `dX = dY * f'(.)` by [`Activation::derivative`], as one
    /// `ActivationGrad` node.
    Activation,
    /// The autodiff pass has a rule of its own for this op.
    Rule,
}

/// Reads an activation from a node: its attributes and, through the
/// closure, the values of constant scalar inputs (`None` when input `i` is
/// not a compile-time constant). `None` when this node's activation cannot
/// be expressed (e.g. Clip bounds computed at run time).
pub type ActivationOf = fn(&Node, &dyn Fn(usize) -> Option<f32>) -> Option<Activation>;

/// What passes know about one op. Ops without an entry get
/// [`OpInfo::DEFAULT`]: no int8 form, channels pinned, not differentiable.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    /// Operator domain (empty for ONNX's default domain).
    pub domain: &'static str,
    /// ONNX op type.
    pub op_type: &'static str,
    /// How it runs on int8 values.
    pub int8: Int8Form,
    /// How channels flow through it.
    pub channels: ChannelFlow,
    /// How it differentiates.
    pub grad: Grad,
    /// Set for elementwise activations that kernels can apply (standalone,
    /// or fused into a producer's epilogue).
    pub activation: Option<ActivationOf>,
    /// Its kernels apply a fused activation in their epilogue (Conv, Gemm,
    /// MatMul, ConvTranspose).
    pub epilogue: bool,
}

impl OpInfo {
    /// What is assumed of an op without an entry.
    pub const DEFAULT: OpInfo = OpInfo::new("", "");

    /// An entry with nothing known yet; the builders below add facts.
    pub const fn new(domain: &'static str, op_type: &'static str) -> OpInfo {
        OpInfo {
            domain,
            op_type,
            int8: Int8Form::None,
            channels: ChannelFlow::Pinned,
            grad: Grad::None,
            activation: None,
            epilogue: false,
        }
    }

    const fn int8(mut self, form: Int8Form) -> OpInfo {
        self.int8 = form;
        self
    }

    const fn channels(mut self, flow: ChannelFlow) -> OpInfo {
        self.channels = flow;
        self
    }

    const fn grad(mut self, grad: Grad) -> OpInfo {
        self.grad = grad;
        self
    }

    /// An elementwise activation: channels pass through, int8 by lookup
    /// table, differentiable by its derivative.
    const fn activation(mut self, of: ActivationOf) -> OpInfo {
        self.activation = Some(of);
        self.int8 = Int8Form::Lookup;
        self.channels = ChannelFlow::Elementwise;
        self.grad = Grad::Activation;
        self
    }

    const fn epilogue(mut self) -> OpInfo {
        self.epilogue = true;
        self
    }
}

/// What passes know about `op_type` in `domain` (`""` and `"ai.onnx"` are
/// ONNX's default domain).
pub fn op_info(domain: &str, op_type: &str) -> &'static OpInfo {
    let domain = if domain == "ai.onnx" { "" } else { domain };
    catalog::OPS
        .iter()
        .find(|o| o.op_type == op_type && o.domain == domain)
        .unwrap_or(&OpInfo::DEFAULT)
}

/// Every op with an entry.
pub fn all_ops() -> &'static [OpInfo] {
    catalog::OPS
}

impl Node {
    /// What passes know about this node's op.
    pub fn info(&self) -> &'static OpInfo {
        op_info(&self.domain, &self.op_type)
    }

    /// The activation this node computes, when its op is an activation and
    /// its parameters are known; constant inputs are looked up in `graph`'s
    /// initializers.
    pub fn as_activation(&self, graph: &Graph) -> Option<Activation> {
        let of = self.info().activation?;
        of(self, &|i| scalar_initializer(graph, self.input(i)?))
    }
}

/// The value of a one-element initializer.
pub fn scalar_initializer(graph: &Graph, name: &str) -> Option<f32> {
    graph.initializers.get(name)?.as_scalar_f32()
}

#[cfg(test)]
mod tests;
