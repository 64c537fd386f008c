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

use super::forward::forward;
use crate::model::{Activation, Loss};
use crate::options::Precision;
use crate::problem::Problem;

/// Standard deviations in the bound. Measured (tests/float32_gradients.rs): the largest
/// `|g32 − g| / σ` over every coordinate of random networks of depth 2–5, widths up to 128
/// and up to 128 examples was 1.86, so 8 leaves a margin of 4.3 over the worst case seen.
pub const GRADIENT_ROUNDOFF_SAFETY: f64 = 8.0;

/// Per coordinate, a bound on the error of a correct backprop of `problem` computed in
/// `precision` (float32: the user's arrays and arithmetic), in layout order.
pub fn gradient_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    let random = random_bound(problem, precision);
    if precision == Precision::F64 {
        return random;
    }
    // The user's arithmetic starts from the inputs rounded to float32: for parameters and
    // data stored in float64 that is one perturbation shared by every example (so it adds
    // up over them instead of averaging out, measured 3.9σ on sigmoid networks when taken
    // as noise), and its effect on the exact gradient is computed here outright. Zero when
    // they were float32 already.
    let rounded = problem.rounded_to_f32();
    let shift: Vec<f64> = super::backprop::gradients(&rounded)
        .into_iter()
        .zip(super::backprop::gradients(problem))
        .map(|(a, b)| (a - b).abs())
        .collect();
    random.into_iter().zip(shift).map(|(r, s)| r + s).collect()
}

/// The probabilistic part of [`gradient_bound`]: independent roundings in the forward pass
/// and backprop.
fn random_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    let net = problem.net();
    let model = problem.model();
    let acts = forward(net, model, problem.x().view());
    let last = net.layers().len() - 1;
    let m = problem.examples() as f64;
    let scale = model.scale(problem.examples());
    let sq = |a: &Array2<f64>| a.mapv(|v| v * v);
    // Per hidden layer, the slope of its activation times the dropout factor.
    let slopes: Vec<Array2<f64>> = (0..last)
        .map(|l| {
            let act = model.hidden[l];
            let mut s = acts.z[l].mapv(|z| act.derivative(z));
            if let Some(d) = &model.dropout {
                s.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
            }
            s
        })
        .collect();

    // ReLU and identity layers without dropout add no rounding of their own.
    // Per hidden layer, the roundings each activation value (and each slope in backprop)
    // takes of its own: none for ReLU and identity, one for leaky ReLU's product, three
    // for tanh and sigmoid (exp, a sum, a quotient: measured on float32 backprops, one
    // rounding left them 3.9σ out), one more for dropout's scaling.
    let own: Vec<f64> = model
        .hidden
        .iter()
        .map(|a| {
            let activation = match a {
                Activation::Relu | Activation::Identity => 0.0,
                Activation::LeakyRelu(_) => 1.0,
                Activation::Tanh | Activation::Sigmoid => 3.0,
            };
            activation + if model.dropout.is_some() { 1.0 } else { 0.0 }
        })
        .collect();

    // Forward: squared values A² and error variances V (in units of u²).
    let mut a_sq = vec![sq(problem.x())];
    let mut a_var = vec![sq(problem.x())];
    let mut z_var_out = Array2::zeros((0, 0));
    // Per hidden layer, the change a unit's switch across its kink makes to its slope,
    // where it sits within its own round-off of the kink (0 elsewhere and for smooth
    // activations): the user's arithmetic may have gone the other way there.
    let mut near_kink = Vec::with_capacity(last);
    // Per hidden layer, the variance of z: a smooth activation's slope in backprop is
    // computed at the user's z, so it carries that error through the curvature.
    let mut z_var_hidden = Vec::with_capacity(last);
    let reach = GRADIENT_ROUNDOFF_SAFETY * precision.unit_roundoff();
    for (l, layer) in net.layers().iter().enumerate() {
        let w_sq = sq(&layer.w);
        let n = layer.w.ncols() as f64;
        let terms = w_sq.dot(&a_sq[l]) + layer.b.mapv(|v| v * v).insert_axis(Axis(1));
        let z_var = w_sq.dot(&a_var[l]) + terms * (n + 1.0);
        if l == last {
            z_var_out = z_var;
        } else {
            let jump = model.hidden[l]
                .kink()
                .map_or(0.0, |(below, above)| above - below);
            let mut near = z_var.clone();
            near.zip_mut_with(&acts.z[l], |v, &z| {
                *v = if jump != 0.0 && z.abs() <= reach * v.sqrt() {
                    jump
                } else {
                    0.0
                }
            });
            if let Some(d) = &model.dropout {
                near.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
            }
            // A unit that may have switched carries the error at either slope.
            let mut passes = sq(&slopes[l]);
            passes.zip_mut_with(&near, |v, &j| *v = v.max(j * j));
            a_var.push(&z_var * &passes + sq(&acts.a[l]) * own[l]);
            a_sq.push(sq(&acts.a[l]));
            near_kink.push(near);
            z_var_hidden.push(z_var);
        }
    }

    // dZ_L = (output − Y)·scale: the output moved by its slope times δz, plus the
    // output's and the subtraction's own rounding.
    let out = &acts.a[last];
    let residual = out - problem.y();
    let out_slope_sq = match model.loss {
        Loss::Mse => Array2::ones(out.dim()),
        Loss::Bce | Loss::Softmax => out.mapv(|s| (s * (1.0 - s)).powi(2)),
    };
    let mut dz = &residual * scale;
    let mut dz_var = (&out_slope_sq * &z_var_out + sq(out) + sq(&residual)) * (scale * scale);
    let l2 = 2.0 * model.l2_factor(problem.examples());
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let dz_sq = sq(&dz);
        let mut dw =
            dz_var.dot(&a_sq[l].t()) + dz_sq.dot(&a_var[l].t()) + dz_sq.dot(&a_sq[l].t()) * m;
        if l2 != 0.0 {
            // The L2 term and the sum it joins, each rounded once.
            dw += &(sq(&net.layers()[l].w) * (2.0 * l2 * l2));
        }
        let db = dz_var.sum_axis(Axis(1)) + dz_sq.sum_axis(Axis(1)) * m;
        if l > 0 {
            let w = &net.layers()[l].w;
            let w_sq_t = sq(w).reversed_axes();
            let n = w.nrows() as f64;
            let through = w.t().dot(&dz);
            // A unit near its kink may pass the change at either slope in the user's
            // arithmetic: the difference squared joins the variance, in units of u².
            let u2 = precision.unit_roundoff().powi(2);
            let switched = sq(&(&through * &near_kink[l - 1])) / u2;
            let slope = &slopes[l - 1];
            let curvature = curvature(model, l - 1, &acts.z[l - 1]);
            dz_var = (w_sq_t.dot(&dz_var) + w_sq_t.dot(&dz_sq) * n) * sq(slope)
                + sq(&(&through * slope)) * own[l - 1]
                + sq(&(&through * &curvature)) * &z_var_hidden[l - 1]
                + switched;
            dz = through * slope;
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

/// The second derivative of hidden layer `l`'s activation at `z`, times the dropout factor:
/// how much its slope moves with an error in `z`.
fn curvature(model: &crate::model::Model, l: usize, z: &Array2<f64>) -> Array2<f64> {
    let second = |z: f64| match model.hidden[l] {
        Activation::Tanh => {
            let t = z.tanh();
            -2.0 * t * (1.0 - t * t)
        }
        Activation::Sigmoid => {
            let s = crate::model::spec::sigmoid(z);
            s * (1.0 - s) * (1.0 - 2.0 * s)
        }
        _ => 0.0,
    };
    let mut c = z.mapv(second);
    if let Some(d) = &model.dropout {
        c.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
    }
    c
}
