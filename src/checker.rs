//! Runs a check: picks the device, evaluates the finite differences, builds the report.

use std::time::Instant;

use crate::backend::{Backend, Cpu, Settings};
use crate::check::{
    compare_groups, compare_trial, conventions_for, Advice, Judged, ModelFacts, Trial,
};
use crate::cpu;
use crate::error::{Error, Result};
use crate::estimate::Estimates;
use crate::generate::BugSpec;
use crate::gpu::{AdapterSummary, GpuContext};
use crate::memory;
use crate::model::Model;
use crate::monitor::{Monitor, Silent};
use crate::options::{CheckOptions, DeviceChoice, Method, Precision};
use crate::placement::{place, Placement};
use crate::problem::Problem;
use crate::report::{Header, Report, Scope, Timing};

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
        let backend: Box<dyn Backend> = match found.filter(|_| placement.gpu) {
            Some(ctx) => Box::new(ctx),
            None => Box::new(Cpu),
        };
        Ok(Self {
            backend,
            opened_for: Opening::of(opts),
            placement,
        })
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
            problem,
            (self.backend.adapter().cloned(), &self.placement),
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
        let start = Instant::now();
        let settings = self.settings(opts);
        let backend = &*self.backend;
        let mut notes: Vec<String> = note.into_iter().collect();
        let (estimates, gpu_seconds, directions) = if let Some(k) = opts.directions {
            let dirs = crate::directions::draw(problem.net().layout(), k, opts.sample_seed)?;
            let (estimates, gpu_seconds) = crate::method::directions::evaluate(
                backend,
                problem,
                (&dirs, eps, opts.eps.is_some()),
                settings,
                monitor,
            )?;
            (estimates, gpu_seconds, Some(dirs))
        } else {
            match method {
                Method::Full => {
                    let (estimates, gpu_seconds) =
                        crate::method::whole::evaluate(backend, problem, eps, settings, monitor)?;
                    (estimates, gpu_seconds, None)
                }
                Method::Delta => {
                    let total = problem.net().num_params();
                    let indices: Vec<usize> = match opts.sample {
                        Some(k) => {
                            crate::sample::choose(problem.net().layout(), k, opts.sample_seed)?
                        }
                        None => (0..total).collect(),
                    };
                    let request = crate::method::delta::Request {
                        indices: &indices,
                        eps,
                        threshold: opts.threshold_in(method, self.precision(), Precision::F64),
                    };
                    let outcome = crate::method::delta::evaluate(
                        backend, problem, &request, settings, monitor,
                    )?;
                    notes.extend(outcome.notes);
                    let estimates = if indices.len() < total {
                        outcome.estimates.scatter(&indices, total)
                    } else {
                        outcome.estimates
                    };
                    (estimates, outcome.gpu_seconds, None)
                }
            }
        };
        Ok(Evaluation {
            problem: problem.clone(),
            estimates,
            directions,
            eps,
            precision: self.precision(),
            method,
            adapter: self.backend.adapter().cloned(),
            seconds: start.elapsed().as_secs_f64(),
            placement: self.placement.clone(),
            gpu_seconds,
            notes,
        })
    }
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

/// The finite differences of one problem, ready to judge any gradient against.
pub struct Evaluation {
    /// The problem as the user gave it (an f32 device's own view is rounded from it, and
    /// the rounding's effect joins the bounds).
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
    /// Where and in which precision, and why (`placement::place`).
    pub placement: Placement,
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
    /// Whether float64 arrays hold only values a float32 holds exactly (gradients
    /// computed in float32 and saved as float64): judged as float32 gradients.
    pub float32_values: bool,
    /// Whether the forward pass that made them ran in float32 (X and every parameter
    /// stored as float32): judged as float32 gradients whatever their arrays' dtype.
    pub float32_forward: bool,
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
            float32_values: false,
            float32_forward: false,
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
    let directions = eval.directions.is_some();
    let roundoff = match (eval.method, eval.precision, directions) {
        // Directions are whole passes by definition: the remedy is another check.
        (_, Precision::F32, true) => "f32 whole forward passes cannot resolve it; check coordinates instead of directions (the delta method), or in f64".into(),
        (_, Precision::F64, true) => "raise the threshold, or check coordinates instead of directions (the delta method: exact changes, no cancellation)".into(),
        (Method::Full, Precision::F32, _) => {
            "f32 whole forward passes cannot resolve it; use the delta method or f64".into()
        }
        (Method::Full, Precision::F64, _) => {
            "use the delta method (exact changes, no cancellation)".into()
        }
        (Method::Delta, Precision::F32, _) => "use f64".into(),
        (Method::Delta, Precision::F64, _) => {
            "the gradient is below what float64 resolves here".into()
        }
    };
    let truncation = if directions {
        "the directions' curvature over their steps is too large to bound; raise the threshold"
            .into()
    } else {
        format!("the step {:e} is too large; use a smaller one", eval.eps)
    };
    Advice {
        examples,
        roundoff,
        truncation,
        model: {
            let model = eval.problem.model();
            let scale = model.scale(examples);
            ModelFacts {
                keep_prob: model.dropout.as_ref().map(|d| d.keep_prob),
                squared: model
                    .loss
                    .squared_factor(1)
                    .map(|_| (model.loss, eval.problem.net().output_width())),
                l2: (0..eval.problem.net().layers().len())
                    .map(|l| {
                        use crate::model::TensorKind::{Bias, Weight};
                        let penalty = &model.penalty;
                        (penalty.factors(l, Weight, scale).0, penalty.factors(l, Bias, scale).0)
                    })
                    .collect(),
                mean: model.reduction == crate::model::Reduction::Mean,
                off_units: {
                    let acts = cpu::forward::forward(
                        eval.problem.net(),
                        model,
                        eval.problem.x().view(),
                    );
                    model
                        .hidden
                        .iter()
                        .enumerate()
                        .map(|(l, act)| {
                            if act.kink().is_none() {
                                return Default::default();
                            }
                            crate::check::OffUnits {
                                units: acts.z[l]
                                    .rows()
                                    .into_iter()
                                    .enumerate()
                                    .filter(|(_, z)| z.iter().any(|&v| v <= 0.0))
                                    .map(|(k, _)| k)
                                    .collect(),
                                leak: match act {
                                    crate::model::Activation::LeakyRelu(slope) => Some(*slope),
                                    _ => None,
                                },
                                dropout: model.dropout.is_some(),
                            }
                        })
                        .collect()
                },
            }
        },
        overflow: match eval.precision {
            Precision::F32 => " in f32: evaluate in f64".into(),
            Precision::F64 => " even in f64: values this large (or small) cannot be differenced; rescale the data or the weights".into(),
        },
        gradients: match grad_precision {
            Precision::F32 => "float32 gradients cannot show errors that small; raise the threshold or compute the gradients in float64".into(),
            Precision::F64 => "a correct backprop in float64 can be off by this much here (1 − tanh² of saturated units, p − y of fitted outputs): smaller errors cannot be told from rounding; raise the threshold to decide".into(),
        },
    }
}

/// The precision the gradients are judged at, and why when it is not their arrays':
/// f32 when stored as float32, declared computed in f32, when every value of their
/// float64 arrays is a float32, or when the forward pass ran in float32 (unless
/// declared f64).
fn judged_precision(gradients: &Gradients, opts: &CheckOptions) -> (Precision, Option<String>) {
    let declared = opts.grad_precision;
    match gradients {
        _ if declared == Some(Precision::F32) => (Precision::F32, None),
        _ if gradients.stored_precision() == Precision::F32 => (Precision::F32, None),
        Gradients::Given(g) if g.float32_values && declared != Some(Precision::F64) => (
            Precision::F32,
            Some(
                "every value of the float64 gradient arrays is a float32: they were computed in float32 (declare f64 gradients to judge them as such)"
                    .into(),
            ),
        ),
        Gradients::Given(g) if g.float32_forward && declared != Some(Precision::F64) => (
            Precision::F32,
            Some(
                "X and every parameter are float32, so the forward pass that made the gradients ran in float32 whatever their arrays' dtype (declare f64 gradients to judge them as such)"
                    .into(),
            ),
        ),
        _ => (Precision::F64, None),
    }
}

/// The header of a check of `seen` (the problem as the device sees it) on `adapter` (the
/// CPU when `None`), with `(eps, precision, method)`.
fn build_header(
    title: &str,
    seen: &Problem,
    (adapter, placement): (Option<AdapterSummary>, &Placement),
    (eps, precision, method): (f64, Precision, Method),
    gradients: &Gradients,
    opts: &CheckOptions,
) -> Header {
    let layout = seen.net().layout();
    let (grad_precision, grad_precision_reason) = judged_precision(gradients, opts);
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
        grad_precision_reason,
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
        placement: placement.reason.clone(),
        gpu_declined: placement.gpu_declined,
        layer: None,
    }
}

/// A whole check: opens the device `opts` asks for, evaluates every perturbed cost of
/// `problem` (reporting to `monitor`, which may stop it), and judges `gradients`. What
/// the Python module runs (the command line prints the header between these steps).
pub fn run_check(
    title: &str,
    problem: &Problem,
    gradients: &Gradients,
    opts: &CheckOptions,
    monitor: &dyn Monitor,
) -> Result<Report> {
    let engine = Engine::new(opts)?;
    let eval = engine.evaluate_monitored(problem, opts, monitor)?;
    judge(title, &eval, gradients, opts)
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
    // A correct backprop carries its own round-off in either precision: one computed by a
    // formula other than the tool's rounds otherwise, and must not be called wrong for it.
    let roundoff = Some(cpu::roundoff::gradient_bound(&eval.problem, grad_precision));
    let advice = advice(eval, grad_precision, eval.problem.examples());
    let theta = eval.problem.net().flatten();
    let trial = Trial {
        grad: &grad,
        roundoff: roundoff.as_deref(),
        given,
        theta: Some(&theta),
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
            let judged = |k: usize| {
                let d = &dirs[k];
                (
                    d.project(layout, &grad),
                    roundoff
                        .as_deref()
                        .map_or(0.0, |r| d.project_abs(layout, r)),
                )
            };
            let conventions = conventions_for(est, threshold, |k| {
                given.is_none_or(|g| g[dirs[k].tensor]).then(|| judged(k))
            });
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
                            Judged::of(k, judged(k), est, &conventions)
                                .at(d.project(layout, &theta))
                        });
                    (spec, items)
                });
            let name = |k: usize| format!("{}·v{k}", layout.tensors()[dirs[k].tensor].name);
            let comparison = compare_groups(
                groups,
                false,
                name,
                (threshold, opts.top),
                (&advice, &conventions),
            );
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
    let timing = Timing {
        seconds: eval.seconds + start.elapsed().as_secs_f64(),
        gpu_seconds: eval.gpu_seconds,
    };
    Ok(Report::of(header, comparison, scope, warnings, timing))
}
