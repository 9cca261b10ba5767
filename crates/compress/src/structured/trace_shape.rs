//! How channels flow through shape and data-movement ops (Flatten,
//! Reshape, Squeeze/Unsqueeze, Concat, Split, Slice, Pad): the second half of
//! the tracer, kept apart so each file stays readable.

use super::*;

impl<'a> Tracer<'a> {
    pub(super) fn flatten(&mut self, n: &Node) -> Result<(), CompressError> {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return Ok(()) };
        let s = self.shape(x.unwrap_or("")).unwrap_or(&[]);
        let Some(k) = norm_axis(n.attr_int("axis", 1)?, s.len() + 1) else {
            self.opaque(n, "has a bad axis");
            return Ok(());
        };
        let out = n.outputs.first().map(String::as_str);
        if m.axis < k {
            if s[..k]
                .iter()
                .enumerate()
                .all(|(j, &d)| j == m.axis || d == 1)
            {
                self.set(out, ChanMap { axis: 0, ..m });
            } else {
                self.opaque(n, "merges channels with leading axes");
            }
            return Ok(());
        }
        let post: usize = s[m.axis + 1..].iter().product();
        let len: usize = s[k..].iter().product();
        if len > 1 << 24 {
            self.opaque(n, "flattens too many features to trace");
            return Ok(());
        }
        let c = m.elems.len();
        let elems = (0..len).map(|p| m.elems[(p / post) % c]).collect();
        self.set(out, ChanMap { axis: 1, elems });
        Ok(())
    }

    pub(super) fn reshape(&mut self, i: usize, n: &Node) {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return };
        let out = n.outputs.first().map(String::as_str);
        let (Some(s), Some(t), Some(target)) = (
            self.shape(x.unwrap_or("")),
            out.and_then(|o| self.shape(o)),
            self.ints(n.input(1)),
        ) else {
            return self.opaque(n, "has no known shapes");
        };
        let pre: usize = s[..m.axis].iter().product();
        let c = s[m.axis];
        let post: usize = s[m.axis + 1..].iter().product();
        let found = (0..t.len()).find_map(|b| {
            let tb = t[b];
            let ok = t[..b].iter().product::<usize>() == pre && tb >= c && tb.is_multiple_of(c);
            let q = tb / c.max(1);
            (ok && post.is_multiple_of(q) && t[b + 1..].iter().product::<usize>() == post / q)
                .then_some((b, q))
        });
        let Some((b, q)) = found else {
            return self.opaque(n, "splits or mixes the channel axis");
        };
        let allowzero = n.attr_int("allowzero", 0).unwrap_or(0) != 0;
        let entry = target.get(b).copied().unwrap_or(-1);
        let needs_edit = match entry {
            -1 => false,
            0 if !allowzero => {
                if b != m.axis || q != 1 {
                    return self.opaque(n, "copies a dimension that pruning changes");
                }
                false
            }
            _ => true,
        };
        let elems: Vec<usize> = m
            .elems
            .iter()
            .flat_map(|&e| std::iter::repeat_n(e, q))
            .collect();
        if needs_edit {
            if !n.input(1).is_some_and(|s| self.statics.contains(s)) {
                return self.opaque(n, "takes its shape from a computed value");
            }
            self.tr.edits.push(Edit {
                node: i,
                src: IntSrc::Input(1),
                index: b,
                elems: elems.clone(),
            });
        }
        self.set(out, ChanMap { axis: b, elems });
    }

    pub(super) fn squeeze(&mut self, n: &Node) -> Result<(), CompressError> {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return Ok(()) };
        let out = n.outputs.first().map(String::as_str);
        let (Some(s), Some(t)) = (self.shape(x.unwrap_or("")), out.and_then(|o| self.shape(o)))
        else {
            self.opaque(n, "has no known shapes");
            return Ok(());
        };
        let axes = match n.attr_ints("axes")? {
            Some(a) => Some(a.to_vec()),
            None => self.ints(n.input(1)),
        };
        let axis = if n.op_type == "Squeeze" {
            let axes: Vec<usize> = match axes {
                Some(a) => a.iter().filter_map(|&a| norm_axis(a, s.len())).collect(),
                None => (0..s.len()).filter(|&j| s[j] == 1).collect(),
            };
            (!axes.contains(&m.axis)).then(|| m.axis - axes.iter().filter(|&&a| a < m.axis).count())
        } else {
            let axes: Vec<usize> = axes
                .unwrap_or_default()
                .iter()
                .filter_map(|&a| norm_axis(a, t.len()))
                .collect();
            (0..t.len()).filter(|j| !axes.contains(j)).nth(m.axis)
        };
        match axis {
            Some(a) => self.set(out, ChanMap { axis: a, ..m }),
            None => self.opaque(n, "squeezes the channel axis"),
        }
        Ok(())
    }

    pub(super) fn concat(&mut self, n: &Node) -> Result<(), CompressError> {
        let inputs: Vec<&str> = n.inputs.iter().map(String::as_str).collect();
        let maps: Vec<Option<ChanMap>> = inputs.iter().map(|s| self.map(Some(s))).collect();
        if maps.iter().all(Option::is_none) {
            return Ok(());
        }
        let rank = self.shape(inputs[0]).map_or(0, <[usize]>::len);
        let Some(axis) = norm_axis(n.attr_int("axis", 0)?, rank) else {
            self.opaque(n, "has a bad axis");
            return Ok(());
        };
        let out = n.outputs.first().map(String::as_str);
        let along = maps.iter().flatten().all(|m| m.axis == axis);
        if along {
            let mut elems = Vec::new();
            for (inp, m) in inputs.iter().zip(maps) {
                match m {
                    Some(m) => elems.extend(m.elems),
                    None => {
                        let len = self.shape(inp).map_or(0, |s| s[axis]);
                        let e = self.tr.new_space(None, len);
                        let reason = format!(
                            "concat '{}' joins them with '{inp}', which channel tracing cannot follow",
                            n.name
                        );
                        self.tr.pin(&e, &reason);
                        elems.extend(e);
                    }
                }
            }
            self.set(out, ChanMap { axis, elems });
            return Ok(());
        }
        // Concatenation along another axis ties the inputs' channels.
        let first = maps[0].clone();
        let same = first.as_ref().is_some_and(|f| {
            maps.iter().all(|m| {
                m.as_ref()
                    .is_some_and(|m| m.axis == f.axis && m.elems.len() == f.elems.len())
            })
        });
        match first {
            Some(f) if same => {
                for m in maps.iter().flatten() {
                    for (&a, &b) in f.elems.iter().zip(&m.elems) {
                        self.tr.union(a, b);
                    }
                }
                self.set(out, f);
            }
            _ => self.opaque(n, "concatenates values with different channels"),
        }
        Ok(())
    }

    pub(super) fn split(&mut self, i: usize, n: &Node) -> Result<(), CompressError> {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return Ok(()) };
        let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
        let Some(axis) = norm_axis(n.attr_int("axis", 0)?, rank) else {
            self.opaque(n, "has a bad axis");
            return Ok(());
        };
        if axis != m.axis {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                self.set(Some(o), m.clone());
            }
            return Ok(());
        }
        let (sizes, src) = match n.attr_ints("split")? {
            Some(s) => (Some(s.to_vec()), IntSrc::AttrInts("split")),
            None => {
                let statics = n.input(1).is_some_and(|s| self.statics.contains(s));
                (self.ints(n.input(1)).filter(|_| statics), IntSrc::Input(1))
            }
        };
        let Some(sizes) = sizes.filter(|s| s.len() == n.outputs.len()) else {
            self.opaque(n, "splits channels into equal or computed parts");
            return Ok(());
        };
        let mut at = 0usize;
        for (k, (o, &sz)) in n.outputs.iter().zip(&sizes).enumerate() {
            let end = (at + sz.max(0) as usize).min(m.elems.len());
            let part = m.elems[at..end].to_vec();
            self.tr.edits.push(Edit {
                node: i,
                src: src.clone(),
                index: k,
                elems: part.clone(),
            });
            if !o.is_empty() {
                self.set(Some(o), ChanMap { axis, elems: part });
            }
            at = end;
        }
        Ok(())
    }

    pub(super) fn slice_op(&mut self, i: usize, n: &Node) -> Result<(), CompressError> {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return Ok(()) };
        let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
        let out = n.outputs.first().map(String::as_str);
        let from_attrs = self.g.opset() < 10;
        let get = |t: &Self, k: usize, attr: &str| -> Option<Vec<i64>> {
            if from_attrs {
                n.attr_ints(attr).ok().flatten().map(<[i64]>::to_vec)
            } else {
                t.ints(n.input(k))
            }
        };
        let (Some(starts), Some(ends)) = (get(self, 1, "starts"), get(self, 2, "ends")) else {
            self.opaque(n, "has computed bounds");
            return Ok(());
        };
        let axes = get(self, 3, "axes").unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = if from_attrs {
            None
        } else {
            self.ints(n.input(4))
        };
        let j = axes
            .iter()
            .position(|&a| norm_axis(a, rank) == Some(m.axis));
        let Some(j) = j else {
            self.set(out, m);
            return Ok(());
        };
        if steps.as_ref().is_some_and(|s| s.get(j) != Some(&1)) {
            self.opaque(n, "slices channels with a step");
            return Ok(());
        }
        let c = m.elems.len() as i64;
        let clamp = |v: i64| (if v < 0 { v + c } else { v }).clamp(0, c) as usize;
        let (s, e) = (clamp(starts[j]), clamp(ends[j]));
        let e = e.max(s);
        let statics = |k: usize| from_attrs || n.input(k).is_some_and(|v| self.statics.contains(v));
        let src = |k: usize, attr: &'static str| {
            if from_attrs {
                IntSrc::AttrInts(attr)
            } else {
                IntSrc::Input(k)
            }
        };
        let mut edits = Vec::new();
        if s > 0 {
            edits.push((1, src(1, "starts"), m.elems[..s].to_vec()));
        }
        if (e as i64) < c {
            edits.push((2, src(2, "ends"), m.elems[..e].to_vec()));
        }
        if edits.iter().any(|(k, _, _)| !statics(*k)) {
            self.opaque(n, "has computed bounds");
            return Ok(());
        }
        for (_, src, elems) in edits {
            self.tr.edits.push(Edit {
                node: i,
                src,
                index: j,
                elems,
            });
        }
        self.set(
            out,
            ChanMap {
                axis: m.axis,
                elems: m.elems[s..e].to_vec(),
            },
        );
        Ok(())
    }

    pub(super) fn pad(&mut self, n: &Node) -> Result<(), CompressError> {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return Ok(()) };
        let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
        let pads = match n.attr_ints("pads")? {
            Some(p) => Some(p.to_vec()),
            None => self.ints(n.input(1)),
        };
        let axes_given = n.input(3).is_some();
        match pads {
            Some(p)
                if !axes_given
                    && p.len() == 2 * rank
                    && p[m.axis] == 0
                    && p[m.axis + rank] == 0 =>
            {
                self.set(n.outputs.first().map(String::as_str), m);
            }
            _ => self.opaque(n, "pads the channel axis"),
        }
        Ok(())
    }
}
