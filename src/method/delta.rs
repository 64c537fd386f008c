//! The delta method over every coordinate (or a sample): each parameter's step changes one
//! pre-activation row, whose effect is evaluated from per-row data shared by its
//! parameters (`RowData`), on the CPU or the GPU. Its round-off does not grow as the step
//! shrinks, so a coordinate limited by its truncation is evaluated again at a smaller step.
//! An f32 device's estimates that its precision leaves undecided are evaluated again in
//! f64 on the host. Where a coordinate's change reaches a unit on its kink, the
//! conventions' derivatives stand in.

use rayon::prelude::*;

use super::{use_exact, RowData};
use crate::backend::{add_seconds, Backend, Cpu, DeltaSession, Settings};
use crate::cpu::ties::Derivatives;
use crate::error::Result;
use crate::estimate::{DeltaCost, Estimates};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// A coordinate whose truncation bound exceeds this fraction of what the threshold allows
/// it is evaluated again at a smaller step, chosen to bring the bound to a hundredth of it.
const REFINE_ABOVE: f64 = 0.1;
/// Steps are refined by powers of ten, at most this many.
const MAX_REFINEMENT: i32 = 6;

/// What a delta evaluation is asked: the coordinates, the step, and the threshold whose
/// resolution it aims at.
pub struct Request<'a> {
    pub indices: &'a [usize],
    pub eps: f64,
    pub threshold: f64,
}

/// What came of it: the estimates (of `indices`, in order), the device time, and what the
/// report must say.
pub struct Outcome {
    pub estimates: Estimates,
    pub steps: Vec<f64>,
    pub gpu_seconds: Option<f64>,
    pub notes: Vec<String>,
}

/// The delta method on `backend` for `request.indices` of `problem`.
pub fn evaluate(
    backend: &dyn Backend,
    problem: &Problem,
    request: &Request<'_>,
    settings: Settings,
    monitor: &dyn Monitor,
) -> Result<Outcome> {
    let rows = RowData::of(problem, backend.evaluates_gains());
    let session = backend.delta_session(problem, rows.as_rows(), settings)?;
    let indices = request.indices;
    let first = session.run(request.eps, indices, monitor)?;
    let (mut deltas, mut gpu_seconds) = (first.values, first.gpu_seconds);
    let mut steps = vec![request.eps; indices.len()];
    let u = backend.unit_roundoff(settings.precision);
    let mut unit = vec![u; indices.len()];
    let located = |k: usize| problem.locate(indices[k]);
    // What an f32 device's round-off leaves undecided goes to the host first, so that a
    // coordinate limited by both its round-off and its truncation is refined there.
    let mut notes = Vec::new();
    let host = if settings.precision == Precision::F32 {
        Some(Cpu.delta_session(problem, rows.as_rows(), settings)?)
    } else {
        None
    };
    if let Some(host) = &host {
        if let Some(note) = reevaluate_on_host(
            &**host,
            (indices, &mut deltas, &steps, &mut unit),
            request,
            monitor,
        )? {
            notes.push(note);
        }
    }
    for (h, group) in refinements(&rows, (indices, &deltas, &steps, &unit), request, problem)? {
        // Each on the session that evaluated it first.
        let (on_host, on_device): (Vec<usize>, Vec<usize>) =
            group.into_iter().partition(|&k| unit[k] != u);
        for (run_on, group) in [(host.as_deref(), on_host), (Some(&*session), on_device)] {
            let Some(run_on) = run_on.filter(|_| !group.is_empty()) else {
                continue;
            };
            let again = run_on.run(
                h,
                &group.iter().map(|&k| indices[k]).collect::<Vec<_>>(),
                monitor,
            )?;
            for (&k, d) in group.iter().zip(again.values) {
                deltas[k] = d;
                steps[k] = h;
            }
            gpu_seconds = add_seconds(gpu_seconds, again.gpu_seconds);
        }
    }
    let mut estimates = estimates_of(problem.data_cost(), &deltas, &steps, &unit);
    let sens = rows.sensitivity();
    estimates.truncation = (0..indices.len())
        .into_par_iter()
        .map(|k| rows.truncation_of(&deltas[k], || located(k), steps[k]))
        .collect::<Result<Vec<f64>>>()?;
    for (k, noise) in estimates.noise.iter_mut().enumerate() {
        *noise += sens.residual_error(located(k)?);
    }
    if sens.ties.any() {
        let exact = Derivatives::new(problem, sens);
        let found: Vec<(usize, crate::cpu::ties::Exact)> = (0..indices.len())
            .into_par_iter()
            .map(|k| {
                let at = located(k)?;
                Ok(sens
                    .ties
                    .touches(&sens.inputs[at.0], at)
                    .then(|| (k, exact.of(at))))
            })
            .filter_map(|r| r.transpose())
            .collect::<Result<_>>()?;
        for (k, e) in found {
            use_exact(&mut estimates, k, e);
        }
    }
    super::penalty::add(problem, indices, &steps, &mut estimates);
    Ok(Outcome {
        estimates,
        steps,
        gpu_seconds,
        notes,
    })
}

/// The estimates from `J(θ)` and the cost changes, each with its own step and the unit
/// round-off of the arithmetic that computed it.
fn estimates_of(j: f64, deltas: &[DeltaCost], steps: &[f64], unit: &[f64]) -> Estimates {
    let mut est = Estimates::default();
    for v in [
        &mut est.j_plus,
        &mut est.j_minus,
        &mut est.gradapprox,
        &mut est.noise,
    ] {
        v.reserve_exact(deltas.len());
    }
    for ((d, &h), &u) in deltas.iter().zip(steps).zip(unit) {
        est.j_plus.push(j + d.plus);
        est.j_minus.push(j + d.minus);
        est.gradapprox.push((d.plus - d.minus) / (2.0 * h));
        est.noise.push(d.roundoff(u) / (2.0 * h));
    }
    est
}

/// The coordinates (positions in `indices`) to evaluate again at a smaller step, grouped
/// by step: those whose truncation bound at their step exceeds [`REFINE_ABOVE`] of what
/// `threshold` allows them while their round-off does not, each at the power-of-ten
/// smaller step that brings the bound to a hundredth of that (it shrinks with the step's
/// square).
fn refinements(
    rows: &RowData,
    (indices, deltas, steps, unit): (&[usize], &[DeltaCost], &[f64], &[f64]),
    request: &Request<'_>,
    problem: &Problem,
) -> Result<Vec<(f64, Vec<usize>)>> {
    let mut groups: std::collections::BTreeMap<i32, Vec<usize>> = Default::default();
    for (k, (d, &h)) in deltas.iter().zip(steps).enumerate() {
        let approx = ((d.plus - d.minus) / (2.0 * h)).abs();
        let allowed = request.threshold * approx;
        let truncation = rows.truncation_of(d, || problem.locate(indices[k]), h)?;
        let roundoff = d.roundoff(unit[k]) / (2.0 * h);
        if approx == 0.0 || truncation <= REFINE_ABOVE * allowed || roundoff > allowed {
            continue;
        }
        let factor = (0.01 * allowed / truncation).sqrt();
        let power = (-factor.log10())
            .ceil()
            .clamp(1.0, f64::from(MAX_REFINEMENT)) as i32;
        groups.entry(power).or_default().push(k);
    }
    Ok(groups
        .into_iter()
        .map(|(power, group)| (request.eps * 10f64.powi(-power), group))
        .collect())
}

/// The share of what the threshold allows a coordinate that its round-off may take and
/// leave it decidable once its truncation is refined (to a hundredth of the allowance).
const ROUNDOFF_SHARE: f64 = 0.9;

/// Evaluates again in f64 on the host the coordinates an f32 device's round-off leaves
/// undecided at `request.threshold` (above [`ROUNDOFF_SHARE`] of what it allows them; the
/// truncation is refined afterwards), marking their unit round-off f64's; says how many,
/// or `None` when there were none.
fn reevaluate_on_host(
    host: &dyn DeltaSession,
    (indices, deltas, steps, unit): (&[usize], &mut [DeltaCost], &[f64], &mut [f64]),
    request: &Request<'_>,
    monitor: &dyn Monitor,
) -> Result<Option<String>> {
    let undecided: Vec<usize> = (0..indices.len())
        .filter(|&k| {
            let d = &deltas[k];
            let h = steps[k];
            let approx = ((d.plus - d.minus) / (2.0 * h)).abs();
            d.roundoff(unit[k]) / (2.0 * h) > ROUNDOFF_SHARE * request.threshold * approx
        })
        .collect();
    if undecided.is_empty() {
        return Ok(None);
    }
    // Grouped by step, as the host session runs one step at a time.
    let mut by_step: std::collections::BTreeMap<u64, Vec<usize>> = Default::default();
    for &k in &undecided {
        by_step.entry(steps[k].to_bits()).or_default().push(k);
    }
    for (bits, group) in by_step {
        let at: Vec<usize> = group.iter().map(|&k| indices[k]).collect();
        let again = host.run(f64::from_bits(bits), &at, monitor)?;
        for (&k, d) in group.iter().zip(again.values) {
            deltas[k] = d;
            unit[k] = Precision::F64.unit_roundoff();
        }
    }
    Ok(Some(format!(
        "{} of {} coordinates were below what f32 resolves on the device and were evaluated again in f64 on the host",
        undecided.len(),
        indices.len()
    )))
}
