//! What every perturbation of one row shares, computed once from the unperturbed pass.
//!
//! Perturbing `W_p[i, j]` or `b_p[i]` changes one pre-activation row, `Δz_p[i, e] = s_e`
//! (`s_e = ±ε·A_(p−1)[j, e]`, or `±ε` for the bias). While no ReLU input crosses 0 a ReLU
//! network is linear, so the change reaching the output is exactly `s_e · gain[i, e, o]`,
//! with `gain = ∂z_L[o, e] / ∂z_p[i, e]` — the rank-one column `W_(p+1)[:, i]` propagated
//! through the masked layers beyond, the same for every parameter of the row. And the
//! linear region ends exactly where `|s_e|` reaches `reach[i, e]`: the smallest
//! `|z_l[k, e]| / |∂z_l[k, e] / ∂z_p[i, e]|` over the unit itself and every hidden unit
//! downstream. So per parameter the delta method needs only `m` multiplications, `m`
//! comparisons and the cost terms, instead of propagating vectors through every layer.

use ndarray::{Array1, Array2, Array3, Axis};
use rayon::prelude::*;

use super::forward::{forward, sigmoid, Activations};
use crate::model::{Mlp, Model};
use crate::problem::Problem;

/// Stands for "no ReLU downstream can cross": finite in f32 as well, so both precisions
/// compare against it the same way.
pub const UNREACHABLE: f64 = f32::MAX as f64;

/// The unperturbed pass and, per layer, every row's gain and reach.
pub struct Sensitivity {
    /// Per layer `p`: its input `A_(p−1)` (`X` for the first), `n_(p−1) × m`.
    pub inputs: Vec<Array2<f64>>,
    /// Per layer: `∂z_L[o, e] / ∂z_p[i, e]`, indexed `[i, e, o]`.
    pub gain: Vec<Array3<f64>>,
    /// Per layer: the step `|Δz_p[i, e]|` at which some ReLU input first reaches 0,
    /// indexed `[i, e]`; [`UNREACHABLE`] where none can.
    pub reach: Vec<Array2<f64>>,
    /// The unperturbed pre-activations of the hidden layers, `n_l × m` (signs decide the
    /// ReLU masks where a step crosses a kink).
    pub z_hidden: Vec<Array2<f64>>,
    /// The unperturbed output logits `z_L` and `σ(z_L)`, `n_L × m`.
    pub z_out: Array2<f64>,
    pub sigma: Array2<f64>,
    /// `σ(z_L) − Y`: the cost's slope in each logit (times m), from f64.
    pub residual: Array2<f64>,
    /// Per layer and row: `Σ_e Σ_o |gain[i, e, o]|³`, for the truncation bound.
    cubed_gain: Vec<Array1<f64>>,
    /// Per layer: the largest `|A_(p−1)[j, e]|` over the examples, per input unit `j`.
    input_max: Vec<Array1<f64>>,
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

    /// Whether a step of `eps` in parameter `(p, row, col)` moves some ReLU input across 0
    /// in some example.
    pub fn crosses(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> bool {
        let reach = self.reach[p].row(row);
        match col {
            None => reach.iter().any(|&r| eps >= r),
            Some(j) => self.inputs[p]
                .row(j)
                .iter()
                .zip(reach)
                .any(|(&a, &r)| a != 0.0 && (eps * a).abs() >= r),
        }
    }

    pub fn new(problem: &Problem) -> Self {
        let net = problem.net();
        let acts = forward(net, problem.model(), problem.x().view());
        let layers = net.layers();
        let last = layers.len() - 1;
        let m = problem.examples();
        let outs = layers[last].w.nrows();

        // Example by example (each needs its own masks), then gathered per layer.
        let per_example: Vec<Vec<(Array2<f64>, Array1<f64>)>> = (0..m)
            .into_par_iter()
            .map(|e| {
                (0..=last)
                    .map(|p| row_response(net, problem.model(), &acts, p, e))
                    .collect()
            })
            .collect();
        let mut gain: Vec<Array3<f64>> = layers
            .iter()
            .map(|l| Array3::zeros((l.w.nrows(), m, outs)))
            .collect();
        let mut reach: Vec<Array2<f64>> = layers
            .iter()
            .map(|l| Array2::zeros((l.w.nrows(), m)))
            .collect();
        for (e, responses) in per_example.into_iter().enumerate() {
            for (p, (g, r)) in responses.into_iter().enumerate() {
                gain[p].index_axis_mut(Axis(1), e).assign(&g);
                reach[p].column_mut(e).assign(&r);
            }
        }

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
        let mut z = acts.z;
        let z_out = z.pop().expect("at least one layer");
        let sigma = z_out.mapv(sigmoid);
        let residual = &sigma - problem.y();
        Self {
            inputs,
            gain,
            reach,
            z_hidden: z,
            z_out,
            sigma,
            residual,
            cubed_gain,
            input_max,
        }
    }
}

/// For layer `p` at example `e`: the gains `∂z_L / ∂z_p[i]` (`n_p × n_L`) and reaches
/// (`n_p`) of every row `i`, by propagating the Jacobian `∂z_l / ∂z_p` forward. Exact
/// for ReLU layers; through smooth ones (other models) the Jacobian at θ, so the reach of
/// a kink beyond them is its linear estimate.
fn row_response(
    net: &Mlp,
    model: &Model,
    acts: &Activations,
    p: usize,
    e: usize,
) -> (Array2<f64>, Array1<f64>) {
    let layers = net.layers();
    let last = layers.len() - 1;
    if p == last {
        let rows = layers[p].w.nrows();
        return (Array2::eye(rows), Array1::from_elem(rows, UNREACHABLE));
    }
    // The row's own kink, then every kinked unit downstream.
    let z_p = acts.z[p].column(e);
    let mut reach = match model.hidden[p].kink() {
        Some(_) => z_p.mapv(f64::abs),
        None => Array1::from_elem(z_p.len(), UNREACHABLE),
    };
    let mut jacobian = layers[p + 1].w.clone();
    scale_by_slope(jacobian.view_mut().reversed_axes(), model, p, e, z_p);
    for l in p + 1..last {
        let z_l = acts.z[l].column(e);
        if model.hidden[l].kink().is_some() {
            for (row, &z) in jacobian.rows().into_iter().zip(z_l) {
                for (r, &d) in reach.iter_mut().zip(row) {
                    if d != 0.0 {
                        *r = r.min(z.abs() / d.abs());
                    }
                }
            }
        }
        scale_by_slope(jacobian.view_mut(), model, l, e, z_l);
        jacobian = layers[l + 1].w.dot(&jacobian);
    }
    reach.mapv_inplace(|r| r.min(UNREACHABLE));
    (jacobian.reversed_axes(), reach)
}

/// Scales the rows of hidden layer `l`'s units at example `e` by their slope (and
/// dropout factor): a ReLU that is off (`z ≤ 0`) stops the change there.
fn scale_by_slope(
    mut rows: ndarray::ArrayViewMut2<f64>,
    model: &Model,
    l: usize,
    e: usize,
    z: ndarray::ArrayView1<f64>,
) {
    let act = model.hidden[l];
    for (k, (mut row, &z)) in rows.rows_mut().into_iter().zip(z).enumerate() {
        let slope = act.derivative(z) * model.keep(l, k, e);
        if slope != 1.0 {
            row.mapv_inplace(|v| v * slope);
        }
    }
}
