//! Rigorous bounds for whole forward passes along a step, for every model: how far a step
//! may go before some kinked unit could cross its kink, and a bound on the third
//! derivative of the cost along it, hence on the central difference's truncation
//! (`|D(h) − J'| ≤ h²/6 · sup|J'''|`).
//!
//! Along a step `t` of `z_p` (one row's parameters, or a direction's change), the
//! pre-activations of every later layer move; bounds on their first three derivatives
//! over the whole interval are carried forward layer by layer: exact (signed) while the
//! path is linear — affine layers, ReLU and leaky ReLU between kinks, dropout — and as
//! majorants past a smooth activation, by the chain rule with the activation's derivatives
//! bounded over the interval each unit can reach (`Activation::derivative_sups`):
//! `|(φ∘u)'| ≤ M₁a₁`, `|(φ∘u)''| ≤ M₂a₁² + M₁a₂`, `|(φ∘u)'''| ≤ M₃a₁³ + 3M₂a₁a₂ + M₁a₃`,
//! and `|W u|⁽ᵏ⁾ ≤ |W| a_k`. The loss closes the bound: binary cross-entropy by σ's
//! derivatives over the logits' interval, softmax's log-sum-exp by the third cumulant and
//! covariance of the logits' derivatives (`|κ₃| ≤ 2‖a₁‖³∞`, `|Cov| ≤ ‖a₁‖∞‖a₂‖∞`, and
//! `|(p − y)·u'''| ≤ 2‖a₃‖∞`), squared error exactly. Unlike Richardson's `|D(h) − D(2h)|`,
//! which estimates, this bounds.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;

use super::forward::{forward, sigmoid, Activations};
use crate::model::{sigmoid_derivative_sups, Loss};
use crate::problem::Problem;

/// Stands for "no kinked unit can be reached".
const NO_KINK: f64 = f64::INFINITY;

/// Per layer, row and example: the steps a whole pass may take, and the cubic bound.
pub struct Majorant {
    /// Per layer `p`, `[i, e]`: the change `|Δz_p[i, e]|` at which a kinked unit downstream
    /// (or the unit itself) could reach its kink; infinite where none can.
    reach: Vec<Array2<f64>>,
    /// Per layer `p`, `[i, e]`: a bound on `|d³J_e/dt³|` per unit `t` of `z_p[i, e]`'s
    /// change, cubed (the reduction included), over the steps `eps` allows.
    cubic: Vec<Array2<f64>>,
    /// Per layer, its input `A_(p−1)` (`X` for the first).
    inputs: Vec<Array2<f64>>,
}

impl Majorant {
    /// The bounds for steps of at most `eps` in any parameter of `problem`.
    pub fn new(problem: &Problem, eps: f64) -> Self {
        let acts = forward(problem.net(), problem.model(), problem.x().view());
        let layers = problem.net().layers();
        let last = layers.len() - 1;
        let m = problem.examples();
        let mut inputs = vec![problem.x().clone()];
        inputs.extend(acts.a[..last].iter().cloned());
        let mut reach = Vec::with_capacity(last + 1);
        let mut cubic = Vec::with_capacity(last + 1);
        for (p, layer) in layers.iter().enumerate() {
            let rows = layer.w.nrows();
            let per_example: Vec<(Array1<f64>, Array1<f64>)> = (0..m)
                .into_par_iter()
                .map(|e| {
                    // The largest change any parameter of a row makes per unit of step.
                    let largest = inputs[p]
                        .column(e)
                        .iter()
                        .fold(1.0f64, |a, v| a.max(v.abs()));
                    let start = Array2::eye(rows);
                    along(
                        problem,
                        &acts,
                        p,
                        e,
                        (start.view(), &vec![eps * largest; rows]),
                    )
                })
                .collect();
            let mut r = Array2::zeros((rows, m));
            let mut c = Array2::zeros((rows, m));
            for (e, (re, ce)) in per_example.into_iter().enumerate() {
                r.column_mut(e).assign(&re);
                c.column_mut(e).assign(&ce);
            }
            reach.push(r);
            cubic.push(c);
        }
        Self {
            reach,
            cubic,
            inputs,
        }
    }

    /// Whether a step of `eps` in parameter `(p, row, col)` may bring a kinked unit to its
    /// kink in some example.
    pub fn crosses(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> bool {
        let reach = self.reach[p].row(row);
        (0..reach.len()).any(|e| {
            let s = col.map_or(1.0, |j| self.inputs[p][[j, e]]);
            s != 0.0 && eps * s.abs() >= reach[e]
        })
    }

    /// A bound on the central difference's truncation at step `eps` for parameter
    /// `(p, row, col)`, valid where it crosses no kink: `ε²/6 · Σ_e |s_e|³ · cubic`.
    pub fn truncation_bound(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> f64 {
        let cubic = self.cubic[p].row(row);
        let sum: f64 = (0..cubic.len())
            .map(|e| {
                let s = col.map_or(1.0, |j| self.inputs[p][[j, e]]).abs();
                s * s * s * cubic[e]
            })
            .sum();
        eps * eps / 6.0 * sum
    }
}

/// For a change of layer `p`'s pre-activations along `t` (`changes`, `n_p × m` per unit of
/// `t`): whether a step of `eps` may bring a kinked unit to its kink, and a bound on the
/// central difference's truncation at `eps` where it does not.
pub fn along_change(
    problem: &Problem,
    acts: &Activations,
    p: usize,
    changes: ArrayView2<f64>,
    eps: f64,
) -> (bool, f64) {
    let (mut crosses, mut cubic) = (false, 0.0);
    for (e, change) in changes.columns().into_iter().enumerate() {
        let start = change.insert_axis(Axis(1));
        let (reach, c) = along(problem, acts, p, e, (start, &[eps]));
        crosses |= eps >= reach[0];
        cubic += c[0];
    }
    (crosses, eps * eps / 6.0 * cubic)
}

/// Example `e`'s bounds for the columns of `start` (`n_p × k`: the change of layer `p`'s
/// pre-activations per unit `t` of each), each taken over `|t| ≤ steps[c]`: the reach of
/// the nearest kink and the cubic bound on `d³J_e/dt³`, per column.
fn along(
    problem: &Problem,
    acts: &Activations,
    p: usize,
    e: usize,
    (start, steps): (ArrayView2<f64>, &[f64]),
) -> (Array1<f64>, Array1<f64>) {
    let net = problem.net().layers();
    let model = problem.model();
    let last = net.len() - 1;
    let k = start.ncols();
    let mut reach = Array1::from_elem(k, NO_KINK);
    // Exact (signed) while the path is linear; majorants of |z⁽ʲ⁾| over the interval.
    let mut signed = start.to_owned();
    let mut linear = true;
    let mut a1 = signed.mapv(f64::abs);
    let mut a2 = Array2::<f64>::zeros(a1.dim());
    let mut a3 = Array2::<f64>::zeros(a1.dim());
    for l in p..last {
        let act = model.hidden[l];
        let z = acts.z[l].column(e);
        for (q, &zq) in z.iter().enumerate() {
            let keep = model.keep(l, q, e);
            for c in 0..k {
                let d1 = a1[[q, c]];
                if act.kink().is_some() && d1 > 0.0 {
                    reach[c] = reach[c].min(zq.abs() / d1);
                }
                let radius = steps[c] * d1;
                let [m1, m2, m3] = act.derivative_sups(zq - radius, zq + radius);
                let (b1, b2, b3) = (d1, a2[[q, c]], a3[[q, c]]);
                a1[[q, c]] = keep * m1 * b1;
                a2[[q, c]] = keep * (m2 * b1 * b1 + m1 * b2);
                a3[[q, c]] = keep * (m3 * b1 * b1 * b1 + 3.0 * m2 * b1 * b2 + m1 * b3);
                if linear {
                    signed[[q, c]] *= keep * act.derivative(zq);
                }
            }
        }
        linear &= act.is_piecewise_linear();
        let w = &net[l + 1].w;
        if linear {
            signed = w.dot(&signed);
            a1 = signed.mapv(f64::abs);
            a2 = Array2::zeros(a1.dim());
            a3 = Array2::zeros(a1.dim());
        } else {
            let abs_w = w.mapv(f64::abs);
            a1 = abs_w.dot(&a1);
            a2 = abs_w.dot(&a2);
            a3 = abs_w.dot(&a3);
        }
    }
    let scale = model.scale(problem.examples());
    let z = acts.z[last].column(e);
    let y = problem.y().column(e);
    let cubic = Array1::from_iter((0..k).map(|c| {
        scale
            * loss_cubic(
                model.loss,
                (z, y),
                (a1.column(c), a2.column(c), a3.column(c)),
                steps[c],
            )
    }));
    (reach, cubic)
}

/// A bound on one example's `|d³loss/dt³|` when its logits `z` (labels `y`) move with
/// derivatives bounded by `a1, a2, a3` over `|t| ≤ step`.
fn loss_cubic(
    loss: Loss,
    (z, y): (ArrayView1<f64>, ArrayView1<f64>),
    (a1, a2, a3): (ArrayView1<f64>, ArrayView1<f64>, ArrayView1<f64>),
    step: f64,
) -> f64 {
    let max = |a: ArrayView1<f64>| a.fold(0.0f64, |m, &v| m.max(v));
    match loss {
        Loss::Bce => (0..z.len())
            .map(|o| {
                let radius = step * a1[o];
                let (lo, hi) = (z[o] - radius, z[o] + radius);
                // softplus' = σ: the third derivative of softplus(u) − y·u along t.
                let [s1, s2, _] = sigmoid_derivative_sups(lo, hi);
                let residual = (sigmoid(lo) - y[o]).abs().max((sigmoid(hi) - y[o]).abs());
                s2 * a1[o].powi(3) + 3.0 * s1 * a1[o] * a2[o] + residual * a3[o]
            })
            .sum(),
        Loss::Mse | Loss::MseMean | Loss::Sse => {
            // f·Σ(z − y)²: its third derivative along t is 2f·(3u'u'' + (z − y)u''').
            let f = loss.squared_factor(z.len()).expect("a squared error");
            (0..z.len())
                .map(|o| {
                    let residual = (z[o] - y[o]).abs() + step * a1[o];
                    2.0 * f * (3.0 * a1[o] * a2[o] + residual * a3[o])
                })
                .sum()
        }
        Loss::Softmax => {
            // Along t the logits' derivatives are random variables under p(t): the third
            // cumulant and covariance are bounded by their variances, at most a² and at
            // most (2a)² times the probability q off the top class, which over the interval
            // grows at most by e^(2r) (r the logits' largest move). With labels one-hot on
            // the top class, |p − y|₁ = 2(1 − p_top) too.
            let (b1, b2, b3) = (max(a1), max(a2), max(a3));
            let top = (0..z.len())
                .max_by(|&i, &j| z[i].total_cmp(&z[j]))
                .unwrap_or(0);
            let rest: f64 = (0..z.len())
                .filter(|&k| k != top)
                .map(|k| (z[k] - z[top]).exp())
                .sum::<f64>();
            let off_top = rest / (1.0 + rest);
            let reach = 2.0 * step * b1;
            let q = (off_top * reach.exp()).min(1.0);
            let spread = (4.0 * q).min(1.0);
            let labels = if y[top] == 1.0 { q } else { 1.0 };
            2.0 * b1 * b1 * b1 * spread + 3.0 * b1 * b2 * spread + 2.0 * b3 * labels
        }
    }
}
