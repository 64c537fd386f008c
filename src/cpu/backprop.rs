//! Backpropagation: the analytic gradient that the check puts on trial.

use ndarray::{Array2, Axis};

use super::forward::forward;
use crate::problem::Problem;

/// `dJ/dθ` flattened in the parameter layout's order (dW1, db1, dW2, …), with
/// ReLU'(0) = 0 as the course's `relu_backward` has it.
pub fn gradients(problem: &Problem) -> Vec<f64> {
    gradients_with_relu_prime_at_zero(problem, 0.0)
}

/// [`gradients`] with another ReLU'(0) (1 for a backprop that masks with `Z >= 0`): what
/// a correct backprop gives at a unit sitting exactly on its kink.
pub fn gradients_with_relu_prime_at_zero(problem: &Problem, at_zero: f64) -> Vec<f64> {
    let net = problem.net();
    let x = problem.x().view();
    let acts = forward(net, x);
    let m = problem.examples() as f64;
    let last = net.layers().len() - 1;

    // dJ/dZ_L = (σ(Z_L) − Y) / m for sigmoid + cross-entropy.
    let mut dz: Array2<f64> = (&acts.a[last] - problem.y()) / m;
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let input = if l == 0 { x } else { acts.a[l - 1].view() };
        let dw = dz.dot(&input.t());
        let db = dz.sum_axis(Axis(1));
        if l > 0 {
            let da = net.layers()[l].w.t().dot(&dz);
            let slope = acts.z[l - 1].mapv(|z| {
                if z > 0.0 {
                    1.0
                } else if z == 0.0 {
                    at_zero
                } else {
                    0.0
                }
            });
            dz = da * slope;
        }
        per_layer.push((dw, db));
    }
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db)| dw.into_iter().chain(db))
        .collect()
}
