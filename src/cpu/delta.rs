//! The delta method on the CPU (DESIGN §2), in f64: each parameter's step changes one
//! pre-activation row; its effect on the output is the row's gain times the step while no
//! ReLU input crosses 0 (checked against the row's reach), and the cost change is computed
//! without cancellation. The reference for the GPU's delta kernel.

use rayon::prelude::*;

use super::forward::softplus;
use super::sensitivity::Sensitivity;
use crate::error::{Error, Result};
use crate::estimate::DeltaCost;
use crate::monitor::Monitor;
use crate::problem::Problem;

/// One cost term's change, `softplus(z + Δ) − softplus(z) − yΔ`, without cancellation:
/// `log1p(σ(z)·expm1(Δ)) − yΔ` for small Δ.
pub fn cost_term_change(z: f64, sigma: f64, y: f64, delta: f64) -> f64 {
    let change = if delta.abs() < 1.0 {
        (sigma * delta.exp_m1()).ln_1p()
    } else {
        softplus(z + delta) - softplus(z)
    };
    change - y * delta
}

/// The cost changes of `θ_index ± eps`, both signs in one pass over the examples.
fn delta_cost(
    problem: &Problem,
    sens: &Sensitivity,
    (p, row, col): (usize, usize, Option<usize>),
    eps: f64,
) -> DeltaCost {
    let gain = sens.gain[p].index_axis(ndarray::Axis(0), row);
    let reach = sens.reach[p].row(row);
    let input = col.map(|j| sens.inputs[p].row(j));
    let (mut plus, mut minus, mut magnitude, mut kink) = (0.0, 0.0, 0.0, false);
    for e in 0..problem.examples() {
        let s = eps * input.map_or(1.0, |a| a[e]);
        if s == 0.0 {
            continue;
        }
        kink |= s.abs() >= reach[e];
        for (o, &g) in gain.row(e).iter().enumerate() {
            let d = s * g;
            let (z, sigma, y) = (sens.z_out[[o, e]], sens.sigma[[o, e]], problem.y()[[o, e]]);
            let up = cost_term_change(z, sigma, y, d);
            let down = cost_term_change(z, sigma, y, -d);
            plus += up;
            minus += down;
            magnitude += up.abs() + down.abs() + 2.0 * (y * d).abs();
        }
    }
    let m = problem.examples() as f64;
    DeltaCost {
        plus: plus / m,
        minus: minus / m,
        magnitude: magnitude / m,
        kink,
    }
}

/// The cost changes of `θ_i ± eps` for each index in `indices`, on all cores, from
/// `problem`'s sensitivity (computed once by the caller).
pub fn delta_costs(
    problem: &Problem,
    sens: &Sensitivity,
    eps: f64,
    indices: &[usize],
    monitor: &dyn Monitor,
) -> Result<Vec<DeltaCost>> {
    let coordinates = indices
        .iter()
        .map(|&i| problem.locate(i))
        .collect::<Result<Vec<_>>>()?;
    monitor.begin(coordinates.len() as u64);
    // Progress and the stop flag in blocks: per coordinate would cost more than the work.
    const BLOCK: usize = 4096;
    let blocks: Vec<Vec<DeltaCost>> = coordinates
        .par_chunks(BLOCK)
        .map(|block| {
            if monitor.cancelled() {
                return Vec::new();
            }
            let costs = block
                .iter()
                .map(|&c| delta_cost(problem, sens, c, eps))
                .collect();
            monitor.advance(block.len() as u64);
            costs
        })
        .collect();
    if monitor.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(blocks.concat())
}
