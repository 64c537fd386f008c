//! The full method: `J(θ ± ε e_i)` by whole forward passes, every coordinate, on the CPU
//! or the GPU. Each estimate's round-off comes from the cost's (`roundoff::cost_roundoff`),
//! its truncation is bounded rigorously for every model (`cpu::majorant`), and where a step
//! may bring a kinked unit to its kink the difference estimates no derivative: the exact
//! one stands in (the conventions' derivatives where a unit sits on its kink). An f32
//! device evaluates the problem rounded to f32; the rounding's effect on the gradient joins
//! each bound.

use rayon::prelude::*;

use super::{device_view, rounding_shift, use_exact};
use crate::backend::{Backend, Settings};
use crate::cpu::majorant::Majorant;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::ties::Derivatives;
use crate::error::Result;
use crate::estimate::{perturbed_pair, Estimates};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// Every coordinate's estimate by whole passes at step `eps`, and the device time.
pub fn evaluate(
    backend: &dyn Backend,
    problem: &Problem,
    eps: f64,
    settings: Settings,
    monitor: &dyn Monitor,
) -> Result<(Estimates, Option<f64>)> {
    let precision = settings.precision;
    let seen = device_view(problem, precision);
    let run = backend.coordinate_costs(&seen, (eps, settings), monitor)?;
    let mut estimates = run.values;
    if precision == Precision::F32 {
        for (noise, shift) in estimates.noise.iter_mut().zip(rounding_shift(problem)) {
            *noise += shift;
        }
    }
    // The half-steps as the device took them (f32 rounds θ ± ε).
    let steps: Vec<f64> = seen
        .net()
        .flatten()
        .iter()
        .map(|&t| {
            let (plus, minus) = perturbed_pair(t, eps, precision);
            0.5 * (plus - minus)
        })
        .collect();
    let widest = steps.iter().fold(eps, |a, &h| a.max(h));
    let majorant = Majorant::new(problem, widest);
    let all: Vec<usize> = (0..steps.len()).collect();
    let located = |i: usize| problem.locate(i);
    let crossing: Vec<bool> = all
        .par_iter()
        .map(|&i| Ok(majorant.crosses(located(i)?, steps[i])))
        .collect::<Result<_>>()?;
    estimates.truncation = all
        .par_iter()
        .map(|&i| {
            Ok(if crossing[i] {
                0.0
            } else {
                majorant.truncation_bound(located(i)?, steps[i])
            })
        })
        .collect::<Result<_>>()?;
    if crossing.iter().any(|&c| c) {
        let sens = Sensitivity::new(problem);
        let exact = Derivatives::new(problem, &sens);
        let found: Vec<(usize, crate::cpu::ties::Exact)> = all
            .par_iter()
            .filter(|&&i| crossing[i])
            .map(|&i| Ok((i, exact.of(located(i)?))))
            .collect::<Result<_>>()?;
        for (i, e) in found {
            use_exact(&mut estimates, i, e);
        }
    }
    super::penalty::add(problem, &all, &vec![eps; all.len()], &mut estimates);
    Ok((estimates, run.gpu_seconds))
}
