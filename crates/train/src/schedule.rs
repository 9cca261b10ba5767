//! Learning-rate schedules, evaluated per step.
//!
//! A schedule is a pure function of the global step, so a resumed run
//! recomputes the same rate from the step it restarts at: nothing about
//! the schedule needs saving beyond the step count.

use std::f64::consts::PI;
use std::fmt;
use std::str::FromStr;

/// The shape of the learning rate over training, after any warmup.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScheduleKind {
    /// The base rate throughout.
    Constant,
    /// Multiply by `gamma` every `every` epochs (`torch.optim.lr_scheduler.StepLR`
    /// stepped once per epoch).
    Step {
        /// Epochs between decays (at least 1).
        every: usize,
        /// Factor applied at each decay.
        gamma: f32,
    },
    /// Half a cosine from the base rate down to 0 at the last step
    /// (`CosineAnnealingLR` with `eta_min = 0`, stepped per step).
    Cosine,
}

/// Why a schedule text or configuration is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("learning-rate schedule: {0}")]
pub struct ScheduleError(String);

impl FromStr for ScheduleKind {
    type Err = ScheduleError;

    /// Parses `constant`, `cosine` or `step:EVERY:GAMMA`.
    fn from_str(s: &str) -> Result<ScheduleKind, ScheduleError> {
        let bad = |why: &str| ScheduleError(format!("'{s}': {why}"));
        match s.trim() {
            "constant" => return Ok(ScheduleKind::Constant),
            "cosine" => return Ok(ScheduleKind::Cosine),
            _ => {}
        }
        let parts: Vec<&str> = s.trim().split(':').collect();
        let ["step", every, gamma] = parts.as_slice() else {
            return Err(bad("expected constant, cosine or step:EVERY:GAMMA"));
        };
        let every: usize = every
            .parse()
            .map_err(|_| bad("EVERY must be a whole number of epochs"))?;
        let gamma: f32 = gamma.parse().map_err(|_| bad("GAMMA must be a number"))?;
        if every == 0 {
            return Err(bad("EVERY must be at least 1"));
        }
        if !(gamma.is_finite() && gamma > 0.0) {
            return Err(bad("GAMMA must be a positive number"));
        }
        Ok(ScheduleKind::Step { every, gamma })
    }
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScheduleKind::Constant => write!(f, "constant"),
            ScheduleKind::Step { every, gamma } => write!(f, "step:{every}:{gamma}"),
            ScheduleKind::Cosine => write!(f, "cosine"),
        }
    }
}

/// A learning rate for every step of a run of `epochs * steps_per_epoch`
/// steps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LrSchedule {
    /// The peak (base) learning rate.
    pub base: f32,
    /// The shape after warmup.
    pub kind: ScheduleKind,
    /// Steps of linear warmup: step `s < warmup` uses `base * (s + 1) / warmup`.
    pub warmup_steps: u64,
    /// Steps in one epoch.
    pub steps_per_epoch: u64,
    /// Steps in the whole run.
    pub total_steps: u64,
}

impl LrSchedule {
    /// A schedule over `epochs` epochs of `steps_per_epoch` steps with
    /// `warmup_epochs` (may be fractional) of linear warmup.
    pub fn new(
        base: f32,
        kind: ScheduleKind,
        warmup_epochs: f32,
        steps_per_epoch: u64,
        epochs: u64,
    ) -> Result<LrSchedule, ScheduleError> {
        if !(base.is_finite() && base > 0.0) {
            return Err(ScheduleError(format!(
                "the learning rate must be a positive number, got {base}"
            )));
        }
        if !(warmup_epochs.is_finite() && warmup_epochs >= 0.0) {
            return Err(ScheduleError(format!(
                "warmup must be a non-negative number of epochs, got {warmup_epochs}"
            )));
        }
        let total_steps = steps_per_epoch.saturating_mul(epochs);
        let warmup_steps = (f64::from(warmup_epochs) * steps_per_epoch as f64).round() as u64;
        if warmup_steps > total_steps {
            return Err(ScheduleError(format!(
                "warmup of {warmup_epochs} epochs is longer than the run ({epochs} epochs)"
            )));
        }
        Ok(LrSchedule {
            base,
            kind,
            warmup_steps,
            steps_per_epoch: steps_per_epoch.max(1),
            total_steps,
        })
    }

    /// The learning rate of global step `step` (0-based).
    pub fn lr(&self, step: u64) -> f32 {
        let base = f64::from(self.base);
        if step < self.warmup_steps {
            return (base * (step + 1) as f64 / self.warmup_steps as f64) as f32;
        }
        let lr = match self.kind {
            ScheduleKind::Constant => base,
            ScheduleKind::Step { every, gamma } => {
                let decays = step / self.steps_per_epoch / every as u64;
                base * f64::from(gamma).powi(decays.min(i32::MAX as u64) as i32)
            }
            ScheduleKind::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps);
                if span == 0 {
                    base
                } else {
                    let t = (step - self.warmup_steps).min(span) as f64 / span as f64;
                    0.5 * base * (1.0 + (PI * t).cos())
                }
            }
        };
        lr as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-7 * b.abs().max(1e-3)
    }

    #[test]
    fn parses_and_prints() {
        assert_eq!("constant".parse(), Ok(ScheduleKind::Constant));
        assert_eq!("cosine".parse(), Ok(ScheduleKind::Cosine));
        let s: ScheduleKind = "step:3:0.5".parse().unwrap();
        assert_eq!(
            s,
            ScheduleKind::Step {
                every: 3,
                gamma: 0.5
            }
        );
        assert_eq!(s.to_string(), "step:3:0.5");
        for bad in ["step:0:0.5", "step:2", "step:x:0.1", "step:2:-1", "linear"] {
            let e = bad.parse::<ScheduleKind>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn constant_is_flat() {
        let s = LrSchedule::new(0.1, ScheduleKind::Constant, 0.0, 10, 5).unwrap();
        assert!((0..60).all(|k| s.lr(k) == 0.1));
    }

    /// StepLR(step_size=2, gamma=0.1) stepped per epoch: lr = base * 0.1^floor(epoch/2).
    #[test]
    fn step_decays_per_epoch() {
        let kind = "step:2:0.1".parse().unwrap();
        let s = LrSchedule::new(0.5, kind, 0.0, 7, 6).unwrap();
        for step in 0..42u64 {
            let epoch = step / 7;
            let want = 0.5 * 0.1f64.powi((epoch / 2) as i32);
            assert!(close(s.lr(step), want), "step {step}: {}", s.lr(step));
        }
    }

    /// Linear warmup to base, then base/2 (1 + cos(pi t / T)) over the rest.
    #[test]
    fn cosine_with_warmup_follows_closed_form() {
        let s = LrSchedule::new(0.2, ScheduleKind::Cosine, 1.0, 10, 5).unwrap();
        assert_eq!((s.warmup_steps, s.total_steps), (10, 50));
        for step in 0..10u64 {
            assert!(close(s.lr(step), 0.2 * (step + 1) as f64 / 10.0));
        }
        assert!(close(s.lr(10), 0.2));
        assert!(close(s.lr(30), 0.1)); // halfway through the cosine
        for step in 10..50u64 {
            let t = (step - 10) as f64 / 40.0;
            let want = 0.1 * (1.0 + (PI * t).cos());
            assert!(close(s.lr(step), want), "step {step}");
        }
        assert!(s.lr(50) < 1e-9 && s.lr(1000) < 1e-9);
    }

    #[test]
    fn rejects_bad_settings() {
        let k = ScheduleKind::Constant;
        assert!(LrSchedule::new(0.0, k, 0.0, 10, 1).is_err());
        assert!(LrSchedule::new(f32::NAN, k, 0.0, 10, 1).is_err());
        assert!(LrSchedule::new(0.1, k, -1.0, 10, 1).is_err());
        let e = LrSchedule::new(0.1, k, 3.0, 10, 2).unwrap_err();
        assert!(e.to_string().contains("longer than the run"), "{e}");
    }
}
