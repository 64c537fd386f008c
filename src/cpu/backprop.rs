//! Backpropagation: the analytic gradient that the check puts on trial.

use ndarray::{Array2, Axis};

use super::forward::forward;
use crate::problem::Problem;

/// `dJ/dθ` flattened in the parameter layout's order (dW1, db1, dW2, …), with the slope
/// below the kink at a kinked unit sitting on 0 (ReLU'(0) = 0, as the course's
/// `relu_backward` has it).
pub fn gradients(problem: &Problem) -> Vec<f64> {
    backprop(problem, None)
}

/// [`gradients`] with another derivative at a kink (1 for a backprop that masks with
/// `Z >= 0`): what a correct backprop gives at a unit sitting exactly on its kink.
pub fn gradients_with_relu_prime_at_zero(problem: &Problem, at_zero: f64) -> Vec<f64> {
    backprop(problem, Some(at_zero))
}

fn backprop(problem: &Problem, at_kink: Option<f64>) -> Vec<f64> {
    let net = problem.net();
    let model = problem.model();
    let x = problem.x().view();
    let acts = forward(net, model, x);
    let scale = model.scale(problem.examples());
    let l2 = 2.0 * model.l2_factor(problem.examples());
    let last = net.layers().len() - 1;

    // dJ/dZ_L = (output − Y)·scale for each loss with its matching output (sigmoid with
    // cross-entropy, softmax with cross-entropy, identity with squared error).
    let mut dz: Array2<f64> = (&acts.a[last] - problem.y()) * scale;
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let input = if l == 0 { x } else { acts.a[l - 1].view() };
        let mut dw = dz.dot(&input.t());
        if l2 != 0.0 {
            dw.scaled_add(l2, &net.layers()[l].w);
        }
        let db = dz.sum_axis(Axis(1));
        if l > 0 {
            let mut da = net.layers()[l].w.t().dot(&dz);
            if let Some(d) = &model.dropout {
                let keep = 1.0 / d.keep_prob;
                da.zip_mut_with(&d.masks[l - 1], |v, &mask| *v *= mask * keep);
            }
            let act = model.hidden[l - 1];
            let slope = acts.z[l - 1].mapv(|z| match at_kink {
                Some(at) if act.kink().is_some() => act.derivative_with_kink(z, at),
                _ => act.derivative(z),
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
