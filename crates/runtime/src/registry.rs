use std::collections::HashMap;

use crate::op::{BuildCtx, Built};
use crate::{ops, OpError};

/// Builds a node's kernel; see [`crate::op`].
pub type BuildFn = fn(&BuildCtx<'_>) -> Result<Built, OpError>;

/// Op builders by (domain, op type).
pub struct Registry {
    builders: HashMap<(String, String), BuildFn>,
}

impl Registry {
    /// An empty registry.
    pub fn empty() -> Registry {
        Registry {
            builders: HashMap::new(),
        }
    }

    /// All ops whittle implements.
    pub fn standard() -> Registry {
        let mut r = Registry::empty();
        ops::register_all(&mut r);
        r
    }

    /// Registers an op of the default ONNX domain.
    pub fn add(&mut self, op_type: &str, build: BuildFn) {
        self.add_in_domain("", op_type, build);
    }

    /// Registers an op of `domain`.
    pub fn add_in_domain(&mut self, domain: &str, op_type: &str, build: BuildFn) {
        self.builders
            .insert((domain.to_string(), op_type.to_string()), build);
    }

    /// The builder for an op, if any. `ai.onnx` is the default domain.
    pub fn get(&self, domain: &str, op_type: &str) -> Option<BuildFn> {
        let domain = if domain == "ai.onnx" { "" } else { domain };
        self.builders
            .get(&(domain.to_string(), op_type.to_string()))
            .copied()
    }

    /// Registered op types, sorted.
    pub fn op_types(&self) -> Vec<String> {
        let mut v: Vec<String> = self.builders.keys().map(|(_, o)| o.clone()).collect();
        v.sort();
        v
    }
}
