//! The penalties (L2 and L1 on weights and biases) are exact: every method evaluates the
//! data cost alone and adds their share here. L2's central difference is exactly its
//! derivative; L1's is `sign(θ)` away from 0 — a step that crosses 0 estimates no
//! derivative, so its exact slope is added — and at θ = 0 exactly `|θ|` has none: a
//! backprop gives the derivative of its convention for `sign(0)` (`np.sign`'s 0, NNFS's
//! `dL1[θ < 0] = −1` which gives 1, or −1), judged as a kink.

use crate::directions::Direction;
use crate::estimate::{Estimates, Kink, Site, L1_CONVENTIONS};
use crate::model::TensorKind;
use crate::problem::Problem;

/// Adds the penalties' exact share to the estimates of the coordinates `indices` (taken
/// with `steps`): their derivative, and the costs' change on top of their value.
pub fn add(problem: &Problem, indices: &[usize], steps: &[f64], estimates: &mut Estimates) {
    let Some(share) = Share::of(problem) else {
        return;
    };
    let layout = problem.net().layout();
    for (k, (&i, &h)) in indices.iter().zip(steps).enumerate() {
        let (layer, kind) = layer_and_kind(layout.tensor_of(i));
        let theta = share.theta[i];
        let (square, absolute) = share.factors(layer, kind);
        let cost = |v: f64| square * v * v + absolute * v.abs();
        let change = |v: f64| cost(v) - cost(theta);
        share.add(
            estimates,
            k,
            problem
                .model()
                .penalty_slope(layer, kind, problem.examples(), theta),
            (change(theta + h), change(theta - h)),
        );
        if theta == 0.0 && absolute != 0.0 {
            at_zero(estimates, k, Site::L1(kind), absolute, absolute);
        }
    }
}

/// [`add`] for directional estimates: along `v` the penalties' derivative is
/// `Σ (2·f·θ + g·sign θ)·v` (the costs' own changes are left at their linear part); L1's
/// coordinates at 0 along `v` are a kink whose conventions move it by `g·c·Σ_(θ=0) v`.
pub fn add_along(problem: &Problem, dirs: &[Direction], estimates: &mut Estimates) {
    let Some(share) = Share::of(problem) else {
        return;
    };
    let layout = problem.net().layout();
    let m = problem.examples();
    for (k, d) in dirs.iter().enumerate() {
        let (layer, kind) = layer_and_kind(&layout.tensors()[d.tensor]);
        // Only the direction's own tensor's entries count in its projection.
        let slopes: Vec<f64> = share
            .theta
            .iter()
            .map(|&t| problem.model().penalty_slope(layer, kind, m, t))
            .collect();
        share.add(estimates, k, d.project(layout, &slopes), (0.0, 0.0));
        let (_, absolute) = share.factors(layer, kind);
        if absolute != 0.0 {
            let zeros: Vec<f64> = share
                .theta
                .iter()
                .map(|&t| f64::from(u8::from(t == 0.0)))
                .collect();
            let along_zeros = d.project(layout, &zeros);
            if along_zeros != 0.0 {
                at_zero(
                    estimates,
                    k,
                    Site::L1(kind),
                    absolute * along_zeros,
                    absolute,
                );
            }
        }
    }
}

/// A tensor's layer (0-based, as the penalties count them) and kind.
fn layer_and_kind(spec: &crate::model::TensorSpec) -> (usize, TensorKind) {
    (spec.layer - 1, spec.kind)
}

/// Makes estimate `k` a kink at `site` whose conventions move it by `c·size` (c ∈ 0, 1,
/// −1), over any kink it already is (every combination); `g` is the penalty's factor, for
/// the round-off.
fn at_zero(estimates: &mut Estimates, k: usize, site: Site, size: f64, g: f64) {
    let names = L1_CONVENTIONS.map(|(name, _)| name);
    let base = estimates.kinks.remove(&k).unwrap_or_else(|| Kink {
        layers: Vec::new(),
        derivatives: vec![(Vec::new(), estimates.gradapprox[k])],
        // The data term's estimate, with all its bounds.
        noise: estimates.noise[k] + estimates.truncation(k),
        partial: false,
    });
    let mut layers = base.layers.clone();
    layers.push((site, names));
    let derivatives = base
        .derivatives
        .iter()
        .flat_map(|(assignment, value)| {
            L1_CONVENTIONS
                .iter()
                .enumerate()
                .map(move |(c, (_, slope))| {
                    let mut a = assignment.clone();
                    a.push(c as u8);
                    (a, value + slope * size)
                })
        })
        .collect();
    let kink = Kink {
        layers,
        derivatives,
        noise: base.noise + 4.0 * crate::estimate::F64_UNIT_ROUNDOFF * g.abs(),
        partial: base.partial,
    };
    estimates.gradapprox[k] = kink.course();
    estimates.kinks.insert(k, kink);
}

/// What the penalties add to a model's estimates: their value and θ.
struct Share<'a> {
    problem: &'a Problem,
    value: f64,
    theta: Vec<f64>,
}

impl<'a> Share<'a> {
    fn of(problem: &'a Problem) -> Option<Self> {
        let model = problem.model();
        (!model.penalty.is_none()).then(|| Self {
            problem,
            value: model.penalty_cost(problem.net(), problem.examples()),
            theta: problem.net().flatten(),
        })
    }

    /// The factors on `θ²` and `|θ|` of layer `layer`'s tensor of `kind`.
    fn factors(&self, layer: usize, kind: TensorKind) -> (f64, f64) {
        let model = self.problem.model();
        model
            .penalty
            .factors(layer, kind, model.scale(self.problem.examples()))
    }

    /// Adds to estimate `k` the derivative `slope` and the costs' changes `(plus, minus)`.
    fn add(&self, estimates: &mut Estimates, k: usize, slope: f64, (plus, minus): (f64, f64)) {
        if let Some(v) = estimates.j_plus.get_mut(k) {
            *v += self.value + plus;
        }
        if let Some(v) = estimates.j_minus.get_mut(k) {
            *v += self.value + minus;
        }
        estimates.gradapprox[k] += slope;
        if let Some(b) = estimates.kinks.get_mut(&k) {
            b.shift(slope);
        }
    }
}
