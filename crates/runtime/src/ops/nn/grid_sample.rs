//! GridSample: samples `X` (N, C, D1..Dk) at the normalized coordinates of
//! `grid` (N, O1..Ok, k), with nearest, (bi/tri)linear or (bi)cubic
//! interpolation and zeros, border or reflection padding, for 1 to 3
//! spatial dims. Follows PyTorch's grid_sampler, as onnxruntime and the
//! ONNX reference do: grid holds coordinates innermost-dim first (x, y, z),
//! nearest rounds half to even, cubic uses Keys' kernel with a = -0.75.
//! Interpolation is separable, so the taps and weights of each output
//! point are found once per dim and shared by every channel. Computed in
//! f64 and rounded once.

use whittle_ir::DType;

use crate::ops::common::elem::{input, output, with_type, Num, FLOATS};
use crate::ops::common::shape_util::numel;
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers GridSample.
pub fn register(r: &mut Registry) {
    r.add("GridSample", grid_sample);
}

/// Most spatial dims (tap tables live on the stack).
const MAX_DIMS: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Padding {
    Zeros,
    Border,
    Reflection,
}

struct GridSample {
    x_dtype: DType,
    grid_dtype: DType,
    mode: Mode,
    padding: Padding,
    align_corners: bool,
    n: usize,
    c: usize,
    /// Input spatial dims, outermost first.
    dims: Vec<usize>,
    /// Output points per batch entry.
    points: usize,
}

/// Reflects `x` into `[lo, hi]` by bouncing off the nearer border.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    let (dx, from_lo) = if x < lo {
        (lo - x, true)
    } else if x > hi {
        (x - hi, false)
    } else {
        return x;
    };
    let flips = (dx / range).trunc();
    let r = dx - flips * range;
    // An even number of flips lands measured from the border crossed.
    if (flips as u64).is_multiple_of(2) == from_lo {
        lo + r
    } else {
        hi - r
    }
}

/// Keys' cubic convolution weights for taps at -1, 0, 1, 2 from `t`.
fn cubic_weights(t: f64) -> [f64; 4] {
    const A: f64 = -0.75;
    let w = |x: f64| {
        let x = x.abs();
        if x <= 1.0 {
            ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
        } else {
            0.0
        }
    };
    [w(t + 1.0), w(t), w(1.0 - t), w(2.0 - t)]
}

impl GridSample {
    /// The source index of an integer tap, or `None` for a zero pad.
    fn tap(&self, i: i64, d: usize, lo: f64, hi: f64) -> Option<usize> {
        let len = self.dims[d] as i64;
        if (0..len).contains(&i) {
            return Some(i as usize);
        }
        match self.padding {
            Padding::Zeros => None,
            Padding::Border => Some(i.clamp(0, len - 1) as usize),
            Padding::Reflection => {
                Some((reflect(i as f64, lo, hi) as i64).clamp(0, len - 1) as usize)
            }
        }
    }

    /// Taps (source index or pad) and weights along dim `d` for the
    /// normalized coordinate `g`; returns how many taps.
    fn taps(&self, g: f64, d: usize, idx: &mut [Option<usize>; 4], w: &mut [f64; 4]) -> usize {
        let len = self.dims[d] as f64;
        let (lo, hi, mut x) = if self.align_corners {
            (0.0, len - 1.0, (g + 1.0) / 2.0 * (len - 1.0))
        } else {
            (-0.5, len - 0.5, ((g + 1.0) * len - 1.0) / 2.0)
        };
        if self.mode == Mode::Nearest {
            x = x.round_ties_even();
        }
        // Cubic pads each tap instead (PyTorch and onnxruntime; the ONNX
        // reference also clamps the coordinate, which differs for border).
        if (x < lo || x > hi) && self.mode != Mode::Cubic {
            match self.padding {
                Padding::Border => x = x.clamp(0.0, len - 1.0),
                Padding::Reflection => x = reflect(x, lo, hi),
                Padding::Zeros => {}
            }
        }
        // Far outside (or NaN): every tap is padding; avoid huge casts.
        let x = if x.is_finite() {
            x.clamp(-4.0 - len, 4.0 + 2.0 * len)
        } else {
            -4.0 - len
        };
        match self.mode {
            Mode::Nearest => {
                idx[0] = self.tap(x.trunc() as i64, d, lo, hi);
                w[0] = 1.0;
                1
            }
            Mode::Linear => {
                let x0 = x.floor();
                let t = x - x0;
                for (k, slot) in idx.iter_mut().take(2).enumerate() {
                    *slot = self.tap(x0 as i64 + k as i64, d, lo, hi);
                }
                *w = [1.0 - t, t, 0.0, 0.0];
                2
            }
            Mode::Cubic => {
                let x0 = x.floor();
                for (k, slot) in idx.iter_mut().enumerate() {
                    *slot = self.tap(x0 as i64 + k as i64 - 1, d, lo, hi);
                }
                *w = cubic_weights(x - x0);
                4
            }
        }
    }

    fn run_typed<T: Num, G: Num>(&self, x: &[T], grid: &[G], y: &mut [T]) {
        let k = self.dims.len();
        let plane: usize = self.dims.iter().product();
        let mut st = [1usize; MAX_DIMS];
        for d in (0..k.saturating_sub(1)).rev() {
            st[d] = st[d + 1] * self.dims[d + 1];
        }
        for n in 0..self.n {
            for p in 0..self.points {
                let mut idx = [[None; 4]; MAX_DIMS];
                let mut w = [[0.0f64; 4]; MAX_DIMS];
                let mut taps = [0usize; MAX_DIMS];
                let g = &grid[(n * self.points + p) * k..][..k];
                for d in 0..k {
                    // The grid lists the innermost dim first.
                    taps[d] = self.taps(g[k - 1 - d].to_f64(), d, &mut idx[d], &mut w[d]);
                }
                let combos: usize = taps[..k].iter().product();
                for c in 0..self.c {
                    let src = &x[(n * self.c + c) * plane..][..plane];
                    let mut acc = 0.0f64;
                    for combo in 0..combos {
                        let (mut rest, mut off, mut wt) = (combo, 0usize, 1.0f64);
                        let mut pad = false;
                        for d in (0..k).rev() {
                            let t = rest % taps[d];
                            rest /= taps[d];
                            match idx[d][t] {
                                Some(i) => off += i * st[d],
                                None => pad = true,
                            }
                            wt *= w[d][t];
                        }
                        if !pad {
                            acc += wt * src[off].to_f64();
                        }
                    }
                    y[(n * self.c + c) * self.points + p] = T::from_f64(acc);
                }
            }
        }
    }
}

impl Kernel for GridSample {
    fn name(&self) -> String {
        format!("grid_sample.{:?}.{:?}", self.mode, self.padding).to_lowercase()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let k = self.dims.len();
        let plane: usize = self.dims.iter().product();
        let bad = RunError::Unsupported("buffer size differs from the compiled shape");
        with_type!(self.x_dtype, [F32, F64, F16, BF16], T => {
            let x = input::<T>(&inputs[0])?;
            let y = output::<T>(&mut outputs[0])?;
            if x.len() != self.n * self.c * plane || y.len() != self.n * self.c * self.points {
                return Err(bad);
            }
            with_type!(self.grid_dtype, [F32, F64, F16, BF16], G => {
                let grid = input::<G>(&inputs[1])?;
                if grid.len() != self.n * self.points * k {
                    return Err(bad);
                }
                self.run_typed(x, grid, y);
                Ok(())
            }, _ => Err(RunError::Unsupported("GridSample grid dtype")))
        }, _ => Err(RunError::Unsupported("GridSample dtype")))
    }
}

fn grid_sample(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x_dtype = ctx.expect_dtype(0, FLOATS)?;
    let grid_dtype = ctx.expect_dtype(1, FLOATS)?;
    let (x, grid) = (ctx.fact(0)?.clone(), ctx.fact(1)?.clone());
    let r = x.rank();
    if !(3..=2 + MAX_DIMS).contains(&r) {
        return Err(ctx.err(format!(
            "X must be (N, C, D1, ...) with 1 to {MAX_DIMS} spatial dims, found shape {:?}",
            x.shape
        )));
    }
    let k = r - 2;
    if grid.rank() != r || grid.shape[0] != x.shape[0] || grid.shape[r - 1] != k {
        return Err(ctx.err(format!(
            "grid shape {:?} must be (N={}, spatial..., {k}) for X of shape {:?}",
            grid.shape, x.shape[0], x.shape
        )));
    }
    // Opset 16 names and their opset 20 renames.
    let mode = match ctx.node.attr_string("mode", "linear")?.as_str() {
        "bilinear" | "linear" => Mode::Linear,
        "nearest" => Mode::Nearest,
        "bicubic" | "cubic" => Mode::Cubic,
        m => return Err(ctx.err(format!("mode '{m}' is not supported"))),
    };
    let padding = match ctx.node.attr_string("padding_mode", "zeros")?.as_str() {
        "zeros" => Padding::Zeros,
        "border" => Padding::Border,
        "reflection" => Padding::Reflection,
        m => return Err(ctx.err(format!("padding_mode '{m}' is not supported"))),
    };
    let align_corners = match ctx.node.attr_int("align_corners", 0)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("align_corners must be 0 or 1, found {v}"))),
    };
    let mut out = vec![x.shape[0], x.shape[1]];
    out.extend(&grid.shape[1..r - 1]);
    numel(ctx, &out)?;
    numel(ctx, &x.shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(x_dtype, out)],
        kernel: Box::new(GridSample {
            x_dtype,
            grid_dtype,
            mode,
            padding,
            align_corners,
            n: x.shape[0],
            c: x.shape[1],
            dims: x.shape[2..].to_vec(),
            points: grid.shape[1..r - 1].iter().product(),
        }),
    })
}

#[cfg(test)]
#[path = "grid_sample_tests.rs"]
mod tests;
