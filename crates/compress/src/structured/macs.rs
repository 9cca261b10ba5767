//! Multiply-accumulates of Conv/Gemm/MatMul as a function of which
//! channels are kept, for the global MAC target and the report.

use whittle_ir::Graph;

use super::trace::{ChanMap, Facts, Trace};

/// A channel count: fixed, or the kept positions of a channel map.
#[derive(Clone, Debug)]
enum Count {
    Fixed(usize),
    Elems(Vec<usize>),
}

impl Count {
    fn get(&self, kept: &dyn Fn(usize) -> bool) -> u64 {
        match self {
            Count::Fixed(n) => *n as u64,
            Count::Elems(e) => e.iter().filter(|&&e| kept(e)).count() as u64,
        }
    }
}

/// MACs of one node: `factor * out * inn`.
#[derive(Clone, Debug)]
struct Term {
    factor: u64,
    out: Count,
    inn: Count,
}

/// MACs of every Conv/Gemm/MatMul of a traced graph.
#[derive(Clone, Debug, Default)]
pub(crate) struct MacModel {
    terms: Vec<Term>,
}

fn count(map: Option<&ChanMap>, axis: usize, full: usize) -> Count {
    match map {
        Some(m) if m.axis == axis => Count::Elems(m.elems.clone()),
        _ => Count::Fixed(full),
    }
}

impl MacModel {
    pub fn new(g: &Graph, facts: &Facts, tr: &Trace) -> MacModel {
        let shape = |s: Option<&str>| -> Vec<usize> {
            s.and_then(|s| facts.get(s))
                .map(|k| k.fact.shape.clone())
                .unwrap_or_default()
        };
        let map = |s: Option<&str>| s.and_then(|s| tr.maps.get(s));
        let mut terms = Vec::new();
        for n in g.nodes.iter().filter(|n| n.domain.is_empty()) {
            let (x, w) = (n.input(0), n.input(1));
            let out = n.outputs.first().map(String::as_str);
            let (xs, ws, ys) = (shape(x), shape(w), shape(out));
            let term = match n.op_type.as_str() {
                "Conv" if xs.len() >= 3 && ws.len() == xs.len() && ys.len() == xs.len() => {
                    let group = n.attr_int("group", 1).unwrap_or(1).max(1) as usize;
                    let factor = ys[0]
                        * ys[2..].iter().product::<usize>()
                        * ws[2..].iter().product::<usize>();
                    let inn = if group == 1 {
                        count(map(x), 1, xs[1])
                    } else {
                        Count::Fixed(ws[1])
                    };
                    Term {
                        factor: factor as u64,
                        out: count(map(out), 1, ys[1]),
                        inn,
                    }
                }
                "Gemm" if xs.len() == 2 && ys.len() == 2 => {
                    let trans_a = n.attr_int("transA", 0).unwrap_or(0) != 0;
                    let k_axis = usize::from(!trans_a);
                    Term {
                        factor: xs[1 - k_axis] as u64,
                        out: count(map(out), 1, ys[1]),
                        inn: count(map(x), k_axis, xs[k_axis]),
                    }
                }
                "MatMul" if !xs.is_empty() && !ys.is_empty() => {
                    let factor: usize = ys[..ys.len() - 1].iter().product();
                    Term {
                        factor: factor as u64,
                        out: count(map(out), ys.len() - 1, ys[ys.len() - 1]),
                        inn: count(map(x), xs.len() - 1, xs[xs.len() - 1]),
                    }
                }
                _ => continue,
            };
            terms.push(term);
        }
        MacModel { terms }
    }

    /// Total MACs when element `e` stays iff `kept(e)`.
    pub fn total(&self, kept: &dyn Fn(usize) -> bool) -> u64 {
        self.terms
            .iter()
            .map(|t| t.factor * t.out.get(kept) * t.inn.get(kept))
            .sum()
    }
}
