//! Directional checks: `(J(θ + hv) − J(θ − hv))/2h` for K random unit directions by whole
//! forward passes, each with the cost's round-off, a rigorous truncation bound along the
//! direction (`cpu::majorant`), and the exact directional derivative where its step may
//! bring a kinked unit to its kink (the conventions' where a unit sits on one).
//!
//! A direction spreads over a whole tensor, so `g·v` is `|g|/√n` typically, far below the
//! cost's round-off over a small step: unless a step is given, each direction takes the
//! one that balances its two bounds — round-off `A/h` and truncation `C·h²`, both known
//! before any pass — at `h = (A/2C)^(1/3)`, a power of two, so that the passes of one step
//! run together.

use std::collections::BTreeMap;

use ndarray::Array2;
use rayon::prelude::*;

use super::{device_view, rounding_shift, use_exact};
use crate::backend::{add_seconds, Backend, Settings};
use crate::cpu::forward::{forward, Activations};
use crate::cpu::majorant::along_change;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::ties::Derivatives;
use crate::directions::Direction;
use crate::error::Result;
use crate::estimate::Estimates;
use crate::monitor::Monitor;
use crate::options::{Precision, MAX_STEP};
use crate::problem::Problem;

/// The estimate along each of `dirs`, at step `eps` when given, else at the step each
/// direction's bounds balance at; the device time.
pub fn evaluate(
    backend: &dyn Backend,
    problem: &Problem,
    (dirs, eps, given): (&[Direction], f64, bool),
    settings: Settings,
    monitor: &dyn Monitor,
) -> Result<(Estimates, Option<f64>)> {
    let precision = settings.precision;
    let seen = device_view(problem, precision);
    let layout = problem.net().layout();
    let summation = backend.summation(&seen, precision)?;
    let per_layer = crate::cpu::roundoff::cost_roundoff(&seen, precision, summation);
    let error: Vec<f64> = dirs
        .iter()
        .map(|d| per_layer[layout.tensors()[d.tensor].layer - 1])
        .collect();
    let acts = forward(problem.net(), problem.model(), problem.x().view());
    let changes: Vec<Array2<f64>> = dirs
        .iter()
        .map(|d| d.layer_change(layout, layer_input(problem, &acts, d)))
        .collect();
    let steps: Vec<f64> = if given {
        vec![eps; dirs.len()]
    } else {
        (0..dirs.len())
            .into_par_iter()
            .map(|k| balanced_step(problem, &acts, (dirs, &changes), k, (eps, error[k])))
            .collect()
    };
    // The passes, one run per step.
    let mut by_step: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (k, h) in steps.iter().enumerate() {
        by_step.entry(h.to_bits()).or_default().push(k);
    }
    let (mut j_plus, mut j_minus) = (vec![0.0; dirs.len()], vec![0.0; dirs.len()]);
    let mut gpu_seconds = None;
    for (bits, group) in by_step {
        let subset: Vec<Direction> = group.iter().map(|&k| dirs[k].clone()).collect();
        let run =
            backend.direction_costs(&seen, (f64::from_bits(bits), settings), &subset, monitor)?;
        for (&k, (plus, minus)) in group.iter().zip(run.values) {
            j_plus[k] = plus;
            j_minus[k] = minus;
        }
        gpu_seconds = add_seconds(gpu_seconds, run.gpu_seconds);
    }
    let widths: Vec<f64> = steps.iter().map(|h| 2.0 * h).collect();
    let mut estimates = Estimates::from_costs(j_plus, j_minus, &widths, &error);
    if precision == Precision::F32 {
        let shift = rounding_shift(problem);
        for (noise, d) in estimates.noise.iter_mut().zip(dirs) {
            *noise += d.project_abs(layout, &shift);
        }
    }
    let sens = Sensitivity::new(problem);
    let ties = &sens.ties;
    let exact = Derivatives::new(problem, &sens);
    let along: Vec<(f64, Option<crate::cpu::ties::Exact>)> = (0..dirs.len())
        .into_par_iter()
        .map(|k| {
            let p = layout.tensors()[dirs[k].tensor].layer - 1;
            let change = &changes[k];
            let (crosses, truncation) = along_change(problem, &acts, p, change.view(), steps[k]);
            let found = (crosses || ties.touched_by(p, change.view())).then(|| {
                exact.along(
                    p,
                    change
                        .columns()
                        .into_iter()
                        .enumerate()
                        .filter(|(_, c)| c.iter().any(|&v| v != 0.0))
                        .map(|(e, c)| (e, c.to_owned())),
                )
            });
            (truncation, found)
        })
        .collect();
    estimates.truncation = along.iter().map(|(t, _)| *t).collect();
    for (k, (_, found)) in along.into_iter().enumerate() {
        if let Some(e) = found {
            use_exact(&mut estimates, k, e);
        }
    }
    super::penalty::add_along(problem, dirs, &mut estimates);
    Ok((estimates, gpu_seconds))
}

/// The input of direction `d`'s layer: `X` or the activations before it.
fn layer_input<'a>(
    problem: &'a Problem,
    acts: &'a Activations,
    d: &Direction,
) -> ndarray::ArrayView2<'a, f64> {
    let p = problem.net().layout().tensors()[d.tensor].layer - 1;
    if p == 0 {
        problem.x().view()
    } else {
        acts.a[p - 1].view()
    }
}

/// The power-of-two step that balances direction `k`'s round-off `error/h` (the cost's
/// error bound over the step) against its truncation bound `C·h²` (at most a hundredth of
/// the default step `eps` and half the largest step allowed); the truncation's C is taken
/// at the larger of the two steps it compares, so that the choice holds at the step chosen.
fn balanced_step(
    problem: &Problem,
    acts: &Activations,
    (dirs, changes): (&[Direction], &[Array2<f64>]),
    k: usize,
    (eps, error): (f64, f64),
) -> f64 {
    let p = problem.net().layout().tensors()[dirs[k].tensor].layer - 1;
    let (lo, hi) = (eps / 100.0, MAX_STEP / 2.0);
    let coefficient = |h: f64| along_change(problem, acts, p, changes[k].view(), h).1 / (h * h);
    let mut h = eps;
    for _ in 0..3 {
        let c = coefficient(h.max(eps));
        let best = if c > 0.0 {
            (error / (2.0 * c)).cbrt()
        } else {
            hi
        };
        h = best.clamp(lo, hi);
    }
    2f64.powi(h.log2().floor() as i32)
}
