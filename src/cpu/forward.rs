//! Forward pass and the numerically stable binary cross-entropy cost (DESIGN §1).

use ndarray::{Array2, ArrayView2, Axis};

use crate::model::Mlp;

/// Pre-activations `Z_l` and activations `A_l` of every layer (`A_L` is the sigmoid output).
pub struct Activations {
    pub z: Vec<Array2<f64>>,
    pub a: Vec<Array2<f64>>,
}

/// Runs the network on `x`, keeping what backprop needs.
pub fn forward(net: &Mlp, x: ArrayView2<f64>) -> Activations {
    let last = net.layers().len() - 1;
    let mut z = Vec::with_capacity(last + 1);
    let mut a: Vec<Array2<f64>> = Vec::with_capacity(last + 1);
    for (l, layer) in net.layers().iter().enumerate() {
        let input = if l == 0 { x } else { a[l - 1].view() };
        let zl = layer.w.dot(&input) + layer.b.view().insert_axis(Axis(1));
        let al = if l == last {
            zl.mapv(sigmoid)
        } else {
            zl.mapv(relu)
        };
        z.push(zl);
        a.push(al);
    }
    Activations { z, a }
}

/// The output logits `Z_L` only: the cheapest path to the cost.
pub fn logits(net: &Mlp, x: ArrayView2<f64>) -> Array2<f64> {
    let last = net.layers().len() - 1;
    let mut a = x.to_owned();
    for (l, layer) in net.layers().iter().enumerate() {
        let z = layer.w.dot(&a) + layer.b.view().insert_axis(Axis(1));
        a = if l == last { z } else { z.mapv(relu) };
    }
    a
}

/// `J = (1/m) Σ_k Σ_o [softplus(z) − y·z]`: the exercise's cross-entropy without `log(1 − a)`.
pub fn cost_from_logits(z: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    let m = z.ncols() as f64;
    let total: f64 = z
        .iter()
        .zip(y.iter())
        .map(|(&z, &y)| softplus(z) - y * z)
        .sum();
    total / m
}

/// The cost of `net` on `(x, y)`.
pub fn cost(net: &Mlp, x: ArrayView2<f64>, y: ArrayView2<f64>) -> f64 {
    cost_from_logits(logits(net, x).view(), y)
}

/// `log(1 + e^z)` without overflow or cancellation.
pub fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// The logistic function, stable for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

fn relu(z: f64) -> f64 {
    z.max(0.0)
}
