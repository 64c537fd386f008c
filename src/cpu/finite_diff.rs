//! The exercise's algorithm: every coordinate, central differences, full forward passes,
//! spread over all cores. The reference every other method is tested against.

use rayon::prelude::*;

use super::forward::data_cost_of;
use crate::error::{Error, Result};
use crate::estimate::{perturbed_pair, Estimates};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// The data cost `J(θ ± ε e_i)` (L2 is the engine's to add) for every `i` by full forward
/// passes in f64.
///
/// `points` says how `θ ± ε` is formed: `F64` for the CPU check itself, `F32` to get the
/// f64 reference of an f32 device run at exactly the points that device evaluates.
pub fn central_differences(
    problem: &Problem,
    eps: f64,
    points: Precision,
    monitor: &dyn Monitor,
) -> Result<Estimates> {
    let n = problem.net().num_params();
    let (x, y, model) = (problem.x().view(), problem.y().view(), problem.model());
    monitor.begin(n as u64);
    let per_coordinate: Vec<(f64, f64, f64)> = (0..n)
        .into_par_iter()
        .map_init(
            || problem.net().clone(),
            |net, i| {
                if monitor.cancelled() {
                    return (f64::NAN, f64::NAN, 1.0);
                }
                let original = *net.param_mut(i);
                let (plus, minus) = perturbed_pair(original, eps, points);
                *net.param_mut(i) = plus;
                let j_plus = data_cost_of(net, model, x, y);
                *net.param_mut(i) = minus;
                let j_minus = data_cost_of(net, model, x, y);
                *net.param_mut(i) = original;
                monitor.advance(1);
                (j_plus, j_minus, plus - minus)
            },
        )
        .collect();
    if monitor.cancelled() {
        return Err(Error::Cancelled);
    }
    let steps: Vec<f64> = per_coordinate.iter().map(|c| c.2).collect();
    let (j_plus, j_minus) = per_coordinate.iter().map(|c| (c.0, c.1)).unzip();
    Ok(Estimates::from_costs(
        j_plus,
        j_minus,
        &steps,
        &super::roundoff::coordinate_cost_roundoff(
            problem,
            Precision::F64,
            super::roundoff::Summation::Compensated,
        ),
    ))
}
