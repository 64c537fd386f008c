//! The delta method on the CPU (DESIGN §2): from one unperturbed pass, propagate only the
//! change a perturbation makes, exactly through every ReLU, and compute the cost change
//! without cancellation. The f64 reference for the GPU's delta kernel.

use ndarray::{Array1, Array2};
use rayon::prelude::*;

use super::forward::{forward, sigmoid, softplus, Activations};
use crate::estimate::DeltaCost;
use crate::problem::Problem;

/// One cost term's change, `softplus(z + Δ) − softplus(z) − yΔ`, without cancellation:
/// `log1p(σ(z)·expm1(Δ)) − yΔ` for small Δ.
pub fn cost_term_change(z: f64, sigma: f64, y: f64, delta: f64) -> f64 {
    let change = if delta.abs() < 1.0 {
        (sigma * delta.exp_m1()).ln_1p()
    } else {
        softplus(z + delta) - softplus(z)
    };
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

/// Per-thread buffers for one example's change vectors; entry l belongs to layer l's output.
struct Scratch {
    dz: Vec<Array1<f64>>,
    da: Vec<Array1<f64>>,
}

impl Scratch {
    fn new(problem: &Problem) -> Self {
        let widths = problem.net().widths();
        Self {
            dz: widths[1..].iter().map(|&n| Array1::zeros(n)).collect(),
            da: widths[1..].iter().map(|&n| Array1::zeros(n)).collect(),
        }
    }
}

/// The cost change of `θ_index + step` (step may be negative), example by example: one
/// entry changes at layer p, a column of W at p + 1, dense vectors beyond. Examples where
/// the change dies at a ReLU cost nothing further.
fn propagate(
    problem: &Problem,
    base: &BasePass,
    index: usize,
    step: f64,
    scratch: &mut Scratch,
) -> (f64, f64, bool) {
    let net = problem.net();
    let last = net.layers().len() - 1;
    let (p, row, col) = locate(problem, index);
    let z_out = &base.acts.z[last];
    let (mut total, mut magnitude, mut kink) = (0.0, 0.0, false);
    let mut add_cost = |o: usize, k: usize, d: f64| {
        let y = problem.y()[[o, k]];
        let term = cost_term_change(z_out[[o, k]], base.sigma[[o, k]], y, d);
        total += term;
        magnitude += term.abs() + (y * d).abs();
    };
    for k in 0..problem.examples() {
        let d = match col {
            Some(j) if p == 0 => step * problem.x()[[j, k]],
            Some(j) => step * base.acts.a[p - 1][[j, k]],
            None => step,
        };
        if d == 0.0 {
            continue;
        }
        if p == last {
            add_cost(row, k, d);
            continue;
        }
        let (da, crossed) = relu_change(base.acts.z[p][[row, k]], d);
        kink |= crossed;
        if da == 0.0 {
            continue;
        }
        // Layer p + 1: the column W_(p+1)[:, row] times the one changed activation.
        let mut layer = p + 1;
        let dz = &mut scratch.dz[layer];
        dz.assign(&net.layers()[layer].w.column(row));
        *dz *= da;
        while layer < last {
            let (dz_all, da_all) = (&mut scratch.dz, &mut scratch.da);
            let z = base.acts.z[layer].column(k);
            for ((a, &dzr), &zr) in da_all[layer]
                .iter_mut()
                .zip(dz_all[layer].iter())
                .zip(z.iter())
            {
                let (change, crossed) = relu_change(zr, dzr);
                kink |= crossed;
                *a = change;
            }
            ndarray::linalg::general_mat_vec_mul(
                1.0,
                &net.layers()[layer + 1].w,
                &da_all[layer],
                0.0,
                &mut dz_all[layer + 1],
            );
            layer += 1;
        }
        for (o, &d) in scratch.dz[last].iter().enumerate() {
            add_cost(o, k, d);
        }
    }
    let m = problem.examples() as f64;
    (total / m, magnitude / m, kink)
}

/// The cost changes of `θ_i ± eps` for each index in `indices`, on all cores.
pub fn delta_costs(problem: &Problem, eps: f64, indices: &[usize]) -> Vec<DeltaCost> {
    let base = BasePass::new(problem);
    indices
        .par_iter()
        .map_init(
            || Scratch::new(problem),
            |scratch, &i| {
                let (plus, mag_plus, kink_plus) = propagate(problem, &base, i, eps, scratch);
                let (minus, mag_minus, kink_minus) = propagate(problem, &base, i, -eps, scratch);
                DeltaCost {
                    plus,
                    minus,
                    magnitude: mag_plus + mag_minus,
                    kink: kink_plus || kink_minus,
                }
            },
        )
        .collect()
}
