//! Forward pass and the numerically stable costs: softplus for the sigmoid's cross-entropy,
//! log-sum-exp for softmax's, the plain square for squared error.

use ndarray::{Array2, ArrayView2, Axis};

pub use crate::model::spec::sigmoid;
use crate::model::{Loss, Mlp, Model};

/// Pre-activations `Z_l` and activations `A_l` of every layer: hidden `A_l` after dropout,
/// `A_L` the output (sigmoid, softmax or identity of `Z_L`).
pub struct Activations {
    pub z: Vec<Array2<f64>>,
    pub a: Vec<Array2<f64>>,
}

/// Runs the network on `x`, keeping what backprop needs.
pub fn forward(net: &Mlp, model: &Model, x: ArrayView2<f64>) -> Activations {
    let last = net.layers().len() - 1;
    let mut z = Vec::with_capacity(last + 1);
    let mut a: Vec<Array2<f64>> = Vec::with_capacity(last + 1);
    for (l, layer) in net.layers().iter().enumerate() {
        let input = if l == 0 { x } else { a[l - 1].view() };
        let zl = layer.w.dot(&input) + layer.b.view().insert_axis(Axis(1));
        let al = if l == last {
            output(model.loss, zl.view())
        } else {
            hidden(model, l, zl.view())
        };
        z.push(zl);
        a.push(al);
    }
    Activations { z, a }
}

/// Hidden layer `l`'s activations from its pre-activations: the activation, then dropout.
pub fn hidden(model: &Model, l: usize, z: ArrayView2<f64>) -> Array2<f64> {
    let act = model.hidden[l];
    let mut a = z.mapv(|v| act.apply(v));
    if let Some(d) = &model.dropout {
        let scale = 1.0 / d.keep_prob;
        a.zip_mut_with(&d.masks[l], |v, &keep| *v *= keep * scale);
    }
    a
}

/// The output layer's activations: sigmoid, softmax (per example) or identity.
pub fn output(loss: Loss, z: ArrayView2<f64>) -> Array2<f64> {
    match loss {
        Loss::Bce => z.mapv(sigmoid),
        Loss::Mse | Loss::MseMean | Loss::Sse => z.to_owned(),
        Loss::Softmax => {
            let mut out = z.to_owned();
            for mut column in out.columns_mut() {
                let top = column.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                column.mapv_inplace(|v| (v - top).exp());
                let sum = column.sum();
                column.mapv_inplace(|v| v / sum);
            }
            out
        }
    }
}

/// The output logits `Z_L` only: the cheapest path to the cost.
pub fn logits(net: &Mlp, model: &Model, x: ArrayView2<f64>) -> Array2<f64> {
    let last = net.layers().len() - 1;
    let mut a = x.to_owned();
    for (l, layer) in net.layers().iter().enumerate() {
        let z = layer.w.dot(&a) + layer.b.view().insert_axis(Axis(1));
        a = if l == last {
            z
        } else {
            hidden(model, l, z.view())
        };
    }
    a
}

/// The data term of the cost from the logits: the per-example losses, reduced. Summed
/// with compensation, so that its additions err by 2u of the total whatever the number of
/// examples (`roundoff::Summation::Compensated`).
pub fn data_cost(model: &Model, z: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    let mut total = CompensatedSum::default();
    for (z, y) in z.columns().into_iter().zip(y.columns()) {
        match model.loss {
            Loss::Softmax => total.add(log_sum_exp(z) - z.dot(&y)),
            loss => {
                let f = loss.squared_factor(z.len()).unwrap_or(1.0);
                for (&z, &y) in z.iter().zip(y) {
                    total.add(unit_loss(loss, f, z, y));
                }
            }
        }
    }
    total.value() * model.scale(z.ncols())
}

/// One output unit's loss term (not softmax's, which couples the example's outputs);
/// `factor` is a squared error's (`Loss::squared_factor`).
fn unit_loss(loss: Loss, factor: f64, z: f64, y: f64) -> f64 {
    match loss {
        Loss::Bce => softplus(z) - y * z,
        _ => factor * (z - y) * (z - y),
    }
}

/// One example's loss from its logits `z` and labels `y`.
pub fn example_loss(loss: Loss, z: ndarray::ArrayView1<f64>, y: ndarray::ArrayView1<f64>) -> f64 {
    match loss {
        Loss::Softmax => log_sum_exp(z) - z.dot(&y),
        loss => {
            let f = loss.squared_factor(z.len()).unwrap_or(1.0);
            z.iter()
                .zip(y)
                .map(|(&z, &y)| unit_loss(loss, f, z, y))
                .sum()
        }
    }
}

/// Neumaier's compensated summation: the rounding of each addition is recovered exactly
/// and added back at the end, so the sum is within `2u·|S| + O(n·u²)·Σ|x|` of the exact
/// one (Higham, Accuracy and Stability, §4.3) instead of `(n − 1)·u·Σ|x|`.
#[derive(Clone, Copy, Debug, Default)]
pub struct CompensatedSum {
    sum: f64,
    compensation: f64,
}

impl CompensatedSum {
    pub fn add(&mut self, x: f64) {
        let t = self.sum + x;
        self.compensation += if self.sum.abs() >= x.abs() {
            (self.sum - t) + x
        } else {
            (x - t) + self.sum
        };
        self.sum = t;
    }

    pub fn value(self) -> f64 {
        self.sum + self.compensation
    }
}

/// `log Σ e^z` without overflow.
pub fn log_sum_exp(z: ndarray::ArrayView1<f64>) -> f64 {
    let top = z.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    top + z.iter().map(|&v| (v - top).exp()).sum::<f64>().ln()
}

/// The data term of `net`'s cost on `(x, y)`: what the backends evaluate per perturbation
/// (the engine adds the penalties' exact change).
pub fn data_cost_of(net: &Mlp, model: &Model, x: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    data_cost(model, logits(net, model, x).view(), y)
}

/// The whole cost of `net` on `(x, y)`: the data term and the penalties.
pub fn cost(net: &Mlp, model: &Model, x: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    data_cost(model, logits(net, model, x).view(), y) + model.penalty_cost(net, x.ncols())
}

/// `∂loss/∂z` of every example's logits (`n_L × m`, unreduced): `σ(z) − y`,
/// `softmax(z) − y` or `2f·(z − y)` (a squared error's factor f), formed without needless cancellation, so that a fitted
/// output keeps its residual's relative accuracy: `σ(z) − 1 = −σ(−z)`, and for a class of
/// label 1, `p − 1 = −Σ_(j≠k) p_j`.
pub fn residuals(loss: Loss, z: ArrayView2<f64>, y: ArrayView2<f64>) -> Array2<f64> {
    let mut r = Array2::zeros(z.dim());
    for ((mut r, z), y) in r
        .columns_mut()
        .into_iter()
        .zip(z.columns())
        .zip(y.columns())
    {
        match loss {
            Loss::Bce => {
                for ((r, &z), &y) in r.iter_mut().zip(z).zip(y) {
                    *r = match y {
                        1.0 => -sigmoid(-z),
                        0.0 => sigmoid(z),
                        y => sigmoid(z) - y,
                    };
                }
            }
            Loss::Mse | Loss::MseMean | Loss::Sse => {
                let twice = 2.0 * loss.squared_factor(z.len()).expect("a squared error");
                if twice == 1.0 {
                    r.assign(&(&z - &y));
                } else {
                    r.assign(&((&z - &y) * twice));
                }
            }
            Loss::Softmax => {
                let top = z.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                let e = z.mapv(|v| (v - top).exp());
                let sum = e.sum();
                let p = e.mapv(|v| v / sum);
                for (k, (r, &y)) in r.iter_mut().zip(y).enumerate() {
                    *r = if y == 1.0 {
                        let others: f64 = e
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != k)
                            .map(|(_, v)| v)
                            .sum();
                        -others / sum
                    } else {
                        p[k] - y
                    };
                }
            }
        }
    }
    r
}

/// `log(1 + e^z)` without overflow or cancellation.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}
