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

use super::forward::{forward, Activations};
use crate::model::{Activation, Loss};
use crate::options::Precision;
use crate::problem::Problem;

/// Standard deviations in the bound. Measured (tests/float32_gradients.rs): the largest
/// `|g32 − g| / σ` over every coordinate of random networks of depth 2–5, widths up to 128
/// and up to 128 examples was 1.86, so 8 leaves a margin of 4.3 over the worst case seen.
pub const GRADIENT_ROUNDOFF_SAFETY: f64 = 8.0;

/// Per coordinate, a bound on the error of a correct backprop of `problem` computed in
/// `precision` (float32: the user's arrays and arithmetic), in layout order: independent
/// roundings ([`random_bound`]), what is not independent ([`systematic_bound`],
/// [`absorbed_bound`]), and the float32 inputs' own rounding.
pub fn gradient_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    let random: Vec<f64> = random_bound(problem, precision)
        .into_iter()
        .zip(systematic_bound(problem, precision))
        .map(|(r, s)| r + s)
        .collect();
    if precision == Precision::F64 {
        return random;
    }
    let random: Vec<f64> = random
        .into_iter()
        .zip(absorbed_bound(problem, precision))
        .map(|(r, a)| r + a)
        .collect();
    // The user's arithmetic starts from the inputs rounded to float32: for parameters and
    // data stored in float64 that is one perturbation shared by every example (so it adds
    // up over them instead of averaging out, measured 3.9σ on sigmoid networks when taken
    // as noise), and its effect on the exact gradient is computed here outright. Zero when
    // they were float32 already.
    let rounded = problem.rounded_to_f32();
    let exact = super::backprop::gradients(problem);
    // A float32 gradient below float32's normal range may be flushed to zero (or underflow
    // there below its subnormals): it is then as far from exact as it is small.
    let normal = f64::from(f32::MIN_POSITIVE);
    let shift: Vec<f64> = super::backprop::gradients(&rounded)
        .into_iter()
        .zip(&exact)
        .map(|(a, &b)| (a - b).abs() + b.abs().min(normal))
        .collect();
    random.into_iter().zip(shift).map(|(r, s)| r + s).collect()
}

/// Roundings a saturated output's residual is off by at most in units of u times the
/// output (σ or softmax's exp, sum and quotient; the subtraction).
const OUTPUT_ROUNDINGS: f64 = 4.0;

/// Residuals within this many u of their output are saturated: the output rounds to
/// (nearly) its label for every such example alike.
const SATURATED: f64 = 16.0;

/// The part of [`gradient_bound`] no independence covers, worst case: a saturated output
/// (a confident classifier's p within a few ulps of 1) rounds the same way in every
/// example, so its residual's error adds up over the examples instead of averaging out;
/// and softmax labels that do not sum to 1 exactly (normalised in float32) make `p − y`
/// and the cross-entropy's own gradient `p·Σy − y` differ, by `(Σy − 1)·p`, and either is
/// a correct backprop. Both start at the output and go back through `|W|` and the slopes.
pub fn systematic_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    let net = problem.net();
    let model = problem.model();
    let acts = forward(net, model, problem.x().view());
    let last = net.layers().len() - 1;
    let scale = model.scale(problem.examples());
    let u = precision.unit_roundoff();
    let (z, out) = (&acts.z[last], &acts.a[last]);
    let residual = super::forward::residuals(model.loss, z.view(), problem.y().view());
    let mut seed = Array2::<f64>::zeros(z.dim());
    let squared = matches!(model.loss, Loss::Mse | Loss::MseMean | Loss::Sse);
    for ((o, e), s) in seed.indexed_iter_mut() {
        let (r, p) = (residual[[o, e]].abs(), out[[o, e]].abs());
        if !squared && r <= SATURATED * u * p {
            *s += OUTPUT_ROUNDINGS * u * p + r;
        }
    }
    if model.loss == Loss::Softmax {
        for (e, y) in problem.y().columns().into_iter().enumerate() {
            let off = (y.sum() - 1.0).abs();
            if off != 0.0 {
                seed.column_mut(e)
                    .zip_mut_with(&out.column(e), |s, &p| *s += off * p.abs());
            }
        }
    }
    let total = seed.iter().sum::<f64>();
    if total == 0.0 {
        return vec![0.0; net.layout().len()];
    }
    let slopes = hidden_slopes(problem, &acts);
    let mut dz = seed * scale.abs();
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let input = if l == 0 { problem.x() } else { &acts.a[l - 1] };
        let dw = dz.dot(&input.mapv(f64::abs).t());
        let db = dz.sum_axis(Axis(1));
        if l > 0 {
            let w_abs = net.layers()[l].w.mapv(f64::abs);
            dz = w_abs.t().dot(&dz) * slopes[l - 1].mapv(f64::abs);
        }
        per_layer.push((dw, db));
    }
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db)| dw.into_iter().chain(db))
        .map(|v| crate::estimate::FIRST_ORDER_MARGIN * v)
        .collect()
}

/// Terms of a gradient's sum over the examples this small relative to the sum's
/// magnitude are counted worst case (they may be absorbed, each rounding the same way).
const ABSORBED_BELOW: f64 = 256.0;

/// The part of [`gradient_bound`] a sum over the examples may lose by absorption, worst
/// case: a term below `ABSORBED_BELOW·u` of the sum's magnitude `S = Σ|t|` rounds by up to
/// `min(|t|, u·S)`, all of them the same way (a confident classifier's one misclassified
/// example leading a float32 sum of thousands of terms below half its ulp, which drops them
/// all), where independent roundings would mostly cancel. In float64 what a sum can absorb
/// this way is below `m·u` of it, never near a threshold, so it is left to the random part.
pub fn absorbed_bound(problem: &Problem, precision: Precision) -> Vec<f64> {
    use rayon::prelude::*;
    let u = precision.unit_roundoff();
    let acts = forward(problem.net(), problem.model(), problem.x().view());
    let deltas = super::backprop::deltas(problem);
    let lost = |terms: &mut dyn Iterator<Item = f64>, total: f64| -> f64 {
        let small = ABSORBED_BELOW * u * total;
        terms.filter(|t| *t < small).map(|t| t.min(u * total)).sum()
    };
    let mut out = Vec::with_capacity(problem.net().layout().len());
    for (l, dz) in deltas.iter().enumerate() {
        let input = if l == 0 { problem.x() } else { &acts.a[l - 1] };
        let weights: Vec<f64> = (0..dz.nrows())
            .into_par_iter()
            .flat_map_iter(|i| {
                let dz = dz.row(i);
                input.rows().into_iter().map(move |a| {
                    let total: f64 = dz.iter().zip(a).map(|(d, a)| (d * a).abs()).sum();
                    lost(&mut dz.iter().zip(a).map(|(d, a)| (d * a).abs()), total)
                })
            })
            .collect();
        out.extend(weights);
        for dz in dz.rows() {
            let total: f64 = dz.iter().map(|d| d.abs()).sum();
            out.push(lost(&mut dz.iter().map(|d| d.abs()), total));
        }
    }
    out
}

/// How many times each example's data occur in the batch (a batch tiled from a few
/// examples): identical examples round identically, so their errors add up as one
/// example's times the count, not as independent ones. Per example, its count.
pub fn multiplicity(problem: &Problem) -> Vec<f64> {
    use std::collections::HashMap;
    let m = problem.examples();
    let key = |e: usize| -> Vec<u64> {
        let mut k: Vec<u64> = problem.x().column(e).iter().map(|v| v.to_bits()).collect();
        k.extend(problem.y().column(e).iter().map(|v| v.to_bits()));
        if let Some(d) = &problem.model().dropout {
            for mask in &d.masks {
                k.extend(mask.column(e).iter().map(|v| v.to_bits()));
            }
        }
        k
    };
    let keys: Vec<Vec<u64>> = (0..m).map(key).collect();
    let mut counts: HashMap<&[u64], usize> = HashMap::new();
    for k in &keys {
        *counts.entry(k.as_slice()).or_default() += 1;
    }
    keys.iter().map(|k| counts[k.as_slice()] as f64).collect()
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
    let slopes = hidden_slopes(problem, &acts);

    let Forward {
        a_sq,
        a_var,
        z_var,
        near_kink,
    } = forward_variance(problem, &acts, &slopes, (precision, None));
    let z_var_out = &z_var[last];

    // dZ_L = (output − Y)·scale: the output moved by its slope times δz, plus the
    // output's and the subtraction's own rounding.
    let out = &acts.a[last];
    let residual = out - problem.y();
    let out_slope_sq = match model.loss.squared_factor(out.nrows()) {
        Some(f) => Array2::from_elem(out.dim(), 4.0 * f * f),
        None => out.mapv(|s| (s * (1.0 - s)).powi(2)),
    };
    let own = own_roundings(model);
    let mut dz = &residual * scale;
    let mut dz_var = (&out_slope_sq * z_var_out + sq(out) + sq(&residual)) * (scale * scale);
    let penalty = |layer, kind, values: &Array2<f64>| {
        values.mapv(|v| {
            model
                .penalty_slope(layer, kind, problem.examples(), v)
                .powi(2)
        })
    };
    // Identical examples' errors are identical: each counts as its copies' number of
    // times over, not as independent draws.
    let copies = ndarray::Array1::from(multiplicity(problem)).insert_axis(Axis(0));
    let mut per_layer = Vec::with_capacity(last + 1);
    for l in (0..=last).rev() {
        let dz_sq = sq(&dz);
        let carried = &dz_var * &copies;
        let mut dw = carried.dot(&a_sq[l].t())
            + (&dz_sq * &copies).dot(&a_var[l].t())
            + dz_sq.dot(&a_sq[l].t()) * m;
        let mut db = carried.sum_axis(Axis(1)) + dz_sq.sum_axis(Axis(1)) * m;
        // A sum of c equal terms rounds alike at every step: up to c·u of each, worst
        // case, where independent additions would give √c.
        let repeated = dz.mapv(f64::abs) * &(&copies - 1.0);
        let dw_repeated = repeated.dot(&a_sq[l].mapv(f64::sqrt).t());
        let db_repeated = repeated.sum_axis(Axis(1));
        if !model.penalty.is_none() {
            // The penalties' slopes and the sums they join, each rounded once.
            use crate::model::TensorKind;
            dw += &(penalty(l, TensorKind::Weight, &net.layers()[l].w) * 2.0);
            let b = net.layers()[l].b.view().insert_axis(Axis(1)).to_owned();
            db += &(penalty(l, TensorKind::Bias, &b).column(0).to_owned() * 2.0);
        }
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
            let slope_error = slope_error(model, l - 1, &acts.z[l - 1], slope);
            dz_var = (w_sq_t.dot(&dz_var) + w_sq_t.dot(&dz_sq) * n) * sq(slope)
                + sq(&(&through * &slope_error)) * own[l - 1]
                + sq(&(&through * &curvature)) * &z_var[l - 1]
                + switched;
            dz = through * slope;
        }
        per_layer.push((dw, db, dw_repeated, db_repeated));
    }
    let u = precision.unit_roundoff();
    let factor = GRADIENT_ROUNDOFF_SAFETY * u;
    per_layer
        .into_iter()
        .rev()
        .flat_map(|(dw, db, dw_r, db_r)| {
            let variances = dw.into_iter().chain(db);
            let repeated = dw_r.into_iter().chain(db_r);
            variances.zip(repeated).collect::<Vec<_>>()
        })
        .map(|(v, r)| factor * v.sqrt() + u * r)
        .collect()
}

/// Per hidden layer, the roundings each activation value (and each slope in backprop)
/// takes of its own: none for ReLU and identity, one for leaky ReLU's product, three for
/// tanh and sigmoid (exp, a sum, a quotient: measured on float32 backprops, one rounding
/// left them 3.9σ out), one more for dropout's scaling.
fn own_roundings(model: &crate::model::Model) -> Vec<f64> {
    model
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
        .collect()
}

/// What a hidden slope's own roundings are relative to, at most, whichever formula a
/// backprop forms it by: the slope itself, and for `1 − t²` and `s·(1 − s)` from the rounded
/// `t = tanh z`, `s = σ(z)`, the operands that cancel — `2t²` and `s²` — which for a
/// saturated unit are far larger than the slope (times the dropout factor, as the slope).
fn slope_error(
    model: &crate::model::Model,
    l: usize,
    z: &Array2<f64>,
    slope: &Array2<f64>,
) -> Array2<f64> {
    let cancelled = |z: f64| match model.hidden[l] {
        Activation::Tanh => 2.0 * z.tanh().powi(2),
        Activation::Sigmoid => crate::model::spec::sigmoid(z).powi(2),
        _ => 0.0,
    };
    let mut e = z.mapv(cancelled);
    if let Some(d) = &model.dropout {
        e.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
    }
    e.zip_mut_with(slope, |v, &s| *v += s.abs());
    e
}

/// The second derivative of hidden layer `l`'s activation at `z`, times the dropout factor:
/// how much its slope moves with an error in `z`.
fn curvature(model: &crate::model::Model, l: usize, z: &Array2<f64>) -> Array2<f64> {
    let second = |z: f64| match model.hidden[l] {
        Activation::Tanh => -2.0 * z.tanh() * crate::model::spec::tanh_prime(z),
        Activation::Sigmoid => crate::model::spec::sigmoid_derivatives(z)[1],
        _ => 0.0,
    };
    let mut c = z.mapv(second);
    if let Some(d) = &model.dropout {
        c.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
    }
    c
}

/// The error variances of a forward pass in `precision` (units of u²): per layer, the
/// squared values and variances of its input, the variance of z, and per hidden layer the
/// slope change of units that may have switched across their kink.
struct Forward {
    a_sq: Vec<Array2<f64>>,
    a_var: Vec<Array2<f64>>,
    z_var: Vec<Array2<f64>>,
    near_kink: Vec<Array2<f64>>,
}

/// The variances (units of u²) of the rounding errors of `z` in every layer when `problem`'s
/// forward pass runs in `precision`: independent roundings, each sum of n terms adding
/// `u²·n·Σ term²` (what the tie radius of a kink and the whole passes' round-off rest on).
pub fn z_variances(
    problem: &Problem,
    acts: &Activations,
    precision: Precision,
) -> Vec<Array2<f64>> {
    z_variances_from(problem, acts, precision, 0)
}

/// [`z_variances`] of the roundings in layers `from` onward, those before taken as exact:
/// what two passes that share every layer before `from` (a perturbation of layer `from`)
/// can differ by.
fn z_variances_from(
    problem: &Problem,
    acts: &Activations,
    precision: Precision,
    from: usize,
) -> Vec<Array2<f64>> {
    let slopes = hidden_slopes(problem, acts);
    forward_variance(problem, acts, &slopes, (precision, Some(from))).z_var
}

/// Per hidden layer, the slope of its activation times the dropout factor.
fn hidden_slopes(problem: &Problem, acts: &Activations) -> Vec<Array2<f64>> {
    let model = problem.model();
    (0..problem.net().layers().len() - 1)
        .map(|l| {
            let act = model.hidden[l];
            let mut s = acts.z[l].mapv(|z| act.derivative(z));
            if let Some(d) = &model.dropout {
                s.zip_mut_with(&d.masks[l], |v, &k| *v *= k / d.keep_prob);
            }
            s
        })
        .collect()
}

/// `exact_before`: `None` for a user's pass from inputs rounded to `precision` (the
/// inputs' own rounding is an error), `Some(p)` for the tool's own from exact inputs with
/// the roundings of the layers before `p` left out.
fn forward_variance(
    problem: &Problem,
    acts: &Activations,
    slopes: &[Array2<f64>],
    (precision, exact_before): (Precision, Option<usize>),
) -> Forward {
    let net = problem.net();
    let model = problem.model();
    let last = net.layers().len() - 1;
    let sq = |a: &Array2<f64>| a.mapv(|v| v * v);
    let own = own_roundings(model);

    // Forward: squared values A² and error variances V (in units of u²).
    let mut a_sq = vec![sq(problem.x())];
    let mut a_var = vec![match exact_before {
        None => sq(problem.x()),
        Some(_) => Array2::zeros(problem.x().dim()),
    }];
    let mut z_vars = Vec::with_capacity(last + 1);
    // Per hidden layer, the change a unit's switch across its kink makes to its slope,
    // where it sits within its own round-off of the kink (0 elsewhere and for smooth
    // activations): the user's arithmetic may have gone the other way there.
    let mut near_kink = Vec::with_capacity(last);
    let reach = GRADIENT_ROUNDOFF_SAFETY * precision.unit_roundoff();
    for (l, layer) in net.layers().iter().enumerate() {
        let w_sq = sq(&layer.w);
        let n = layer.w.ncols() as f64;
        let terms = w_sq.dot(&a_sq[l]) + layer.b.mapv(|v| v * v).insert_axis(Axis(1));
        let z_var = if exact_before.is_some_and(|p| l < p) {
            Array2::zeros(terms.dim())
        } else {
            w_sq.dot(&a_var[l]) + terms * (n + 1.0)
        };
        if l < last {
            let jump = model.hidden[l]
                .kink()
                .map_or(0.0, |(below, above)| above - below);
            let mut near = z_var.clone();
            near.zip_mut_with(&acts.z[l], |v, &z| {
                // A unit exactly on its kink by construction (no rounding reaches it: a
                // blank example, zero biases) takes its slope from the backprop's
                // convention, which the kink's own judgement covers.
                *v = if jump != 0.0 && *v > 0.0 && z.abs() <= reach * v.sqrt() {
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
            let own_rounding = if exact_before.is_some_and(|p| l < p) {
                0.0
            } else {
                own[l]
            };
            a_var.push(&z_var * &passes + sq(&acts.a[l]) * own_rounding);
            a_sq.push(sq(&acts.a[l]));
            near_kink.push(near);
        }
        z_vars.push(z_var);
    }
    Forward {
        a_sq,
        a_var,
        z_var: z_vars,
        near_kink,
    }
}

/// Roundings a loss term takes, at most, in units of its magnitude: the elementary
/// functions within 4 ulp in f64 (libm; math.wgsl's tested to 4) and 6.4 in f32
/// (math.wgsl, fast-math orders included, tests/fast_math.rs), then the product with the
/// label and the subtraction.
fn term_roundings(precision: Precision) -> f64 {
    match precision {
        Precision::F64 => 6.0,
        Precision::F32 => 9.0,
    }
}

/// How a backend adds up a cost's terms, which decides the additions' share of its
/// round-off. The terms are nonnegative (every loss is), so each partial sum is at most
/// the total.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Summation {
    /// Compensated (`forward::CompensatedSum`): `2u` of the total, and `O(n·u²)`.
    Compensated,
    /// Running sums in a fixed order, each term reaching the total through at most `depth`
    /// additions (a thread's own terms, then a reduction's levels and blocks).
    Recursive { depth: usize },
}

impl Summation {
    /// The additions' round-off in units of `u·total`, worst case, for `count` terms, and
    /// the reduction's one rounding.
    fn factor(self, count: f64, u: f64) -> f64 {
        1.0 + match self {
            Summation::Compensated => 2.0 + 4.0 * count * u,
            Summation::Recursive { depth } => depth as f64,
        }
    }
}

/// Per layer `p`, a bound on how far the data cost `J` that a whole forward pass in
/// `precision` computes is off, where the pass perturbs a parameter of layer `p` (the
/// layers before it compute the same numbers with and without the perturbation, so their
/// roundings are the same in `J₊` and `J₋`): each loss term's own roundings, relative to
/// the terms as computed (`softplus(z)` and `y·z`, not their difference, which cancels
/// where an example is fitted; a softmax's sums over its outputs too); the additions
/// summing them, worst case as `summation` does them; and the logits' rounding from layer
/// `p` on (8σ of independent errors, `z_variances`) through the loss's slope.
pub fn cost_roundoff(problem: &Problem, precision: Precision, summation: Summation) -> Vec<f64> {
    use crate::estimate::{FIRST_ORDER_MARGIN, SUM_SAFETY};
    let model = problem.model();
    let acts = forward(problem.net(), model, problem.x().view());
    let last = acts.z.len() - 1;
    let (z, y) = (&acts.z[last], problem.y());
    let outputs = z.nrows() as f64;
    // The terms' sizes, and (softmax) what its sums over the outputs err by in units of u.
    let (terms, inner) = z
        .columns()
        .into_iter()
        .zip(y.columns())
        .map(|(z, y)| match model.loss {
            Loss::Bce => (
                z.iter()
                    .zip(y)
                    .map(|(&z, &y)| super::forward::softplus(z) + (y * z).abs())
                    .sum::<f64>(),
                0.0,
            ),
            Loss::Mse | Loss::MseMean | Loss::Sse => {
                let f = model.loss.squared_factor(z.len()).expect("a squared error");
                (
                    z.iter().zip(y).map(|(&z, &y)| f * (z - y) * (z - y)).sum(),
                    0.0,
                )
            }
            Loss::Softmax => {
                let top = z.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
                let spread = z.iter().map(|&v| (v - top).exp()).sum::<f64>().ln();
                let yz: f64 = z.iter().zip(y).map(|(&z, &y)| (y * z).abs()).sum();
                // Σ e^(z − top) ≥ 1 errs by (n − 1)·u of itself, its log by that absolutely.
                (top.abs() + spread + yz, outputs * (1.0 + yz))
            }
        })
        .fold((0.0, 0.0), |(t, i), (a, b)| (t + a, i + b));
    let residual = super::forward::residuals(model.loss, z.view(), y.view());
    let u = precision.unit_roundoff();
    let additions = summation.factor(z.len() as f64, u);
    let scale = model.scale(problem.examples());
    // Identical examples' logits round alike (see `multiplicity`).
    let copies = multiplicity(problem);
    (0..=last)
        .map(|p| {
            let z_var = &z_variances_from(problem, &acts, precision, p)[last];
            let logits: f64 = residual
                .columns()
                .into_iter()
                .zip(z_var.columns())
                .zip(&copies)
                .map(|((r, v), c)| {
                    let per_example: f64 = r.iter().zip(v).map(|(r, v)| r.abs() * v.sqrt()).sum();
                    c * per_example * per_example
                })
                .sum();
            FIRST_ORDER_MARGIN
                * scale
                * u
                * ((term_roundings(precision) + additions) * terms
                    + inner
                    + SUM_SAFETY * logits.sqrt())
        })
        .collect()
}

/// [`cost_roundoff`] for every coordinate of `problem`, in layout order.
pub fn coordinate_cost_roundoff(
    problem: &Problem,
    precision: Precision,
    summation: Summation,
) -> Vec<f64> {
    let per_layer = cost_roundoff(problem, precision, summation);
    let layout = problem.net().layout();
    layout
        .tensors()
        .iter()
        .flat_map(|t| std::iter::repeat_n(per_layer[t.layer - 1], t.len()))
        .collect()
}

/// A bound on each residual's error (`∂loss/∂z_L`, `n_L × m`, unreduced) as the tool's f64
/// pass forms it: its logits' rounding (8σ of `z_var`, the logits' variances in units of u²)
/// through the residual's slopes in them — σ' for binary cross-entropy; for softmax
/// `∂p_o/∂z_k = p_o(δ_ok − p_k)`, so `p_o·((1 − p_o)ζ_o + Σ_(k≠o) p_k ζ_k)`, small for a
/// fitted example's every class; 1 for squared error — and its own rounding (a soft
/// label's relative to the probability it cancels against).
pub fn residual_errors(problem: &Problem, acts: &Activations, z_var: &Array2<f64>) -> Array2<f64> {
    use crate::estimate::{ROUNDOFF_SAFETY, SUM_SAFETY};
    let u = Precision::F64.unit_roundoff();
    let last = acts.z.len() - 1;
    let (z, out) = (&acts.z[last], &acts.a[last]);
    let residual = super::forward::residuals(problem.model().loss, z.view(), problem.y().view());
    let mut errors = Array2::zeros(z.dim());
    for e in 0..z.ncols() {
        let zeta: Vec<f64> = z_var
            .column(e)
            .iter()
            .map(|v| SUM_SAFETY * u * v.sqrt())
            .collect();
        let p = out.column(e);
        for o in 0..z.nrows() {
            let through = match problem.model().loss {
                Loss::Bce => crate::model::spec::sigmoid_derivatives(z[[o, e]])[0] * zeta[o],
                Loss::Mse | Loss::MseMean | Loss::Sse => {
                    2.0 * problem
                        .model()
                        .loss
                        .squared_factor(z.nrows())
                        .expect("squared")
                        * zeta[o]
                }
                Loss::Softmax => {
                    let others: f64 = (0..z.nrows())
                        .filter(|&k| k != o)
                        .map(|k| p[k] * zeta[k])
                        .sum();
                    let rest: f64 = (0..z.nrows()).filter(|&k| k != o).map(|k| p[k]).sum();
                    p[o] * (rest * zeta[o] + others)
                }
            };
            // Its own rounding: relative to the residual where it is formed without
            // cancellation (hard labels, a squared error's exact subtraction), else to the
            // probability a soft label is subtracted from.
            let y = problem.y()[[o, e]];
            let soft = y != 0.0 && y != 1.0;
            let own = match problem.model().loss {
                Loss::Bce | Loss::Softmax if soft => residual[[o, e]].abs() + p[o].abs(),
                _ => residual[[o, e]].abs(),
            };
            errors[[o, e]] = through + ROUNDOFF_SAFETY * u * own;
        }
    }
    errors
}
