//! The delta method on the CPU, in f64, from the row gains: each parameter's step changes one
//! pre-activation row; its effect on the output is the row's gain times the step while no
//! ReLU input crosses 0 (checked against the row's reach), and the cost change is computed
//! without cancellation. The CPU twin of the GPU's gain kernel (and its f32 results' host
//! re-evaluation); the host's own check takes the series' matrix products (`products`).

use rayon::prelude::*;

use super::forward::softplus;
use super::sensitivity::Sensitivity;
use crate::error::{Error, Result};
use crate::estimate::{DeltaCost, Sums};
use crate::monitor::Monitor;
use crate::problem::Problem;

/// One cost term's change, `softplus(z + d) − softplus(z) − y·d`, and the magnitude its
/// round-off is relative to. In f64 `ln(1 + σ·(e^d − 1)) − y·d` is accurate enough and
/// twice as fast as the GPU kernel's form (`r·d` plus a series for the remainder, which
/// keeps f32 free of the cancellation between `σ·d` and `y·d` where `σ ≈ y`); both are the
/// same function, tested against each other.
pub fn cost_term_change(z: f64, sigma: f64, y: f64, d: f64) -> (f64, f64) {
    let change = if d.abs() < 1.0 {
        (sigma * d.exp_m1()).ln_1p()
    } else {
        softplus(z + d) - softplus(z)
    };
    (change - y * d, change.abs() + (y * d).abs())
}

/// The cost changes of `θ_index ± eps`, both signs in one pass over the examples.
fn delta_cost(
    problem: &Problem,
    sens: &Sensitivity,
    (p, row, col): (usize, usize, Option<usize>),
    eps: f64,
) -> DeltaCost {
    let gain = sens.gain[p].index_axis(ndarray::Axis(0), row);
    let input = col.map(|j| sens.inputs[p].row(j));
    let mut sums = Sums::default();
    for e in 0..problem.examples() {
        let s = eps * input.map_or(1.0, |a| a[e]);
        if s == 0.0 {
            continue;
        }
        for (o, &g) in gain.row(e).iter().enumerate() {
            let d = s * g;
            let (z, sigma, y) = (sens.z_out[[o, e]], sens.sigma[[o, e]], problem.y()[[o, e]]);
            let (up, up_size) = cost_term_change(z, sigma, y, d);
            let (down, down_size) = cost_term_change(z, sigma, y, -d);
            sums.add(up, down, up_size + down_size, g != 0.0);
        }
    }
    sums.finish(1.0 / problem.examples() as f64)
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
    per_coordinate(problem, indices, monitor, |c| {
        delta_cost(problem, sens, c, eps)
    })
}

/// `cost(coordinate)` for each index in `indices`, on all cores, with progress and the
/// stop flag in blocks (per coordinate they would cost more than the work).
pub(crate) fn per_coordinate(
    problem: &Problem,
    indices: &[usize],
    monitor: &dyn Monitor,
    cost: impl Fn((usize, usize, Option<usize>)) -> DeltaCost + Sync,
) -> Result<Vec<DeltaCost>> {
    let coordinates = indices
        .iter()
        .map(|&i| problem.locate(i))
        .collect::<Result<Vec<_>>>()?;
    monitor.begin(coordinates.len() as u64);
    const BLOCK: usize = 4096;
    let blocks: Vec<Vec<DeltaCost>> = coordinates
        .par_chunks(BLOCK)
        .map(|block| {
            if monitor.cancelled() {
                return Vec::new();
            }
            let costs = block.iter().map(|&c| cost(c)).collect();
            monitor.advance(block.len() as u64);
            costs
        })
        .collect();
    if monitor.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(blocks.concat())
}
