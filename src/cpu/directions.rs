//! Directional checks on the CPU: two full forward passes per direction, in f64. The step
//! is applied as a correction, `z = W a + b + s·(V a)` on the direction's layer, as the
//! GPU kernel does: adding `s·v` into θ would round it, and over a whole tensor those
//! roundings bend the direction enough to show at a 2e-7 threshold.

use ndarray::Axis;
use rayon::prelude::*;

use super::forward::{data_cost, forward, hidden};
use crate::directions::Direction;
use crate::error::{Error, Result};
use crate::monitor::Monitor;
use crate::problem::Problem;

/// `J(θ + ε v)` and `J(θ − ε v)` for each direction.
pub fn direction_costs(
    problem: &Problem,
    eps: f64,
    directions: &[Direction],
    monitor: &dyn Monitor,
) -> Result<Vec<(f64, f64)>> {
    let layout = problem.net().layout();
    // The layers before a direction's are shared by both signs and every direction there.
    let base = forward(problem.net(), problem.model(), problem.x().view());
    monitor.begin(directions.len() as u64);
    let costs: Vec<(f64, f64)> = directions
        .par_iter()
        .map(|d| {
            if monitor.cancelled() {
                return (f64::NAN, f64::NAN);
            }
            let spec = &layout.tensors()[d.tensor];
            let p = spec.layer - 1;
            let input = if p == 0 {
                problem.x().view()
            } else {
                base.a[p - 1].view()
            };
            let change = d.layer_change(layout, input);
            let along = |step: f64| {
                let z = &base.z[p] + &(&change * step);
                cost_from_layer(problem, p, z)
            };
            let pair = (along(eps), along(-eps));
            monitor.advance(1);
            pair
        })
        .collect();
    if monitor.cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(costs)
}

/// The data cost when layer `p`'s pre-activations are `z`: the rest of the forward pass
/// (L2 is added by the engine, exactly).
fn cost_from_layer(problem: &Problem, p: usize, mut z: ndarray::Array2<f64>) -> f64 {
    let layers = problem.net().layers();
    for (l, layer) in layers.iter().enumerate().skip(p + 1) {
        let a = hidden(problem.model(), l - 1, z.view());
        z = layer.w.dot(&a) + layer.b.view().insert_axis(Axis(1));
    }
    data_cost(problem.model(), z.view(), problem.y().view())
}
