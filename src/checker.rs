//! Runs a check: picks the device, evaluates the finite differences, builds the report.

use std::time::Instant;

use crate::backend::{add_seconds, Backend, Cpu, Rows, Settings};
use crate::check::{compare_groups, compare_trial, Advice, Judged, Trial};
use crate::cpu;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::Series;
use crate::directions::Direction;
use crate::error::{Error, Result};
use crate::estimate::Estimates;
use crate::generate::BugSpec;
use crate::gpu::{AdapterSummary, GpuContext};
use crate::memory;
use crate::model::{Model, TensorKind};
use crate::monitor::{Monitor, Silent};
use crate::options::{CheckOptions, DeviceChoice, Method, Precision};
use crate::placement::{place, Placement};
use crate::problem::Problem;
use crate::report::{Header, Report, Scope, Timing};

/// A coordinate whose step crossed a ReLU kink is evaluated again with a step this many
/// times smaller; the crossing then needs `|Z| < ε·|A|·1e-3`.
pub const KINK_RECHECK_FACTOR: f64 = 1e-3;

/// How the costs of a model are evaluated, and what the user is told when that is not
/// what was asked for (nothing, now that the delta method covers every model).
pub fn method_for(_model: &Model, opts: &CheckOptions) -> (Method, Option<String>) {
    (opts.evaluation_method(), None)
}

/// Where the work runs, resolved once per process and reused by every check.
pub struct Engine {
    backend: Box<dyn Backend>,
    /// What the engine was opened for: an evaluation asking for another device,
    /// precision, adapter or limits is refused rather than run (and labelled) wrongly.
    opened_for: Opening,
    /// The device and precision decided (`placement::place`), and why.
    placement: Placement,
    /// One-line notices for the user (e.g. a fallback to the CPU).
    pub notices: Vec<String>,
}

impl Engine {
    /// Finds the adapter (unless the CPU is asked for) and decides where the checks run
    /// and in which precision (`placement::place`); the GPU is opened only when used. An
    /// adapter named (`adapter`, `WGPU_ADAPTER_NAME`) and absent is an error.
    pub fn new(opts: &CheckOptions) -> Result<Self> {
        opts.validate()?;
        let found = match opts.device {
            DeviceChoice::Cpu => None,
            _ => match GpuContext::new(opts.adapter.as_deref(), opts.limits) {
                Ok(ctx) => Some(ctx),
                Err(e @ Error::NoAdapter(_))
                    if opts.device == DeviceChoice::Gpu
                        || opts.adapter.is_some()
                        || std::env::var_os("WGPU_ADAPTER_NAME").is_some() =>
                {
                    return Err(e)
                }
                Err(Error::NoAdapter(_)) => None,
                Err(e) => return Err(e),
            },
        };
        let placement = place(
            opts.device,
            opts.precision,
            found.as_ref().map(GpuContext::summary),
        )?;
        let notices = placement.notice.iter().cloned().collect();
        let backend: Box<dyn Backend> = match found.filter(|_| placement.gpu) {
            Some(ctx) => Box::new(ctx),
            None => Box::new(Cpu),
        };
        Ok(Self {
            backend,
            opened_for: Opening::of(opts),
            placement,
            notices,
        })
    }

    /// `problem` as this engine's device sees it: rounded to f32 for an f32 device, whose
    /// reference (cost, gradient, bounds) must see the same numbers.
    fn seen<'a>(&self, problem: &'a Problem) -> std::borrow::Cow<'a, Problem> {
        match self.precision() {
            Precision::F32 => std::borrow::Cow::Owned(problem.rounded_to_f32()),
            Precision::F64 => std::borrow::Cow::Borrowed(problem),
        }
    }

    /// The precision checks run in here.
    pub fn precision(&self) -> Precision {
        self.placement.precision
    }

    /// How the backend evaluates.
    fn settings(&self, opts: &CheckOptions) -> Settings {
        Settings {
            precision: self.precision(),
            chunk: opts.chunk,
            budget: opts.budget(),
        }
    }

    /// The unit round-off of the costs this engine's backend returns.
    fn unit_roundoff(&self) -> f64 {
        self.backend.unit_roundoff(self.precision())
    }

    /// The delta method over every coordinate (or the sample): the classic model from
    /// each row's gain, any other from each unit's series. Coordinates whose step crossed a
    /// kink are evaluated again with a step [`KINK_RECHECK_FACTOR`] times smaller; those
    /// that still cross are judged against their exact one-sided derivatives (classic) or
    /// left undecided (one-sided derivatives are computed for the classic model only).
    fn delta_with_kink_recheck(
        &self,
        problem: &Problem,
        eps: f64,
        opts: &CheckOptions,
        monitor: &dyn Monitor,
    ) -> Result<(Estimates, Option<f64>)> {
        let total = problem.net().num_params();
        let indices: Vec<usize> = match opts.sample {
            Some(k) => crate::sample::choose(problem.net().layout(), k, opts.sample_seed)?,
            None => (0..total).collect(),
        };
        // What every step of every coordinate shares: computed once, for both rounds.
        let rows = if problem.model().is_classic() {
            RowsOwned::Gains(Box::new(Sensitivity::new(problem)))
        } else {
            RowsOwned::Series(Series::new(problem))
        };
        let session = self
            .backend
            .delta_session(problem, rows.as_rows(), self.settings(opts))?;
        let (deltas, steps, gpu_seconds) =
            with_kink_recheck(&indices, eps, |at, h| session.run(h, at, monitor))?;
        let mut estimates =
            Estimates::from_deltas(problem.data_cost(), &deltas, &steps, self.unit_roundoff());
        match &rows {
            RowsOwned::Gains(sens) => {
                let still: Vec<usize> = (0..indices.len()).filter(|&k| deltas[k].kink).collect();
                bound_truncation_and_kinks(
                    problem,
                    sens,
                    &indices,
                    &steps,
                    &still,
                    &mut estimates,
                )?;
            }
            RowsOwned::Series(series) => {
                estimates.truncation = indices
                    .iter()
                    .zip(&steps)
                    .zip(&deltas)
                    .map(|((&i, &h), d)| {
                        Ok(if d.kink {
                            UNBOUNDED
                        } else {
                            series.truncation_bound(problem.locate(i)?, h)
                        })
                    })
                    .collect::<Result<Vec<f64>>>()?;
            }
        }
        add_l2(problem, &indices, &steps, &mut estimates);
        let estimates = if indices.len() < total {
            estimates.scatter(&indices, total)
        } else {
            estimates
        };
        Ok((estimates, gpu_seconds))
    }

    /// The full method over every coordinate, with its truncation bounded: exactly for
    /// the classic model (and kinks bracketed), else by the difference from a second
    /// evaluation at twice the step.
    fn whole_passes(
        &self,
        problem: &Problem,
        eps: f64,
        opts: &CheckOptions,
        monitor: &dyn Monitor,
    ) -> Result<(Estimates, Option<f64>)> {
        let settings = |eps: f64| (eps, self.settings(opts));
        let run = self
            .backend
            .coordinate_costs(problem, settings(eps), monitor)?;
        let (mut estimates, mut gpu_seconds) = (run.values, run.gpu_seconds);
        if problem.model().is_classic() {
            bound_whole_passes(problem, eps, &mut estimates)?;
        } else {
            let wide = self
                .backend
                .coordinate_costs(problem, settings(2.0 * eps), monitor)?;
            gpu_seconds = add_seconds(gpu_seconds, wide.gpu_seconds);
            estimates.truncation = richardson(&estimates.gradapprox, &wide.values.gradapprox);
            leave_kinks_undecided(problem, eps, &mut estimates);
        }
        let all: Vec<usize> = (0..problem.net().num_params()).collect();
        add_l2(problem, &all, &vec![eps; all.len()], &mut estimates);
        Ok((estimates, gpu_seconds))
    }

    /// What a check of `problem` with `gradients` will say it does, before any work.
    pub fn header(
        &self,
        title: &str,
        problem: &Problem,
        gradients: &Gradients,
        opts: &CheckOptions,
    ) -> Header {
        let (method, _) = method_for(problem.model(), opts);
        build_header(
            title,
            &self.seen(problem),
            (self.backend.adapter().cloned(), &self.placement.reason),
            (
                opts.eps_in(method, self.precision()),
                self.precision(),
                method,
            ),
            gradients,
            opts,
        )
    }

    /// The GPU in use, if any.
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.backend.adapter()
    }

    /// Evaluates every perturbed cost of `problem`.
    pub fn evaluate(&self, problem: &Problem, opts: &CheckOptions) -> Result<Evaluation> {
        self.evaluate_monitored(problem, opts, &Silent)
    }

    /// [`Engine::evaluate`], reporting progress to `monitor` and stopping with
    /// [`Error::Cancelled`] when it asks.
    pub fn evaluate_monitored(
        &self,
        problem: &Problem,
        opts: &CheckOptions,
        monitor: &dyn Monitor,
    ) -> Result<Evaluation> {
        opts.validate()?;
        if Opening::of(opts) != self.opened_for {
            return Err(Error::Option(format!(
                "these options ask for {}, but the engine was opened for {}: open an engine with them",
                Opening::of(opts),
                self.opened_for
            )));
        }
        let (method, note) = method_for(problem.model(), opts);
        if opts.sample.is_some() && method != Method::Delta {
            return Err(Error::Option(
                "a sample needs the delta method, which does not cover this model yet; check every coordinate or random directions".into(),
            ));
        }
        let checked = opts.sample.or(opts.directions).unwrap_or(usize::MAX);
        memory::ensure_problem_fits(problem, checked, opts.budget())?;
        let eps = opts.eps_in(method, self.precision());
        let seen = self.seen(problem).into_owned();
        let start = Instant::now();
        if let Some(k) = opts.directions {
            return self.evaluate_directions(seen, k, opts, monitor, start);
        }
        let (estimates, gpu_seconds) = match method {
            Method::Full => self.whole_passes(&seen, eps, opts, monitor)?,
            Method::Delta => self.delta_with_kink_recheck(&seen, eps, opts, monitor)?,
        };
        Ok(Evaluation {
            problem: seen,
            estimates,
            directions: None,
            eps,
            precision: self.precision(),
            method,
            adapter: self.backend.adapter().cloned(),
            seconds: start.elapsed().as_secs_f64(),
            placement: self.placement.reason.clone(),
            gpu_seconds,
            notes: note.into_iter().collect(),
        })
    }

    /// `k` directional derivatives by whole forward passes; the estimates are per direction.
    fn evaluate_directions(
        &self,
        seen: Problem,
        k: usize,
        opts: &CheckOptions,
        monitor: &dyn Monitor,
        start: Instant,
    ) -> Result<Evaluation> {
        let eps = opts.eps_in(Method::Full, self.precision());
        let dirs = crate::directions::draw(seen.net().layout(), k, opts.sample_seed)?;
        let along = |h: f64| {
            let run =
                self.backend
                    .direction_costs(&seen, (h, self.settings(opts)), &dirs, monitor)?;
            let (j_plus, j_minus) = run.values.into_iter().unzip();
            let estimates =
                Estimates::from_costs(j_plus, j_minus, &vec![2.0 * h; k], self.unit_roundoff());
            Ok::<_, Error>((estimates, run.gpu_seconds))
        };
        let (mut estimates, mut gpu_seconds) = along(eps)?;
        if seen.model().is_classic() {
            bound_directions(&seen, &dirs, eps, &mut estimates);
        } else {
            let (wide, seconds) = along(2.0 * eps)?;
            gpu_seconds = add_seconds(gpu_seconds, seconds);
            estimates.truncation = richardson(&estimates.gradapprox, &wide.gradapprox);
        }
        add_l2_along(&seen, &dirs, &mut estimates);
        Ok(Evaluation {
            problem: seen,
            estimates,
            directions: Some(dirs),
            eps,
            precision: self.precision(),
            method: Method::Full,
            adapter: self.backend.adapter().cloned(),
            seconds: start.elapsed().as_secs_f64(),
            placement: self.placement.reason.clone(),
            gpu_seconds,
            notes: Vec::new(),
        })
    }
}

/// The delta method's per-row data, owned for the length of one evaluation.
enum RowsOwned {
    Gains(Box<Sensitivity>),
    Series(Series),
}

impl RowsOwned {
    fn as_rows(&self) -> Rows<'_> {
        match self {
            RowsOwned::Gains(sens) => Rows::Gains(sens),
            RowsOwned::Series(series) => Rows::Series(series),
        }
    }
}

/// Runs the delta method's `evaluate(indices, step)` and evaluates again, with a step
/// [`KINK_RECHECK_FACTOR`] times smaller, the coordinates whose step crossed a kink;
/// returns the cost changes, each one's step, and the device time.
fn with_kink_recheck(
    indices: &[usize],
    eps: f64,
    evaluate: impl Fn(&[usize], f64) -> Result<crate::backend::Run<Vec<crate::estimate::DeltaCost>>>,
) -> Result<(Vec<crate::estimate::DeltaCost>, Vec<f64>, Option<f64>)> {
    let first = evaluate(indices, eps)?;
    let (mut deltas, mut gpu_seconds) = (first.values, first.gpu_seconds);
    let mut steps = vec![eps; indices.len()];
    // Positions (in `indices`) whose step crossed a kink.
    let kinked: Vec<usize> = (0..indices.len()).filter(|&k| deltas[k].kink).collect();
    if !kinked.is_empty() {
        let small = eps * KINK_RECHECK_FACTOR;
        let again_at: Vec<usize> = kinked.iter().map(|&k| indices[k]).collect();
        let again = evaluate(&again_at, small)?;
        for (&k, d) in kinked.iter().zip(again.values) {
            deltas[k] = d;
            steps[k] = small;
        }
        gpu_seconds = add_seconds(gpu_seconds, again.gpu_seconds);
    }
    Ok((deltas, steps, gpu_seconds))
}

/// The options that decide which device an engine opens and in which precision.
#[derive(Clone, Debug, PartialEq)]
struct Opening {
    device: DeviceChoice,
    precision: crate::options::PrecisionChoice,
    adapter: Option<String>,
    limits: crate::options::LimitsChoice,
}

impl Opening {
    fn of(opts: &CheckOptions) -> Self {
        Self {
            device: opts.device,
            precision: opts.precision,
            adapter: opts.adapter.clone(),
            limits: opts.limits,
        }
    }
}

impl std::fmt::Display for Opening {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "device {:?}, precision {:?}, limits {}",
            self.device,
            self.precision,
            self.limits.as_str()
        )?;
        if let Some(a) = &self.adapter {
            write!(f, ", adapter '{a}'")?;
        }
        Ok(())
    }
}

/// Truncation bounds where no exact one exists (smooth activations, softmax, squared
/// error, dropout): with `D(h) = g + c·h² + O(h⁴)`, `|D(h) − D(2h)| ≈ 3|c|h²`, three times
/// the truncation at `h`; it also holds both estimates' round-off, and a step across a kink
/// makes it large, so such a coordinate is left undecided rather than judged wrongly.
fn richardson(at_h: &[f64], at_2h: &[f64]) -> Vec<f64> {
    at_h.iter().zip(at_2h).map(|(a, b)| (a - b).abs()).collect()
}

/// Beyond the classic model the one-sided derivatives at a kink are not computed yet: a
/// coordinate whose step (or the Richardson step, twice as long, with a margin for the
/// linear estimate of the reach through smooth layers) may cross a ReLU or leaky ReLU
/// kink cannot be bounded, and is left undecided. Richardson alone would miss a kink
/// right at θ: both steps then average the same two slopes.
fn leave_kinks_undecided(problem: &Problem, eps: f64, estimates: &mut Estimates) {
    if problem.model().hidden.iter().all(|a| a.kink().is_none()) {
        return;
    }
    let sens = Sensitivity::new(problem);
    for i in 0..estimates.len() {
        if problem
            .locate(i)
            .is_ok_and(|at| sens.crosses(at, UNBOUNDED_KINK_MARGIN * eps))
        {
            estimates.truncation[i] = UNBOUNDED;
        }
    }
}

/// The reach margin of [`leave_kinks_undecided`]: the wide step, times 2.
const UNBOUNDED_KINK_MARGIN: f64 = 4.0;

/// A truncation bound that no threshold can meet, finite so that sums and JSON stay so.
const UNBOUNDED: f64 = 1e150;

/// Adds L2's exact share to the estimates of the coordinates `indices` (taken with
/// `steps`), computed from data costs alone: its central difference is exactly its
/// derivative `2·f·w` (a quadratic has no truncation error), and the costs move by
/// `f·((w ± h)² − w²)` on top of `f·Σw²`.
fn add_l2(problem: &Problem, indices: &[usize], steps: &[f64], estimates: &mut Estimates) {
    let Some(l2) = L2Share::of(problem) else {
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

/// [`add_l2`] for directional estimates: along `v` over weight tensor `W` L2's derivative
/// is `2·f·⟨W, v⟩` (the costs' own changes are left at their linear part).
fn add_l2_along(problem: &Problem, dirs: &[Direction], estimates: &mut Estimates) {
    let Some(l2) = L2Share::of(problem) else {
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
struct L2Share {
    factor: f64,
    value: f64,
    theta: Vec<f64>,
}

impl L2Share {
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

/// Adds to `estimates` (of the coordinates `indices`, taken with `steps`) each one's
/// truncation bound, and for the positions `crossing` (whose step crosses a ReLU kink) the
/// exact one-sided derivatives, with units within a [`KINK_RECHECK_FACTOR`] fraction of
/// the step from their kink taken as on it.
fn bound_truncation_and_kinks(
    problem: &Problem,
    sens: &Sensitivity,
    indices: &[usize],
    steps: &[f64],
    crossing: &[usize],
    estimates: &mut Estimates,
) -> Result<()> {
    use rayon::prelude::*;
    // Located on the fly: a list of every coordinate's place would cost ~30 bytes each.
    estimates.truncation = indices
        .par_iter()
        .zip(steps)
        .map(|(&i, &h)| Ok(sens.truncation_bound(problem.locate(i)?, h)))
        .collect::<Result<Vec<f64>>>()?;
    estimates.kinks = crossing
        .par_iter()
        .map(|&k| {
            let h = steps[k];
            let tie = h * KINK_RECHECK_FACTOR;
            let at = problem.locate(indices[k])?;
            Ok((k, cpu::kinks::bracket(problem, sens, at, h, tie)))
        })
        .collect::<Result<Vec<_>>>()?
        .into_iter()
        .collect();
    for (&k, b) in &estimates.kinks {
        estimates.gradapprox[k] = b.central();
    }
    Ok(())
}

/// Adds to the full method's estimates (every coordinate, step `eps`) their truncation
/// bounds and, where a step crosses a ReLU kink, the exact one-sided derivatives.
fn bound_whole_passes(problem: &Problem, eps: f64, estimates: &mut Estimates) -> Result<()> {
    let sens = Sensitivity::new(problem);
    let all: Vec<usize> = (0..problem.net().num_params()).collect();
    let crossing: Vec<usize> = all
        .iter()
        .copied()
        .filter(|&i| problem.locate(i).is_ok_and(|at| sens.crosses(at, eps)))
        .collect();
    bound_truncation_and_kinks(
        problem,
        &sens,
        &all,
        &vec![eps; all.len()],
        &crossing,
        estimates,
    )
}

/// Adds to the estimates of directional checks each direction's truncation bound and, for
/// a direction whose step crosses a ReLU kink, its exact one-sided derivatives (forward
/// passes along it on the host, as many as the directions' own passes).
fn bound_directions(problem: &Problem, dirs: &[Direction], eps: f64, estimates: &mut Estimates) {
    use rayon::prelude::*;
    let sens = Sensitivity::new(problem);
    let layout = problem.net().layout();
    let found: Vec<(f64, Option<crate::estimate::Bracket>)> = dirs
        .par_iter()
        .map(|d| {
            let p = layout.tensors()[d.tensor].layer - 1;
            let change = d.layer_change(layout, sens.inputs[p].view());
            let tie = eps * KINK_RECHECK_FACTOR;
            cpu::kinks::along_change(problem, &sens, p, change.view(), eps, tie)
        })
        .collect();
    for (k, (truncation, bracket)) in found.into_iter().enumerate() {
        estimates.truncation.push(truncation);
        if let Some(b) = bracket {
            estimates.gradapprox[k] = b.central();
            estimates.kinks.insert(k, b);
        }
    }
}

/// The finite differences of one problem, ready to judge any gradient against.
pub struct Evaluation {
    /// The problem as the device saw it (rounded to f32 for an f32 run).
    pub problem: Problem,
    /// Per coordinate, or per direction when `directions` is set.
    pub estimates: Estimates,
    /// The directions of a directional check.
    pub directions: Option<Vec<crate::directions::Direction>>,
    pub eps: f64,
    pub precision: Precision,
    pub method: Method,
    /// `None` for the CPU.
    pub adapter: Option<AdapterSummary>,
    /// Why this device and precision (`placement::place`).
    pub placement: String,
    pub seconds: f64,
    pub gpu_seconds: Option<f64>,
    /// What the report must say about how this evaluation was made (a method fallback).
    pub notes: Vec<String>,
}

/// Gradients read from a file, in layout order, with what they were read from.
#[derive(Clone, Debug)]
pub struct GivenGradients {
    /// Flat in layout order; NaN in the tensors not given.
    pub values: Vec<f64>,
    /// Per tensor, whether its gradient was given (empty: every one).
    pub given: Vec<bool>,
    /// `(tensor, array)`: which array was read as which tensor's gradient.
    pub arrays: Vec<(String, String)>,
    /// The precision the gradients were stored in (float32 arrays: f32).
    pub stored: Precision,
    /// How the report names them ("gradients from net.npz").
    pub source: String,
}

impl GivenGradients {
    /// The tensors of `layout` whose gradients were not given, in layout order.
    pub fn missing<'a>(&self, layout: &'a crate::model::ParamLayout) -> Vec<&'a str> {
        layout
            .tensors()
            .iter()
            .zip(self.given.iter().chain(std::iter::repeat(&true)))
            .filter(|(_, &given)| !given)
            .map(|(t, _)| t.name.as_str())
            .collect()
    }
}

/// The gradient put on trial.
#[derive(Clone, Debug)]
pub enum Gradients {
    /// The library's own backprop, optionally with planted bugs.
    Backprop(Option<BugSpec>),
    /// Gradients from elsewhere (a file).
    Given(GivenGradients),
}

impl Gradients {
    /// Float64 gradients of every tensor, flat in layout order, from `source`.
    pub fn given(values: Vec<f64>, source: impl Into<String>) -> Self {
        Gradients::Given(GivenGradients {
            values,
            given: Vec::new(),
            arrays: Vec::new(),
            stored: Precision::F64,
            source: source.into(),
        })
    }

    /// The flat gradient for `problem`.
    pub fn resolve(&self, problem: &Problem) -> Result<Vec<f64>> {
        match self {
            Gradients::Backprop(bugs) => {
                let mut grad = cpu::backprop::gradients(problem);
                if let Some(bugs) = bugs {
                    bugs.apply(problem.net().layout(), &mut grad)?;
                }
                Ok(grad)
            }
            Gradients::Given(given) => {
                if given.values.len() != problem.net().num_params() {
                    return Err(Error::Shape(format!(
                        "{} gradient values for {} parameters",
                        given.values.len(),
                        problem.net().num_params()
                    )));
                }
                Ok(given.values.clone())
            }
        }
    }

    /// The precision of the gradients as stored (the built-in backprop is f64).
    pub fn stored_precision(&self) -> Precision {
        match self {
            Gradients::Backprop(_) => Precision::F64,
            Gradients::Given(given) => given.stored,
        }
    }

    /// Per tensor, whether it is on trial (`None`: all).
    pub fn tensors_on_trial(&self) -> Option<&[bool]> {
        match self {
            Gradients::Given(g) if g.given.iter().any(|&t| !t) => Some(&g.given),
            _ => None,
        }
    }

    /// How the report names it.
    pub fn describe(&self) -> String {
        match self {
            Gradients::Backprop(None) => "built-in backprop".into(),
            Gradients::Backprop(Some(bugs)) => {
                let list: Vec<String> = bugs.0.iter().map(|(n, f)| format!("{n}×{f}")).collect();
                format!("built-in backprop with planted bugs {}", list.join(", "))
            }
            Gradients::Given(given) => given.source.clone(),
        }
    }
}

/// What would decide an undecided item, by what limits it, for this evaluation.
fn advice(eval: &Evaluation, grad_precision: Precision, examples: usize) -> Advice {
    let roundoff = match (eval.method, eval.precision, eval.directions.is_some()) {
        (_, Precision::F32, true) | (Method::Full, Precision::F32, _) => {
            "f32 whole forward passes cannot resolve it; use the delta method or f64".into()
        }
        (Method::Full, Precision::F64, _) | (_, _, true) => {
            "use the delta method (exact changes, no cancellation)".into()
        }
        (Method::Delta, Precision::F32, _) => "use f64".into(),
        (Method::Delta, Precision::F64, _) => String::new(),
    };
    Advice {
        examples,
        roundoff,
        truncation: format!("the step {:e} is too large; use a smaller one", eval.eps),
        gradients: match grad_precision {
            Precision::F32 => "float32 gradients cannot show errors that small; raise the threshold or compute the gradients in float64".into(),
            Precision::F64 => String::new(),
        },
    }
}

/// The precision the gradients are judged at: f32 when they are stored as float32 or
/// declared computed in f32.
fn judged_precision(gradients: &Gradients, opts: &CheckOptions) -> Precision {
    if opts.grad_precision == Some(Precision::F32) || gradients.stored_precision() == Precision::F32
    {
        Precision::F32
    } else {
        Precision::F64
    }
}

/// The header of a check of `seen` (the problem as the device sees it) on `adapter` (the
/// CPU when `None`), with `(eps, precision, method)`.
fn build_header(
    title: &str,
    seen: &Problem,
    (adapter, placement): (Option<AdapterSummary>, &str),
    (eps, precision, method): (f64, Precision, Method),
    gradients: &Gradients,
    opts: &CheckOptions,
) -> Header {
    let layout = seen.net().layout();
    let grad_precision = judged_precision(gradients, opts);
    let (gradient_arrays, not_given) = match gradients {
        Gradients::Given(g) => (
            g.arrays.clone(),
            g.missing(layout).into_iter().map(String::from).collect(),
        ),
        Gradients::Backprop(_) => (Vec::new(), Vec::new()),
    };
    Header {
        title: title.to_string(),
        gradients: gradients.describe(),
        gradient_arrays,
        not_given,
        grad_precision,
        threshold: opts.threshold_in(method, precision, grad_precision),
        params: layout.len(),
        widths: seen.net().widths(),
        examples: seen.examples(),
        model: seen.model().describe(),
        layout: seen.net().data_layout().as_str().into(),
        cost: seen.cost(),
        eps,
        precision,
        method,
        device: if adapter.is_some() { "gpu" } else { "cpu" }.to_string(),
        adapter,
        placement: placement.to_string(),
    }
}

/// A whole check: opens the device `opts` asks for, evaluates every perturbed cost of
/// `problem` (reporting to `monitor`, which may stop it), and judges `gradients`; the
/// engine's notices (a fallback to the CPU) lead the report's warnings. What the Python
/// module runs (the command line prints the header between these steps).
pub fn run_check(
    title: &str,
    problem: &Problem,
    gradients: &Gradients,
    opts: &CheckOptions,
    monitor: &dyn Monitor,
) -> Result<Report> {
    let engine = Engine::new(opts)?;
    let eval = engine.evaluate_monitored(problem, opts, monitor)?;
    let mut report = judge(title, &eval, gradients, opts)?;
    report.warnings.splice(0..0, engine.notices.iter().cloned());
    Ok(report)
}

/// Judges `gradients` against an evaluation and builds the report.
pub fn judge(
    title: &str,
    eval: &Evaluation,
    gradients: &Gradients,
    opts: &CheckOptions,
) -> Result<Report> {
    let start = Instant::now();
    let grad = gradients.resolve(&eval.problem)?;
    let layout = eval.problem.net().layout();
    let given = gradients.tensors_on_trial();
    for (t, spec) in layout.tensors().iter().enumerate() {
        if given.is_none_or(|g| g[t]) {
            if let Some(i) = spec.range().find(|&i| !grad[i].is_finite()) {
                return Err(Error::NonFinite {
                    array: format!("the gradient d{}", spec.name),
                    at: layout.coordinate_name(i),
                    value: grad[i],
                });
            }
        }
    }
    let header = build_header(
        title,
        &eval.problem,
        (eval.adapter.clone(), &eval.placement),
        (eval.eps, eval.precision, eval.method),
        gradients,
        opts,
    );
    let (grad_precision, threshold) = (header.grad_precision, header.threshold);
    let roundoff = (grad_precision == Precision::F32)
        .then(|| cpu::roundoff::gradient_bound(&eval.problem, Precision::F32));
    let advice = advice(eval, grad_precision, eval.problem.examples());
    let trial = Trial {
        grad: &grad,
        roundoff: roundoff.as_deref(),
        given,
    };
    let (comparison, scope) = match &eval.directions {
        None => {
            let comparison =
                compare_trial(layout, trial, &eval.estimates, threshold, opts.top, &advice);
            let evaluated = (0..layout.len())
                .filter(|&i| eval.estimates.is_checked(i))
                .count();
            let sampled = evaluated < layout.len();
            let scope = Scope {
                mode: if sampled {
                    "sample"
                } else {
                    "every coordinate"
                },
                evaluated,
                judged: comparison.checked_coordinates,
                total: layout.len(),
                seed: sampled.then_some(opts.sample_seed),
            };
            (comparison, scope)
        }
        Some(dirs) => {
            let est = &eval.estimates;
            let groups = layout
                .tensors()
                .iter()
                .enumerate()
                .filter(|(t, _)| given.is_none_or(|g| g[*t]))
                .map(|(t, spec)| {
                    let items = dirs
                        .iter()
                        .enumerate()
                        .filter(move |(_, d)| d.tensor == t)
                        .map(|(k, d)| {
                            Judged::of(
                                k,
                                d.project(layout, &grad),
                                est,
                                roundoff
                                    .as_deref()
                                    .map_or(0.0, |r| d.project_abs(layout, r)),
                            )
                        });
                    (spec, items)
                });
            let name = |k: usize| format!("{}·v{k}", layout.tensors()[dirs[k].tensor].name);
            let comparison = compare_groups(groups, false, name, threshold, opts.top, &advice);
            let scope = Scope {
                mode: "directions",
                evaluated: dirs.len(),
                judged: comparison.checked_coordinates,
                total: layout.len(),
                seed: Some(opts.sample_seed),
            };
            (comparison, scope)
        }
    };
    let mut warnings = eval.notes.clone();
    if opts.sample.is_some_and(|k| k >= layout.len()) {
        warnings.push(format!(
            "a sample of {} is not smaller than the network's {} parameters: every coordinate was checked",
            opts.sample.unwrap_or_default(),
            layout.len()
        ));
    }
    Ok(Report {
        header,
        verdict: comparison.verdict,
        reason: comparison.reason,
        difference: comparison.difference,
        resolution: comparison.resolution,
        failed_coordinates: comparison.failed_coordinates,
        unresolved_coordinates: comparison.unresolved_coordinates,
        kink_coordinates: comparison.kink_coordinates,
        scope,
        tensors: comparison.tensors,
        worst: comparison.worst,
        warnings,
        timing: Timing {
            seconds: eval.seconds + start.elapsed().as_secs_f64(),
            gpu_seconds: eval.gpu_seconds,
        },
    })
}
