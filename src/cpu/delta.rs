//! The delta method on the CPU (DESIGN §2): from one unperturbed pass, propagate only the
//! change a perturbation makes, exactly through every ReLU, and compute the cost change
//! without cancellation. The f64 reference for the GPU's delta kernel.

use ndarray::{Array1, Array2, Axis};
use rayon::prelude::*;

use super::forward::{forward, sigmoid, softplus, Activations};
use crate::problem::Problem;

/// The change one perturbation makes.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeltaCost {
    /// `J(θ + ε e_i) − J(θ)` and `J(θ − ε e_i) − J(θ)`.
    pub plus: f64,
    pub minus: f64,
    /// `(1/m) Σ |terms|` of both sums: the scale their round-off is relative to.
    pub magnitude: f64,
    /// Whether either step moved a ReLU input across 0.
    pub kink: bool,
}

/// One cost term's change, `softplus(z + Δ) − softplus(z) − yΔ`, without cancellation:
/// `log1p(σ(z)·expm1(Δ)) − yΔ` for small Δ.
pub fn cost_term_change(z: f64, sigma: f64, y: f64, delta: f64) -> f64 {
    let change = if delta.abs() < 1.0 { (sigma * delta.exp_m1()).ln_1p() } else { softplus(z + delta) - softplus(z) };
    change - y * delta
}

/// `relu(z + Δ) − relu(z)`, and whether it crossed the kink at 0.
pub fn relu_change(z: f64, delta: f64) -> (f64, bool) {
    let moved = z + delta;
    match (z > 0.0, moved > 0.0) {
        (true, true) => (delta, false),
        (false, false) => (0.0, false),
        _ => (moved.max(0.0) - z.max(0.0), true),
    }
}

/// The unperturbed pass, shared by every perturbation.
pub struct BasePass {
    acts: Activations,
    sigma: Array2<f64>,
}

impl BasePass {
    pub fn new(problem: &Problem) -> Self {
        let acts = forward(problem.net(), problem.x().view());
        let sigma = acts.z[acts.z.len() - 1].mapv(sigmoid);
        Self { acts, sigma }
    }
}

/// Where flat parameter `index` sits: layer (0-based), row, and column (`None` for a bias).
pub fn locate(problem: &Problem, index: usize) -> (usize, usize, Option<usize>) {
    let mut rest = index;
    for (l, layer) in problem.net().layers().iter().enumerate() {
        let (rows, cols) = layer.w.dim();
        if rest < rows * cols {
            return (l, rest / cols, Some(rest % cols));
        }
        rest -= rows * cols;
        if rest < rows {
            return (l, rest, None);
        }
        rest -= rows;
    }
    panic!("parameter index {index} out of range")
}

/// The cost change of `θ_index + step` (step may be negative).
fn propagate(problem: &Problem, base: &BasePass, index: usize, step: f64) -> (f64, f64, bool) {
    let net = problem.net();
    let last = net.layers().len() - 1;
    let m = problem.examples();
    let (p, row, col) = locate(problem, index);
    let input = if p == 0 { problem.x().view() } else { base.acts.a[p - 1].view() };
    let dz_row: Array1<f64> = match col {
        Some(j) => input.row(j).mapv(|a| step * a),
        None => Array1::from_elem(m, step),
    };
    let mut kink = false;
    // The change to Z at the current layer, as a dense matrix from layer p + 1 on.
    let mut dz: Array2<f64>;
    if p == last {
        dz = Array2::zeros((net.output_width(), m));
        dz.row_mut(row).assign(&dz_row);
    } else {
        let z_row = base.acts.z[p].row(row);
        let da_row = Array1::from_iter(z_row.iter().zip(&dz_row).map(|(&z, &d)| {
            let (change, crossed) = relu_change(z, d);
            kink |= crossed;
            change
        }));
        let w_col = net.layers()[p + 1].w.column(row);
        dz = w_col.insert_axis(Axis(1)).dot(&da_row.insert_axis(Axis(0)));
        let mut layer = p + 1;
        while layer < last {
            let da = ndarray::Zip::from(&base.acts.z[layer]).and(&dz).map_collect(|&z, &d| {
                let (change, crossed) = relu_change(z, d);
                kink |= crossed;
                change
            });
            layer += 1;
            dz = net.layers()[layer].w.dot(&da);
        }
    }
    let (mut total, mut magnitude) = (0.0, 0.0);
    for ((&d, &z), (&s, &y)) in dz.iter().zip(&base.acts.z[last]).zip(base.sigma.iter().zip(problem.y())) {
        let term = cost_term_change(z, s, y, d);
        total += term;
        magnitude += term.abs() + (y * d).abs();
    }
    (total / m as f64, magnitude / m as f64, kink)
}

/// The cost changes of `θ_i ± eps` for each index in `indices`, on all cores.
pub fn delta_costs(problem: &Problem, eps: f64, indices: &[usize]) -> Vec<DeltaCost> {
    let base = BasePass::new(problem);
    indices
        .par_iter()
        .map(|&i| {
            let (plus, mag_plus, kink_plus) = propagate(problem, &base, i, eps);
            let (minus, mag_minus, kink_minus) = propagate(problem, &base, i, -eps);
            DeltaCost { plus, minus, magnitude: mag_plus + mag_minus, kink: kink_plus || kink_minus }
        })
        .collect()
}
