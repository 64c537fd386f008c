//! A network coordinate's central difference and the bounds on its distance from the
//! derivative. Round-off: each evaluation's bound from the ops' own rounding
//! ([`crate::ops::Bounded`]). Truncation: Richardson's comparison of the steps `h` and
//! `2h` (their difference is three times the `h`-step's leading error term), doubled; a
//! kink a step reaches — a ReLU input or an SVM margin changing side — adds the
//! disagreement of the one-sided differences, which bounds what a kink inside the step
//! can do to a central one.

use super::{Base, Network};
use crate::ops::{Probe, U};

/// The factor over Richardson's estimate of the truncation.
const SAFETY: f64 = 2.0;

/// One step's evaluations: the cost at `θ + s₊`, `θ − s₋` with the steps actually taken.
struct Sided {
    plus: f64,
    minus: f64,
    err: f64,
    sp: f64,
    sm: f64,
    /// Where the first kink argument changed side, as a fraction of the step.
    crossing: Option<f64>,
}

impl Sided {
    fn step(&self) -> f64 {
        self.sp + self.sm
    }

    fn estimate(&self) -> f64 {
        (self.plus - self.minus) / self.step()
    }

    fn noise(&self) -> f64 {
        (self.err + U * (self.plus - self.minus).abs()) / self.step()
            + 2.0 * U * self.estimate().abs()
    }
}

/// Coordinate `index` of tensor `t` evaluated at `θ ± h` (and its penalty's change).
fn sided(net: &Network, base: &Base, (t, index): (usize, usize), h: f64) -> Sided {
    let theta = net.tensors[t].value.as_slice().expect("standard layout")[index];
    let (plus, minus) = (theta + h, theta - h);
    let (up, crossing_up) = net.rerun(base, (t, index, plus));
    let (down, crossing_down) = net.rerun(base, (t, index, minus));
    // Only this coordinate's term of the penalty changes: its change from the base,
    // taken directly.
    let c = net.tensors[t].penalty;
    let (penalty_up, penalty_down) = (
        c * (plus - theta) * (plus + theta),
        c * (minus - theta) * (minus + theta),
    );
    Sided {
        plus: up.loss + penalty_up,
        minus: down.loss + penalty_down,
        err: up.err + down.err + 3.0 * U * (penalty_up.abs() + penalty_down.abs()),
        sp: plus - theta,
        sm: theta - minus,
        crossing: match (crossing_up, crossing_down) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
    }
}

/// How many times a step that reaches a kink is shrunk to stop short of it.
const SHRINKS: usize = 4;

/// The probe of coordinate `index` of tensor `t` with step `h`, shrunk where `2h` would
/// reach a kink (a ReLU input or a pool's winner changing side) to stop short of it.
pub(super) fn probe(net: &Network, base: &Base, at: (usize, usize), h: f64) -> Probe {
    let mut h = h;
    let (mut one, mut two) = (sided(net, base, at, h), sided(net, base, at, 2.0 * h));
    for _ in 0..SHRINKS {
        match two.crossing.or(one.crossing) {
            Some(f) if f > 0.0 => {
                h *= 0.4 * f.min(two.crossing.unwrap_or(1.0));
                one = sided(net, base, at, h);
                two = sided(net, base, at, 2.0 * h);
            }
            _ => break,
        }
    }
    let (d1, d2) = (one.estimate(), two.estimate());
    let mut truncation = SAFETY * ((d2 - d1).abs() + one.noise() + two.noise()) / 3.0;
    let cost = base.pass.loss;
    let curvature = ((one.plus - cost) / one.sp - (cost - one.minus) / one.sm).abs()
        + (2.0 * one.err + 2.0 * base.pass.err) / one.sp.min(one.sm);
    // Unequal steps (θ ± h rounded) leave a second-order term.
    truncation += 0.5 * (one.sp - one.sm).abs() * curvature / one.step() * 2.0;
    if one.crossing.is_some() || two.crossing.is_some() {
        let spread = |s: &Sided| {
            ((s.plus - cost) / s.sp - (cost - s.minus) / s.sm).abs()
                + (s.err + 2.0 * base.pass.err) / s.sp.min(s.sm)
        };
        truncation += spread(&one).max(spread(&two));
    }
    Probe {
        estimate: d1,
        noise: one.noise(),
        truncation,
        kink: None,
        partial: false,
        grad_scale: 0.0,
    }
}
