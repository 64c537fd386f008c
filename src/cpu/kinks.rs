//! Exact one-sided derivatives where a finite-difference step crosses a ReLU kink.
//!
//! Across a kink J is not differentiable along the step, so no finite difference estimates
//! "the" derivative; what a correct backprop may return there lies between the two
//! one-sided derivatives — or is what the ReLU'(0) = 0 or = 1 convention gives, which can
//! fall far outside them when several units sit on their kinks at once (measured up to 12×
//! their size: tests/kinks.rs). Forward-mode derivatives along `±e_i`, with each unit on
//! its kink switched on or off by the sign of its own change, give all four exactly; the
//! gradient is judged against the nearest of them (`Bracket::nearest`). None of this uses
//! the gradient under test.

use ndarray::{Array1, Axis};

use super::sensitivity::Sensitivity;
use crate::estimate::{Bracket, F64_UNIT_ROUNDOFF, ROUNDOFF_SAFETY};
use crate::problem::Problem;

/// How a unit on its kink (within the tie radius) is switched.
#[derive(Clone, Copy)]
enum Mask {
    /// Stepping forward: on when its change is positive.
    Right,
    /// Stepping backward: on when its change is negative.
    Left,
    /// ReLU'(0) = 0: on only where `z > 0`.
    Zero,
    /// ReLU'(0) = 1: on where `z ≥ 0`.
    One,
}

const MASKS: [Mask; 4] = [Mask::Right, Mask::Left, Mask::Zero, Mask::One];

/// Whether a ReLU is on for the derivative `mask`, at pre-activation `z` whose derivative
/// along the step is `dz`; `tie` is the step whose change `tie·dz` counts as reaching 0.
fn active(mask: Mask, z: f64, dz: f64, tie: f64) -> bool {
    let on_kink = z.abs() <= tie * dz.abs();
    match mask {
        Mask::Right if on_kink => dz > 0.0,
        Mask::Left if on_kink => dz < 0.0,
        Mask::Right | Mask::Left | Mask::Zero => z > 0.0,
        Mask::One => z >= 0.0,
    }
}

/// The derivatives of `J` along parameter `(p, row, col)`: examples whose step of `eps`
/// stays between kinks contribute their (shared) linear part through the row's gain; the
/// others are propagated exactly, once per mask, with units within `tie` (a step) of their
/// kink treated as on it.
pub fn bracket(
    problem: &Problem,
    sens: &Sensitivity,
    (p, row, col): (usize, usize, Option<usize>),
    eps: f64,
    tie: f64,
) -> Bracket {
    let layers = problem.net().layers();
    let last = layers.len() - 1;
    let m = problem.examples() as f64;
    let residual = &sens.sigma - problem.y();
    let mut sums = [0.0f64; 4];
    let mut magnitude = 0.0;
    for e in 0..problem.examples() {
        let s = col.map_or(1.0, |j| sens.inputs[p][[j, e]]);
        if s == 0.0 {
            continue;
        }
        let out_residual = residual.column(e);
        if (eps * s).abs() < sens.reach[p][[row, e]] {
            let gain = sens.gain[p].index_axis(Axis(0), row);
            let part: f64 = s * gain.row(e).dot(&out_residual);
            sums.iter_mut().for_each(|v| *v += part);
            magnitude += part.abs();
            continue;
        }
        for (sum, mask) in sums.iter_mut().zip(MASKS) {
            // dz at layer p: the row's own unit only.
            let mut dz = Array1::zeros(layers[p].w.nrows());
            dz[row] = s;
            for l in p..last {
                let z = sens.z_hidden[l].column(e);
                let da = Array1::from_iter(dz.iter().zip(z).map(|(&d, &z)| {
                    if active(mask, z, d, tie) {
                        d
                    } else {
                        0.0
                    }
                }));
                dz = layers[l + 1].w.dot(&da);
            }
            let part = dz.dot(&out_residual);
            *sum += part;
            magnitude += part.abs();
        }
    }
    let [right, left, relu0, relu1] = sums.map(|v| v / m);
    Bracket {
        left,
        right,
        relu0,
        relu1,
        noise: ROUNDOFF_SAFETY * F64_UNIT_ROUNDOFF * magnitude / m,
    }
}
