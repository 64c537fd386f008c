//! How far a correct backprop computed in lower precision (float32) can stray from the
//! exact gradient: the user's own round-off, which a check of float32 gradients must allow.
//!
//! Worst-case bounds (every rounding error aligned, `n·u` per sum of `n` terms, `|W||A|`
//! products) overstate float32 backprop errors by three orders of magnitude on deep
//! networks and would leave every float32 check undecided. Rounding errors of separate
//! operations are independent and mostly cancel, so this follows the probabilistic
//! analysis instead (Higham & Mary, 2019): each quantity carries an error *variance*,
//! propagated through the forward pass and backprop with squared weights, with every sum
//! of `n` terms adding `u²·n·Σ term²`. The bound is [`GRADIENT_ROUNDOFF_SAFETY`] standard
//! deviations, the factor set from the largest deviation measured on float32 backprops.
//! A hidden unit within that many deviations of its kink may have switched the other way
//! in the user's arithmetic; the whole change through it then joins the bound.

use ndarray::{Array2, Axis};

use super::forward::{forward, sigmoid};
use crate::options::Precision;
use crate::problem::Problem;

/// Standard deviations in the bound. Measured (tests/float32_gradients.rs): the largest
/// `|g32 − g| / σ` over every coordinate of random networks of depth 2–5, widths up to 128
/// and up to 128 examples was 1.86, so 8 leaves a margin of 4.3 over the worst case seen.
pub const GRADIENT_ROUNDOFF_SAFETY: f64 = 8.0;

/// Per coordinate, a bound on the error of a correct backprop of `problem` computed in
/// `precision` (float32: the user's arrays and arithmetic), in layout order.
pub fn gradient_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    let net = problem.net();
    let acts = forward(net, problem.x().view());
    let last = net.layers().len() - 1;
    let m = problem.examples() as f64;
    let sq = |a: &Array2<f64>| a.mapv(|v| v * v);
    let mask = |z: &Array2<f64>| z.mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });

    // Forward: squared values A² and error variances V (in units of u²).
    let mut a_sq = vec![sq(problem.x())];
    let mut a_var = vec![sq(problem.x())];
    let mut z_var_out = Array2::zeros((0, 0));
    // Per hidden layer, 1 where a unit sits within its own round-off of the kink: the
    // user's ReLU may have gone the other way there.
    let mut near_kink = Vec::with_capacity(last);
    let reach = GRADIENT_ROUNDOFF_SAFETY * precision.unit_roundoff();
    for (l, layer) in net.layers().iter().enumerate() {
        let w_sq = sq(&layer.w);
        let n = layer.w.ncols() as f64;
        let terms = w_sq.dot(&a_sq[l]) + layer.b.mapv(|v| v * v).insert_axis(Axis(1));
        let z_var = w_sq.dot(&a_var[l]) + terms * (n + 1.0);
        if l == last {
            z_var_out = z_var;
        } else {
            let mut near = z_var.clone();
            near.zip_mut_with(&acts.z[l], |v, &z| {
                *v = if z.abs() <= reach * v.sqrt() {
                    1.0
                } else {
                    0.0
                }
            });
            // An active unit keeps its error; one that may have switched on carries it too.
            let passes = (mask(&acts.z[l]) + &near).mapv(|v| v.min(1.0));
            a_var.push(&z_var * &passes);
            a_sq.push(sq(&acts.a[l]));
            near_kink.push(near);
        }
    }

    // dZ_L = (σ − Y)/m: σ moved by σ'·δz, plus σ's and the subtraction's own rounding.
    let sigma = &acts.a[last];
    let residual = sigma - problem.y();
    let slope_sq = acts.z[last].mapv(|z| {
        let s = sigmoid(z);
        (s * (1.0 - s)).powi(2)
    });
    let mut dz = &residual / m;
    let mut dz_var = (&slope_sq * &z_var_out + sq(sigma) + sq(&residual)) / (m * m);
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let dz_sq = sq(&dz);
        let dw = dz_var.dot(&a_sq[l].t()) + dz_sq.dot(&a_var[l].t()) + dz_sq.dot(&a_sq[l].t()) * m;
        let db = dz_var.sum_axis(Axis(1)) + dz_sq.sum_axis(Axis(1)) * m;
        if l > 0 {
            let w = &net.layers()[l].w;
            let w_sq_t = sq(w).reversed_axes();
            let n = w.nrows() as f64;
            let active = mask(&acts.z[l - 1]);
            let through = w.t().dot(&dz);
            // A unit near its kink may pass the whole change or none of it in the user's
            // arithmetic: its square joins the variance, in units of u².
            let u2 = precision.unit_roundoff().powi(2);
            let switched = sq(&through) * &near_kink[l - 1] / u2;
            dz_var = (w_sq_t.dot(&dz_var) + w_sq_t.dot(&dz_sq) * n) * &active + switched;
            dz = through * &active;
        }
        per_layer.push((dw, db));
    }
    let factor = GRADIENT_ROUNDOFF_SAFETY * precision.unit_roundoff();
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db)| dw.into_iter().chain(db))
        .map(|v| factor * v.sqrt())
        .collect()
}
