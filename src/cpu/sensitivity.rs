//! What every perturbation of one row shares, computed once from the unperturbed pass.
//!
//! Perturbing `W_p[i, j]` or `b_p[i]` changes one pre-activation row, `Δz_p[i, e] = s_e`
//! (`s_e = ±ε·A_(p−1)[j, e]`, or `±ε` for the bias). While no ReLU input crosses 0 a ReLU
//! network is linear, so the change reaching the output is exactly `s_e · gain[i, e, o]`,
//! with `gain = ∂z_L[o, e] / ∂z_p[i, e]` — the rank-one column `W_(p+1)[:, i]` propagated
//! through the masked layers beyond, the same for every parameter of the row. The
//! central difference of that linearised cost estimates the derivative at θ whether or not
//! a step crosses a kink, except where the change reaches a unit sitting on its kink
//! (`ties`): those coordinates are judged by the conventions' derivatives instead. So
//! per parameter the delta method needs only `m` multiplications, `m` comparisons and the
//! cost terms, instead of propagating vectors through every layer.

use ndarray::{Array1, Array2, Array3};
use rayon::prelude::*;

use super::forward::{forward, sigmoid, Activations};
use super::ties::Ties;
use crate::model::{Mlp, Model};
use crate::options::Precision;
use crate::problem::Problem;

/// The unperturbed pass and, per layer, every row's gain and reach.
pub struct Sensitivity {
    /// Per layer `p`: its input `A_(p−1)` (`X` for the first), `n_(p−1) × m`.
    pub inputs: Vec<Array2<f64>>,
    /// Per layer: `∂z_L[o, e] / ∂z_p[i, e]`, indexed `[i, e, o]`.
    pub gain: Vec<Array3<f64>>,
    /// The units on their kink.
    pub ties: Ties,
    /// The unperturbed output logits `z_L` and `σ(z_L)`, `n_L × m`.
    pub z_out: Array2<f64>,
    pub sigma: Array2<f64>,
    /// `∂loss/∂z_L` per example (`σ(z_L) − Y` for the classic model, formed without
    /// cancellation: `forward::residuals`), unreduced, from f64.
    pub residual: Array2<f64>,
    /// Per layer and row: `Σ_e Σ_o |gain[i, e, o]|³`, for the truncation bound.
    cubed_gain: Vec<Array1<f64>>,
    /// Per layer: the largest `|A_(p−1)[j, e]|` over the examples, per input unit `j`.
    pub(crate) input_max: Vec<Array1<f64>>,
    /// Per layer and row: `Σ_e Σ_o |gain[i, e, o]| · ρ[o, e]` times the reduction, with ρ
    /// the residuals' own error bound (`roundoff::residual_errors`).
    residual_error: Vec<Array1<f64>>,
    /// ρ: a bound on each residual's error, `n_L × m`.
    pub residual_errors: Array2<f64>,
}

/// `max |softplus'''| = max |σ''| = 1/(6√3)`, divided by the 6 of Taylor's remainder.
pub(crate) const TAYLOR_THIRD: f64 = 0.096_225_044_864_937_63 / 6.0;

impl Sensitivity {
    /// A bound on the central difference's truncation error for parameter `(p, row, col)`
    /// at step `eps`, valid while the step crosses no kink: between kinks the logits move
    /// linearly, `c = s·gain`, and the cost's third derivative along the step is at most
    /// `Σ |σ''|·|c|³ / m`, so `|(ΔJ₊ − ΔJ₋)/2ε − J'| ≤ ε²/6 · max|σ''| · Σ|c|³ / m`
    /// (Hölder: the input factor bounded by its largest magnitude).
    pub fn truncation_bound(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> f64 {
        let s = col.map_or(1.0, |j| self.input_max[p][j]);
        let m = self.z_out.ncols() as f64;
        eps * eps * TAYLOR_THIRD * s * s * s * self.cubed_gain[p][row] / m
    }

    /// A bound on the error the residuals' own rounding makes in the estimate of
    /// parameter `(p, row, col)`: each example's share is the step times
    /// `Σ_o |gain|·ρ` (Hölder: the input factor bounded by its largest magnitude).
    pub fn residual_error(&self, (p, row, col): (usize, usize, Option<usize>)) -> f64 {
        col.map_or(1.0, |j| self.input_max[p][j]) * self.residual_error[p][row]
    }

    pub fn new(problem: &Problem) -> Self {
        let net = problem.net();
        let acts = forward(net, problem.model(), problem.x().view());
        let layers = net.layers();
        let last = layers.len() - 1;
        let m = problem.examples();

        let gain = gains(net, problem.model(), &acts, m);
        let variances = super::roundoff::z_variances(problem, &acts, Precision::F64);
        let ties = Ties::find(problem, &acts, &variances);
        let rho = super::roundoff::residual_errors(problem, &acts, &variances[last]);
        let scale = problem.model().scale(m);
        let residual_error = gain
            .iter()
            .map(|g| {
                g.outer_iter()
                    .map(|row| {
                        let mut sum = 0.0;
                        for (e, per_output) in row.outer_iter().enumerate() {
                            for (o, &v) in per_output.iter().enumerate() {
                                sum += v.abs() * rho[[o, e]];
                            }
                        }
                        scale * sum
                    })
                    .collect()
            })
            .collect();

        let mut inputs = Vec::with_capacity(last + 1);
        inputs.push(problem.x().to_owned());
        inputs.extend(acts.a[..last].iter().cloned());
        let cubed_gain = gain
            .iter()
            .map(|g| {
                g.outer_iter()
                    .map(|row| row.iter().map(|v| v.abs().powi(3)).sum())
                    .collect()
            })
            .collect();
        let input_max = inputs
            .iter()
            .map(|a| {
                a.rows()
                    .into_iter()
                    .map(|r| r.iter().fold(0.0f64, |acc, v| acc.max(v.abs())))
                    .collect()
            })
            .collect();
        let z_out = acts.z[last].clone();
        let sigma = z_out.mapv(sigmoid);
        let residual =
            super::forward::residuals(problem.model().loss, z_out.view(), problem.y().view());
        Self {
            inputs,
            gain,
            ties,
            z_out,
            sigma,
            residual,
            cubed_gain,
            input_max,
            residual_error,
            residual_errors: rho,
        }
    }
}

/// Every layer's gains `∂z_L[o, e] / ∂z_p[i, e]`, indexed `[i, e, o]`, at θ (ReLU'(0) = 0,
/// dropout's factors included): per output one backward pass over every example at once,
/// from a unit seed at that output.
fn gains(net: &Mlp, model: &Model, acts: &Activations, m: usize) -> Vec<Array3<f64>> {
    let layers = net.layers();
    let last = layers.len() - 1;
    let outs = layers[last].w.nrows();
    let slopes: Vec<Array2<f64>> = (0..last)
        .map(|l| {
            let act = model.hidden[l];
            Array2::from_shape_fn(acts.z[l].dim(), |(k, e)| {
                act.derivative(acts.z[l][[k, e]]) * model.keep(l, k, e)
            })
        })
        .collect();
    let mut gain: Vec<Array3<f64>> = layers
        .iter()
        .map(|l| Array3::zeros((l.w.nrows(), m, outs)))
        .collect();
    let per_output: Vec<Vec<Array2<f64>>> = (0..outs)
        .into_par_iter()
        .map(|o| {
            let mut delta = Array2::<f64>::zeros((outs, m));
            delta.row_mut(o).fill(1.0);
            let mut back = Vec::with_capacity(last);
            for p in (0..last).rev() {
                delta = layers[p + 1].w.t().dot(&delta) * &slopes[p];
                back.push(delta.clone());
            }
            back
        })
        .collect();
    for (o, back) in per_output.into_iter().enumerate() {
        gain[last].slice_mut(ndarray::s![o, .., o]).fill(1.0);
        for (p, delta) in (0..last).rev().zip(back) {
            gain[p].slice_mut(ndarray::s![.., .., o]).assign(&delta);
        }
    }
    gain
}
