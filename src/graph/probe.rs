//! A network coordinate's central difference and the bounds on its distance from the
//! derivative. Round-off: each evaluation's bound from the ops' own rounding
//! ([`crate::ops::Bounded`]). Truncation: Richardson's comparison of the steps `h`, `2h`
//! and `4h` (successive differences three times the leading error term, and in the ratio
//! 4 when the steps are small enough for it to lead), doubled; where the ratio is off, the
//! spread of the three. A kink a step would reach — a ReLU input, a pool's winner or an
//! SVM margin changing side — shrinks the step to stop short of it.

use super::{Base, Network};
use crate::ops::{Probe, U};

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

/// The probe of coordinate `index` of tensor `t` with step `h`, shrunk where a step would
/// reach a kink (a ReLU input or a pool's winner changing side) to stop short of it; a
/// step that moves a unit off a kink it sits on gives the one-sided derivatives, judged as
/// a kink's conventions.
pub(super) fn probe(net: &Network, base: &Base, at: (usize, usize), h: f64) -> Probe {
    let mut h = h;
    let evaluate = |h: f64| [1.0, 2.0, 4.0].map(|k| sided(net, base, at, k * h));
    let mut s = evaluate(h);
    for _ in 0..SHRINKS {
        // The nearest kink, as a distance along the step.
        let reach = s
            .iter()
            .zip([1.0, 2.0, 4.0])
            .filter_map(|(e, k)| e.crossing.map(|f| f * k * h))
            .fold(f64::INFINITY, f64::min);
        if !(reach > 0.0 && reach.is_finite()) {
            break;
        }
        h = 0.2 * reach;
        s = evaluate(h);
    }
    let [one, two, four] = &s;
    let cost = base.pass.loss;
    let sided_noise =
        |e: &Sided| (e.err + 2.0 * base.pass.err) / e.sp.min(e.sm) + 2.0 * U * e.estimate().abs();
    if s.iter().any(|e| e.crossing == Some(0.0)) {
        // A unit on its kink that the step moves off: no central difference estimates a
        // derivative there; the one-sided ones are what conventions choose between.
        let below = (cost - one.minus) / one.sm;
        let above = (one.plus - cost) / one.sp;
        let first_order = ((cost - two.minus) / two.sm - below).abs()
            + ((two.plus - cost) / two.sp - above).abs();
        return Probe {
            estimate: 0.5 * (below + above),
            noise: 2.0 * (sided_noise(one) + first_order),
            truncation: 0.0,
            kink: Some([below, 0.5 * (below + above), above]),
            partial: true,
            grad_scale: 0.0,
        };
    }
    let (d1, n1) = (one.estimate(), one.noise());
    let mut truncation = crate::ops::richardson_truncation(
        [d1, two.estimate(), four.estimate()],
        [n1, two.noise(), four.noise()],
    );
    let curvature = ((one.plus - cost) / one.sp - (cost - one.minus) / one.sm).abs()
        + (2.0 * one.err + 2.0 * base.pass.err) / one.sp.min(one.sm);
    // Unequal steps (θ ± h rounded) leave a second-order term.
    truncation += (one.sp - one.sm).abs() * curvature / one.step();
    if s.iter().any(|e| e.crossing.is_some()) {
        let spread =
            |e: &Sided| ((e.plus - cost) / e.sp - (cost - e.minus) / e.sm).abs() + sided_noise(e);
        truncation += spread(one).max(spread(two)).max(spread(four));
    }
    Probe {
        estimate: d1,
        noise: n1,
        truncation,
        kink: None,
        partial: false,
        grad_scale: 0.0,
    }
}
