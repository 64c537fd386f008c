//! Backpropagation: the analytic gradient that the check puts on trial.

use ndarray::{Array2, Axis};

use super::forward::{forward, Activations};
use crate::model::TensorKind;
use crate::problem::Problem;

/// `dJ/dθ` flattened in the parameter layout's order (dW1, db1, dW2, …), with the slope
/// below the kink at a kinked unit sitting on 0 (ReLU'(0) = 0, as the course's
/// `relu_backward` has it).
pub fn gradients(problem: &Problem) -> Vec<f64> {
    backprop(problem, None)
}

/// [`gradients`] with another derivative at a kink (1 for a backprop that masks with
/// `Z >= 0`, ½ for `np.heaviside(Z, 0.5)`): what a correct backprop gives at a unit
/// sitting exactly on its kink.
pub fn gradients_with_relu_prime_at_zero(problem: &Problem, at_zero: f64) -> Vec<f64> {
    let layers = problem.net().layers().len() - 1;
    backprop(problem, Some(&vec![at_zero; layers]))
}

/// [`gradients`] with `at_kink[l]` the derivative at the kink of hidden layer `l`: a
/// backprop whose layers use different conventions.
pub fn gradients_with_conventions(problem: &Problem, at_kink: &[f64]) -> Vec<f64> {
    backprop(problem, Some(at_kink))
}

/// Per layer, `dZ_l = ∂J/∂z_l` per unit and example (`n_l × m`, the reduction included),
/// with ReLU'(0) = 0 at a kink: what each example contributes to every parameter of a row.
pub fn deltas(problem: &Problem) -> Vec<Array2<f64>> {
    deltas_with(problem, None).1
}

fn backprop(problem: &Problem, at_kink: Option<&[f64]>) -> Vec<f64> {
    let (acts, deltas) = deltas_with(problem, at_kink);
    let net = problem.net();
    let x = problem.x().view();
    let model = problem.model();
    let m = problem.examples();
    deltas
        .iter()
        .enumerate()
        .flat_map(|(l, dz)| {
            let input = if l == 0 { x } else { acts.a[l - 1].view() };
            let mut dw = dz.dot(&input.t());
            let mut db = dz.sum_axis(Axis(1));
            if !model.penalty.is_none() {
                let layer = &net.layers()[l];
                dw.zip_mut_with(&layer.w, |g, &w| {
                    *g += model.penalty_slope(l, TensorKind::Weight, m, w)
                });
                db.zip_mut_with(&layer.b, |g, &b| {
                    *g += model.penalty_slope(l, TensorKind::Bias, m, b)
                });
            }
            dw.into_iter().chain(db).collect::<Vec<_>>()
        })
        .collect()
}

/// The forward pass and every layer's `dZ`, input side first.
fn deltas_with(problem: &Problem, at_kink: Option<&[f64]>) -> (Activations, Vec<Array2<f64>>) {
    let net = problem.net();
    let model = problem.model();
    let acts = forward(net, model, problem.x().view());
    let scale = model.scale(problem.examples());
    let last = net.layers().len() - 1;

    // dJ/dZ_L = (output − Y)·scale for each loss with its matching output (sigmoid with
    // cross-entropy, softmax with cross-entropy, identity with squared error).
    let mut dz: Array2<f64> =
        super::forward::residuals(model.loss, acts.z[last].view(), problem.y().view()) * scale;
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let next = (l > 0).then(|| {
            let mut da = net.layers()[l].w.t().dot(&dz);
            if let Some(d) = &model.dropout {
                let keep = 1.0 / d.keep_prob;
                da.zip_mut_with(&d.masks[l - 1], |v, &mask| *v *= mask * keep);
            }
            let act = model.hidden[l - 1];
            let slope = acts.z[l - 1].mapv(|z| match at_kink {
                Some(at) if act.kink().is_some() => act.derivative_with_kink(z, at[l - 1]),
                _ => act.derivative(z),
            });
            da * slope
        });
        per_layer.push(std::mem::replace(&mut dz, next.unwrap_or_default()));
    }
    per_layer.reverse();
    (acts, per_layer)
}
