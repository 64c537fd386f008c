//! How a check's finite differences are evaluated — the delta method, whole forward
//! passes (the full method), directional derivatives — each with bounds on its own errors,
//! and with the exact derivatives (`cpu::ties`) where a step crosses a kink (a whole pass's
//! difference then estimates no derivative) or a unit sits on one (there is none: the
//! conventions' derivatives stand in).

pub mod delta;
pub mod directions;
mod penalty;
pub mod whole;

use std::borrow::Cow;

use crate::backend::Rows;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::Series;
use crate::cpu::ties::Exact;
use crate::estimate::Estimates;
use crate::options::Precision;
use crate::problem::Problem;

/// `problem` as a device computing in `precision` sees it: rounded to f32 for an f32
/// whole pass (its reference and bounds are the original's; the rounding's effect on the
/// gradient is bounded outright, [`rounding_shift`]).
pub(crate) fn device_view(problem: &Problem, precision: Precision) -> Cow<'_, Problem> {
    match precision {
        Precision::F32 => Cow::Owned(problem.rounded_to_f32()),
        Precision::F64 => Cow::Borrowed(problem),
    }
}

/// Per coordinate, how far rounding θ and X to f32 moves the gradient: what an f32
/// whole pass's estimate may be off from the derivative at the problem the user gave.
pub(crate) fn rounding_shift(problem: &Problem) -> Vec<f64> {
    let rounded = crate::cpu::backprop::gradients(&problem.rounded_to_f32());
    crate::cpu::backprop::gradients(problem)
        .into_iter()
        .zip(rounded)
        .map(|(a, b)| (a - b).abs())
        .collect()
}

/// Replaces estimate `k` by an exact derivative: the one number, with its round-off and no
/// truncation, or the conventions' derivatives at a kink.
pub(crate) fn use_exact(estimates: &mut Estimates, k: usize, exact: Exact) {
    match exact {
        Exact::Derivative(value, noise) => {
            estimates.gradapprox[k] = value;
            estimates.noise[k] = noise;
            estimates.exact.insert(k);
            if let Some(t) = estimates.truncation.get_mut(k) {
                *t = 0.0;
            }
        }
        Exact::Kink(kink) => {
            estimates.gradapprox[k] = kink.course();
            estimates.kinks.insert(k, kink);
        }
    }
}

/// The delta method's per-row data, owned for one evaluation: the classic model's row
/// gains (a device's fast path), or any model's per-unit series (the host's: its sums
/// are matrix products).
pub(crate) enum RowData {
    Gains(Box<Sensitivity>),
    Series(Box<Series>),
}

impl RowData {
    /// The rows for a backend that `evaluates_gains` or not.
    pub fn of(problem: &Problem, evaluates_gains: bool) -> Self {
        if evaluates_gains && problem.model().is_classic() {
            RowData::Gains(Box::new(Sensitivity::new(problem)))
        } else {
            RowData::Series(Box::new(Series::new(problem)))
        }
    }

    pub fn as_rows(&self) -> Rows<'_> {
        match self {
            RowData::Gains(sens) => Rows::Gains(sens),
            RowData::Series(series) => Rows::Series(series),
        }
    }

    /// The inputs, gains and ties every row shares.
    pub fn sensitivity(&self) -> &Sensitivity {
        match self {
            RowData::Gains(sens) => sens,
            RowData::Series(series) => &series.sens,
        }
    }

    /// The truncation of the estimate `d` made at step `eps`: what its evaluation knew of
    /// it, else the rows' bound at the parameter `at` locates.
    pub fn truncation_of(
        &self,
        d: &crate::estimate::DeltaCost,
        at: impl FnOnce() -> crate::error::Result<(usize, usize, Option<usize>)>,
        eps: f64,
    ) -> crate::error::Result<f64> {
        match d.truncation {
            Some(known) => Ok(known),
            None => Ok(self.truncation_bound(at()?, eps)),
        }
    }

    /// A bound on the truncation of parameter `at`'s estimate at step `eps`.
    pub fn truncation_bound(&self, at: (usize, usize, Option<usize>), eps: f64) -> f64 {
        match self {
            RowData::Gains(sens) => sens.truncation_bound(at, eps),
            RowData::Series(series) => series.truncation_bound(at, eps),
        }
    }
}
