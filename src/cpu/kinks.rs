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

/// `m·dJ_e` along a change `dz` of layer `p`'s pre-activations at example `e`: the change
/// carried forward through every ReLU beyond (switched by `mask`) to the logits, weighted
/// by the cost's slope there.
fn propagate(
    problem: &Problem,
    sens: &Sensitivity,
    (p, e): (usize, usize),
    mut dz: Array1<f64>,
    mask: Mask,
    tie: f64,
) -> f64 {
    let layers = problem.net().layers();
    for l in p..layers.len() - 1 {
        let z = sens.z_hidden[l].column(e);
        let da =
            Array1::from_iter(
                dz.iter()
                    .zip(z)
                    .map(|(&d, &z)| if active(mask, z, d, tie) { d } else { 0.0 }),
            );
        dz = layers[l + 1].w.dot(&da);
    }
    dz.dot(&sens.residual.column(e))
}

/// The four derivatives and their round-off bound from per-example parts: `linear` where
/// a step stays between kinks (the same for every mask), `crossing` where it does not.
fn assemble(parts: impl Iterator<Item = [f64; 4]>, m: f64) -> Bracket {
    let mut sums = [0.0f64; 4];
    let mut magnitude = 0.0;
    for part in parts {
        for (sum, v) in sums.iter_mut().zip(part) {
            *sum += v;
            magnitude += v.abs();
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
    let n_p = problem.net().layers()[p].w.nrows();
    let parts = (0..problem.examples()).filter_map(|e| {
        let s = col.map_or(1.0, |j| sens.inputs[p][[j, e]]);
        if s == 0.0 {
            return None;
        }
        if (eps * s).abs() < sens.reach[p][[row, e]] {
            let gain = sens.gain[p].index_axis(Axis(0), row);
            return Some([s * gain.row(e).dot(&sens.residual.column(e)); 4]);
        }
        let mut dz = Array1::zeros(n_p);
        dz[row] = s;
        Some(MASKS.map(|mask| propagate(problem, sens, (p, e), dz.clone(), mask, tie)))
    });
    assemble(parts, problem.examples() as f64)
}

/// What a directional step `change` of layer `p`'s pre-activations (`n_p × m`, per unit of
/// step) does: the bound on its central difference's truncation at `eps` while it crosses
/// no kink, and, where it crosses one, the exact one-sided and convention derivatives.
pub fn along_change(
    problem: &Problem,
    sens: &Sensitivity,
    p: usize,
    change: ndarray::ArrayView2<f64>,
    eps: f64,
    tie: f64,
) -> (f64, Option<Bracket>) {
    let layers = problem.net().layers();
    let m = problem.examples() as f64;
    let mut cubed = 0.0;
    let mut crossing = vec![false; problem.examples()];
    // Each example's derivative between kinks (`z > 0` masks: the ReLU'(0) = 0 one), from
    // the same pass that looks for crossings.
    let mut linear = vec![0.0; problem.examples()];
    for (e, crosses) in crossing.iter_mut().enumerate() {
        let mut dz = change.column(e).to_owned();
        for l in p..layers.len() - 1 {
            let z = sens.z_hidden[l].column(e);
            *crosses |= dz
                .iter()
                .zip(z)
                .any(|(&d, &z)| d != 0.0 && z.abs() <= eps * d.abs());
            let da = Array1::from_iter(
                dz.iter()
                    .zip(z)
                    .map(|(&d, &z)| if z > 0.0 { d } else { 0.0 }),
            );
            dz = layers[l + 1].w.dot(&da);
        }
        cubed += dz.iter().map(|d| d.abs().powi(3)).sum::<f64>();
        linear[e] = dz.dot(&sens.residual.column(e));
    }
    let truncation = eps * eps * super::sensitivity::TAYLOR_THIRD * cubed / m;
    if !crossing.iter().any(|&c| c) {
        return (truncation, None);
    }
    let parts = (0..problem.examples()).map(|e| {
        if crossing[e] {
            let dz = change.column(e).to_owned();
            MASKS.map(|mask| propagate(problem, sens, (p, e), dz.clone(), mask, tie))
        } else {
            [linear[e]; 4]
        }
    });
    (truncation, Some(assemble(parts, m)))
}
