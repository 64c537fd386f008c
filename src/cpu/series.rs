//! The delta method for every model: a step of `W_p[i, j]` or `b_p[i]` changes the cost
//! only through one pre-activation, `z_p[i, e] + δ_e` per example, so the cost change is
//! `Σ_e g_(p,i,e)(δ_e)` with one function of one variable per unit and example, shared by
//! every parameter of the row. Each `g` is expanded once, as a Taylor series in `δ` of
//! order [`ORDER`], by propagating truncated series (jets) from the unit through every
//! layer downstream — tanh and sigmoid by their differential equations, softmax's
//! log-sum-exp and softplus by theirs — and a parameter's step then costs `m` polynomial
//! evaluations, as the ReLU-only delta method's does. The even terms cancel in a central
//! difference; the odd ones beyond the first are its truncation, known here, and what the
//! series leaves out is estimated from its last term.
//!
//! A ReLU or leaky ReLU unit on the way is linear between its kinks, and the series is that
//! of the cost with every such unit at its slope at θ: its central difference estimates the
//! derivative at θ whether or not a step reaches a kink, except where the change reaches a
//! unit sitting on its kink (`ties`): those coordinates are judged by the conventions'
//! derivatives instead.

use ndarray::{Array2, Array3, ArrayView1, Axis};
use rayon::prelude::*;

use super::forward::{forward, Activations};
use super::sensitivity::Sensitivity;
use crate::error::Result;
use crate::estimate::{DeltaCost, Sums};
use crate::model::{Activation, Loss, Model};
use crate::monitor::Monitor;
use crate::problem::Problem;

/// Order of each unit's series: odd terms up to δ⁵ reach the central difference.
pub const ORDER: usize = 5;
/// Coefficients per series (`δ⁰ … δ^ORDER`; the constant is 0).
const N: usize = ORDER + 1;

/// Every unit's series and what a step of one of its parameters needs.
pub struct Series {
    /// Per layer `p`: the cost change's coefficients `[i, e, k]` (`k = 1 … ORDER` at
    /// `k − 1`), reduction included.
    pub coeff: Vec<Array3<f64>>,
    /// The inputs, gains and ties every layer's rows share.
    pub sens: Sensitivity,
}

impl Series {
    pub fn new(problem: &Problem) -> Self {
        let net = problem.net();
        let model = problem.model();
        let acts = forward(net, model, problem.x().view());
        let last = net.layers().len() - 1;
        let residual =
            super::forward::residuals(model.loss, acts.z[last].view(), problem.y().view());
        let m = problem.examples();
        let layers = net.layers().len();
        let scale = model.scale(m);
        let sens = Sensitivity::new(problem);
        // Between kinks every unit downstream is linear: the logits move along the gains.
        let linear = model.linear_between_kinks();
        let coeff = (0..layers)
            .map(|p| {
                let rows = net.layers()[p].w.nrows();
                let per_example: Vec<Array2<f64>> = if !linear && p + 2 == last {
                    through_one_hidden(problem, (&acts, &residual), p)
                } else {
                    (0..m)
                        .into_par_iter()
                        .map(|e| {
                            if linear {
                                gain_series(problem, (&acts, &residual), &sens, p, e)
                            } else {
                                layer_series(problem, (&acts, &residual), p, e)
                            }
                        })
                        .collect()
                };
                let mut c = Array3::zeros((rows, m, ORDER));
                for (e, s) in per_example.into_iter().enumerate() {
                    c.index_axis_mut(Axis(1), e).assign(&(s * scale));
                }
                c
            })
            .collect();
        Self { coeff, sens }
    }

    /// The cost changes of a step `±eps` in parameter `(p, row, col)`, both signs.
    pub fn delta_cost(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> DeltaCost {
        let coeff = self.coeff[p].index_axis(Axis(0), row);
        let input = col.map(|j| self.sens.inputs[p].row(j));
        let mut sums = Sums::default();
        for (e, g) in coeff.outer_iter().enumerate() {
            let s = eps * input.map_or(1.0, |a| a[e]);
            if s == 0.0 {
                continue;
            }
            add_example(&mut sums, g, s);
        }
        sums.finish(1.0)
    }

    /// How far the central difference of the series at step `eps` is from the derivative:
    /// its odd terms beyond the first, known exactly (the series is the polynomial
    /// evaluated, so nothing it leaves out enters the estimate), in absolute value term by
    /// term, which also bounds what a running sum may absorb of them.
    pub fn truncation_bound(&self, (p, row, col): (usize, usize, Option<usize>), eps: f64) -> f64 {
        let coeff = self.coeff[p].index_axis(Axis(0), row);
        let input = col.map(|j| self.sens.inputs[p].row(j));
        let odd: f64 = coeff
            .outer_iter()
            .enumerate()
            .map(|(e, g)| {
                let s = eps * input.map_or(1.0, |a| a[e]);
                (g[2] * s.powi(3)).abs() + (g[4] * s.powi(5)).abs()
            })
            .sum();
        odd / eps
    }
}

/// Adds `g(s)` and `g(−s)` term by term to `sums`, from `g`'s coefficients.
fn add_example(sums: &mut Sums, g: ArrayView1<f64>, s: f64) {
    let mut power = 1.0;
    for (k, &c) in g.iter().enumerate() {
        power *= s;
        let term = c * power;
        // Odd powers (k even) change sign with the step.
        sums.add(
            term,
            if k % 2 == 0 { -term } else { term },
            2.0 * term.abs(),
            c != 0.0,
        );
    }
}

/// For layer `p` at example `e`: each unit's cost-change series (`n_p × ORDER`, without
/// the reduction), jets of all units propagated at once: hidden jets are `n_l × (n_p·N)`.
fn layer_series(
    problem: &Problem,
    (acts, residual): (&Activations, &Array2<f64>),
    p: usize,
    e: usize,
) -> Array2<f64> {
    let net = problem.net();
    let model = problem.model();
    let layers = net.layers();
    let last = layers.len() - 1;
    let units = layers[p].w.nrows();
    // The unit's own change: δ itself (at the output), or its activation's.
    let mut own = Array2::<f64>::zeros((units, N));
    for i in 0..units {
        let mut u = [0.0; N];
        u[1] = 1.0;
        if p == last {
            own.row_mut(i).assign(&ArrayView1::from(&u));
        } else {
            let d = activation_jet(model.hidden[p], acts.z[p][[i, e]], &u);
            let keep = model.keep(p, i, e);
            own.row_mut(i)
                .assign(&ArrayView1::from(&d.map(|v| v * keep)));
        }
    }
    if p == last {
        // Each output unit alone moves: its loss series with the others fixed.
        let mut out = Array2::zeros((units, ORDER));
        for i in 0..units {
            let mut u = Array2::zeros((units, N));
            u.row_mut(i).assign(&own.row(i));
            let g = loss_jet(model, (acts, residual), problem.y().column(e), e, &u);
            out.row_mut(i).assign(&ArrayView1::from(&g[1..]));
        }
        return out;
    }
    // z_(p+1) changes by the column W_(p+1)[:, i] times unit i's change: rank one.
    let next = &layers[p + 1].w;
    let mut z = Array2::<f64>::zeros((next.nrows(), units * N));
    for (q, mut row) in z.rows_mut().into_iter().enumerate() {
        for i in 0..units {
            let w = next[[q, i]];
            for k in 1..N {
                row[i * N + k] = w * own[[i, k]];
            }
        }
    }
    for l in p + 1..last {
        let act = model.hidden[l];
        for (q, mut row) in z.rows_mut().into_iter().enumerate() {
            let z0 = acts.z[l][[q, e]];
            let keep = model.keep(l, q, e);
            for block in row
                .as_slice_mut()
                .expect("standard layout")
                .chunks_exact_mut(N)
            {
                let u: [f64; N] = block.try_into().expect("N coefficients");
                let d = activation_jet(act, z0, &u);
                for (b, v) in block.iter_mut().zip(d) {
                    *b = v * keep;
                }
            }
        }
        z = layers[l + 1].w.dot(&z);
    }
    // Per unit of layer p, its block of output jets: the loss series.
    let mut out = Array2::zeros((units, ORDER));
    for i in 0..units {
        let u = z.slice(ndarray::s![.., i * N..(i + 1) * N]).to_owned();
        let g = loss_jet(model, (acts, residual), problem.y().column(e), e, &u);
        out.row_mut(i).assign(&ArrayView1::from(&g[1..]));
    }
    out
}

/// For layer `p` at example `e` of a network linear between kinks: each unit's
/// cost-change series from its gains, the logits' change being `δ·gain` exactly.
fn gain_series(
    problem: &Problem,
    (acts, residual): (&Activations, &Array2<f64>),
    sens: &Sensitivity,
    p: usize,
    e: usize,
) -> Array2<f64> {
    let gains = sens.gain[p].index_axis(Axis(1), e);
    let mut out = Array2::zeros((gains.nrows(), ORDER));
    let mut u = Array2::<f64>::zeros((gains.ncols(), N));
    for (i, gain) in gains.outer_iter().enumerate() {
        u.column_mut(1).assign(&gain);
        let g = loss_jet(
            problem.model(),
            (acts, residual),
            problem.y().column(e),
            e,
            &u,
        );
        out.row_mut(i).assign(&ArrayView1::from(&g[1..]));
    }
    out
}

/// For layer `p` with one hidden layer between it and the output, every example's
/// series (`n_p × ORDER` each, without the reduction), the layers' jets as matrix
/// products: unit i's own change `o_i(δ)` reaches hidden unit q as `W[q, i]·o_i`, whose
/// activation (Taylor coefficients `d_r` at its `z`) changes by `Σ_r d_r·W[q, i]^r·o_i^r`,
/// so the logits move by `Σ_r M_r[o, e, i]·o_i^r`, where `M_r[o] = (W_L[o, :] ∘ d_rᵀ)·W^∘r`
/// is one product over the examples per order and output — instead of every unit's jet
/// carried through the hidden layer example by example.
fn through_one_hidden(
    problem: &Problem,
    (acts, residual): (&Activations, &Array2<f64>),
    p: usize,
) -> Vec<Array2<f64>> {
    let model = problem.model();
    let layers = problem.net().layers();
    let last = layers.len() - 1;
    let m = problem.examples();
    let (next, out) = (&layers[p + 1].w, &layers[last].w);
    let (hidden, units, outs) = (next.nrows(), next.ncols(), out.nrows());
    let mut unit = [0.0; N];
    unit[1] = 1.0;
    // d_r[q, e] at r − 1: the hidden activation's coefficients, dropout's factor included.
    let mut d = vec![Array2::<f64>::zeros((m, hidden)); ORDER];
    for e in 0..m {
        for q in 0..hidden {
            let jet = activation_jet(model.hidden[p + 1], acts.z[p + 1][[q, e]], &unit);
            let keep = model.keep(p + 1, q, e);
            for r in 1..N {
                d[r - 1][[e, q]] = jet[r] * keep;
            }
        }
    }
    // M_r[o] (m × n_p), at [r − 1][o].
    let mut power = next.clone();
    let mut reach: Vec<Vec<Array2<f64>>> = Vec::with_capacity(ORDER);
    for (r, d_r) in d.iter().enumerate() {
        if r > 0 {
            power = &power * next;
        }
        reach.push(
            (0..outs)
                .into_par_iter()
                .map(|o| (d_r * &out.row(o)).dot(&power))
                .collect(),
        );
    }
    (0..m)
        .into_par_iter()
        .map(|e| {
            let mut series = Array2::zeros((units, ORDER));
            let mut u = Array2::<f64>::zeros((outs, N));
            for i in 0..units {
                let keep = model.keep(p, i, e);
                let own =
                    activation_jet(model.hidden[p], acts.z[p][[i, e]], &unit).map(|v| v * keep);
                u.fill(0.0);
                let mut own_power = own;
                for (r, per_output) in reach.iter().enumerate() {
                    if r > 0 {
                        own_power = series_product(&own_power, &own);
                    }
                    for (o, m_r) in per_output.iter().enumerate() {
                        let c = m_r[[e, i]];
                        for k in 1..N {
                            u[[o, k]] += c * own_power[k];
                        }
                    }
                }
                let g = loss_jet(model, (acts, residual), problem.y().column(e), e, &u);
                series.row_mut(i).assign(&ArrayView1::from(&g[1..]));
            }
            series
        })
        .collect()
}

/// The product of two series without constants, truncated to `N` coefficients.
fn series_product(a: &[f64; N], b: &[f64; N]) -> [f64; N] {
    std::array::from_fn(|n| (1..n).map(|j| a[j] * b[n - j]).sum())
}

/// The jet of `act(z0 + u) − act(z0)` for a jet `u` with `u[0] = 0`. The first
/// coefficients of tanh's and σ's equations, `1 − t²` and `σ(1 − σ)` at `z0`, are formed
/// without cancellation (saturated units would lose them).
fn activation_jet(act: Activation, z0: f64, u: &[f64; N]) -> [f64; N] {
    match act {
        Activation::Tanh => {
            // t' = (1 − t²)·u'
            let mut t = [0.0; N];
            t[0] = z0.tanh();
            let first = crate::model::spec::tanh_prime(z0);
            ode_series(&mut t, u, |t, k| {
                if k == 0 {
                    first
                } else {
                    -(0..=k).map(|a| t[a] * t[k - a]).sum::<f64>()
                }
            });
            t[0] = 0.0;
            t
        }
        Activation::Sigmoid => {
            let mut s = sigmoid_jet(z0, u);
            s[0] = 0.0;
            s
        }
        linear => {
            // Between kinks: the slope at z0.
            let slope = linear.derivative(z0);
            u.map(|v| v * slope)
        }
    }
}

/// The jet of `σ(z0 + u)` (its constant `σ(z0)` included): `s' = s(1 − s)·u'`, whose
/// coefficients are `σ(z0)σ(−z0)` first, then `s_k·(σ(−z0) − σ(z0)) − Σ_(0<a<k) s_a s_(k−a)`.
fn sigmoid_jet(z0: f64, u: &[f64; N]) -> [f64; N] {
    use crate::model::spec::sigmoid;
    let (s0, t0) = (sigmoid(z0), sigmoid(-z0));
    let mut s = [0.0; N];
    s[0] = s0;
    ode_series(&mut s, u, |s, k| {
        if k == 0 {
            s0 * t0
        } else {
            s[k] * (t0 - s0) - (1..k).map(|a| s[a] * s[k - a]).sum::<f64>()
        }
    });
    s
}

/// Fills `y[1..]` for `y' = f(y)·u'` by `n·y_n = Σ_(j=1..n) j·u_j·f_(n−j)`, where
/// `f(y, k)` is the k-th coefficient of `f(y)` (needing `y` up to `k` only).
fn ode_series(y: &mut [f64; N], u: &[f64; N], f: impl Fn(&[f64; N], usize) -> f64) {
    let mut fk = [0.0; N];
    for n in 1..N {
        fk[n - 1] = f(y, n - 1);
        let sum: f64 = (1..=n).map(|j| j as f64 * u[j] * fk[n - j]).sum();
        y[n] = sum / n as f64;
    }
}

/// The jet of one example's loss change when its logits change by the jets `u`
/// (`n_L × N`, constants 0), without the reduction.
fn loss_jet(
    model: &Model,
    (acts, residual): (&Activations, &Array2<f64>),
    y: ArrayView1<f64>,
    e: usize,
    u: &Array2<f64>,
) -> [f64; N] {
    let last = acts.z.len() - 1;
    let z = acts.z[last].column(e);
    let out = acts.a[last].column(e);
    let r = residual.column(e);
    let mut g = [0.0; N];
    match model.loss {
        Loss::Mse | Loss::MseMean | Loss::Sse => {
            // f·((z − y + u)² − (z − y)²) = r·u + f·u², r = 2f·(z − y).
            let f = model
                .loss
                .squared_factor(u.nrows())
                .expect("a squared error");
            for (o, uo) in u.rows().into_iter().enumerate() {
                for n in 1..N {
                    let square: f64 = (0..=n).map(|a| uo[a] * uo[n - a]).sum();
                    g[n] += r[o] * uo[n] + f * square;
                }
            }
        }
        Loss::Bce => {
            for (o, uo) in u.rows().into_iter().enumerate() {
                let uo: [f64; N] = std::array::from_fn(|k| uo[k]);
                // σ(z + u) by its equation, then softplus' = σ: n·sp_n = Σ j·u_j·σ_(n−j).
                let s = sigmoid_jet(z[o], &uo);
                g[1] += r[o] * uo[1];
                for n in 2..N {
                    let sum: f64 = (1..=n).map(|j| j as f64 * uo[j] * s[n - j]).sum();
                    g[n] += sum / n as f64 - y[o] * uo[n];
                }
            }
        }
        Loss::Softmax => {
            // S = Σ_k w_k·exp(u_k) (w = softmax(z)); the change is log S − y·u.
            let mut big_s = [0.0; N];
            big_s[0] = 1.0;
            for (k, uk) in u.rows().into_iter().enumerate() {
                let uk: [f64; N] = std::array::from_fn(|n| uk[n]);
                let mut ex = [0.0; N];
                ex[0] = 1.0;
                ode_series(&mut ex, &uk, |ex, n| ex[n]);
                for n in 1..N {
                    big_s[n] += out[k] * ex[n];
                }
            }
            // L = log S: n·L_n = n·S_n − Σ_(j=1..n−1) j·L_j·S_(n−j).
            let mut log_s = [0.0; N];
            for n in 1..N {
                let sum: f64 = (1..n).map(|j| j as f64 * log_s[j] * big_s[n - j]).sum();
                log_s[n] = big_s[n] - sum / n as f64;
            }
            // The linear term from the residuals directly (no cancellation).
            g[1] = u
                .rows()
                .into_iter()
                .enumerate()
                .map(|(k, uk)| r[k] * uk[1])
                .sum();
            for n in 2..N {
                let yu: f64 = u
                    .rows()
                    .into_iter()
                    .enumerate()
                    .map(|(k, uk)| y[k] * uk[n])
                    .sum();
                g[n] = log_s[n] - yu;
            }
        }
    }
    g
}

/// The cost changes of `θ_i ± eps` for each index in `indices`, parameter by parameter on
/// all cores: the series kernel's CPU twin (the host's own evaluation takes the matrix
/// products, `cpu::products`).
pub fn delta_costs(
    problem: &Problem,
    series: &Series,
    eps: f64,
    indices: &[usize],
    monitor: &dyn Monitor,
) -> Result<Vec<DeltaCost>> {
    super::delta::per_coordinate(problem, indices, monitor, |c| series.delta_cost(c, eps))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::NetworkSpec;
    use crate::model::ModelOptions;

    /// A 4-6-5-k network computing `settings` (3 softmax classes, else 2 outputs), its
    /// unperturbed pass and residuals.
    fn unperturbed(settings: &str, seed: u64) -> (Problem, Activations, Array2<f64>) {
        let outputs = if settings.contains("softmax") { 3 } else { 2 };
        let problem = NetworkSpec::new(vec![4, 6, 5, outputs], 7, seed)
            .unwrap()
            .with_model(ModelOptions::parse_line(settings).unwrap())
            .unwrap()
            .generate();
        let acts = forward(problem.net(), problem.model(), problem.x().view());
        let residual = super::super::forward::residuals(
            problem.model().loss,
            acts.z[2].view(),
            problem.y().view(),
        );
        (problem, acts, residual)
    }

    /// `b` within `tolerance` of `a`, relative to `a`'s largest entry (nonzero).
    fn assert_close(a: &Array2<f64>, b: &Array2<f64>, tolerance: f64, what: &str) {
        let scale = a.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what}");
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tolerance * scale, "{what}: {x} {y}");
        }
    }

    /// The products through one hidden layer give the per-example jets' series.
    #[test]
    fn the_products_through_one_hidden_layer_give_the_jets_series() {
        for settings in [
            "hidden=tanh",
            "hidden=sigmoid,tanh loss=softmax keep_prob=0.7",
            "hidden=relu,sigmoid loss=mse",
        ] {
            let (problem, acts, residual) = unperturbed(settings, 5);
            let fast = through_one_hidden(&problem, (&acts, &residual), 0);
            for (e, products) in fast.iter().enumerate() {
                let jets = layer_series(&problem, (&acts, &residual), 0, e);
                assert_close(&jets, products, 1e-12, &format!("{settings} {e}"));
            }
        }
    }

    /// A network linear between kinks has the same series from its gains as from jets
    /// propagated through every layer.
    #[test]
    fn gains_give_the_jets_series_where_every_unit_is_linear_between_kinks() {
        for settings in [
            "hidden=relu",
            "hidden=leaky_relu loss=softmax keep_prob=0.8",
            "hidden=identity loss=mse",
        ] {
            let (problem, acts, residual) = unperturbed(settings, 3);
            let sens = Sensitivity::new(&problem);
            for p in 0..=2 {
                for e in 0..problem.examples() {
                    let jets = layer_series(&problem, (&acts, &residual), p, e);
                    let gains = gain_series(&problem, (&acts, &residual), &sens, p, e);
                    assert_close(&jets, &gains, 1e-13, &format!("{settings} {p} {e}"));
                }
            }
        }
    }
}
