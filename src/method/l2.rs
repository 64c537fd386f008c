//! L2 is an exact quadratic: its central difference is exactly its derivative (no
//! truncation), so every method evaluates the data cost alone and adds L2's share here.

use crate::directions::Direction;
use crate::estimate::Estimates;
use crate::model::TensorKind;
use crate::problem::Problem;

/// Adds L2's exact share to the estimates of the coordinates `indices` (taken with
/// `steps`): its derivative `2·f·w`, and the costs' change `f·((w ± h)² − w²)` on top of
/// `f·Σw²`.
pub fn add(problem: &Problem, indices: &[usize], steps: &[f64], estimates: &mut Estimates) {
    let Some(l2) = Share::of(problem) else {
        return;
    };
    let layout = problem.net().layout();
    for (k, (&i, &h)) in indices.iter().zip(steps).enumerate() {
        if layout.tensor_of(i).kind == TensorKind::Weight {
            let w = l2.theta[i];
            let change = |v: f64| l2.factor * (v * v - w * w);
            l2.add(
                estimates,
                k,
                2.0 * l2.factor * w,
                (change(w + h), change(w - h)),
            );
        } else {
            l2.add(estimates, k, 0.0, (0.0, 0.0));
        }
    }
}

/// [`add`] for directional estimates: along `v` over weight tensor `W` L2's derivative is
/// `2·f·⟨W, v⟩` (the costs' own changes are left at their linear part).
pub fn add_along(problem: &Problem, dirs: &[Direction], estimates: &mut Estimates) {
    let Some(l2) = Share::of(problem) else {
        return;
    };
    let layout = problem.net().layout();
    for (k, d) in dirs.iter().enumerate() {
        let slope = match layout.tensors()[d.tensor].kind {
            TensorKind::Weight => 2.0 * l2.factor * d.project(layout, &l2.theta),
            TensorKind::Bias => 0.0,
        };
        l2.add(estimates, k, slope, (0.0, 0.0));
    }
}

/// What L2 adds to a model's estimates: its factor `f` on `Σw²`, its value, and θ.
struct Share {
    factor: f64,
    value: f64,
    theta: Vec<f64>,
}

impl Share {
    fn of(problem: &Problem) -> Option<Self> {
        let model = problem.model();
        (model.l2 != 0.0).then(|| Self {
            factor: model.l2_factor(problem.examples()),
            value: model.l2_cost(problem.net(), problem.examples()),
            theta: problem.net().flatten(),
        })
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
