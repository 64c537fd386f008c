//! Runs a check: picks the device, evaluates the finite differences, builds the report.

use std::time::Instant;

use crate::check::{compare, compare_groups, Judged};
use crate::cpu;
use crate::cpu::sensitivity::Sensitivity;
use crate::error::{Error, Result};
use crate::estimate::{DeltaCost, Estimates};

/// A coordinate whose step crossed a ReLU kink is evaluated again with a step this many
/// times smaller; the crossing then needs `|Z| < ε·|A|·1e-3`.
pub const KINK_RECHECK_FACTOR: f64 = 1e-3;
use crate::generate::BugSpec;
use crate::gpu::{self, AdapterSummary, GpuContext};
use crate::memory;
use crate::monitor::{Continuing, Monitor, Silent};
use crate::options::{CheckOptions, DeviceChoice, Method, Precision};
use crate::problem::Problem;
use crate::report::{Report, Scope, Timing};

/// Where the work runs, resolved once per process and reused by every check.
pub struct Engine {
    gpu: Option<GpuContext>,
    /// One-line notices for the user (e.g. a fallback to the CPU).
    pub notices: Vec<String>,
}

impl Engine {
    /// Opens the GPU unless `--device cpu`; with `auto`, runs on the CPU with a notice when
    /// there is no adapter, when it lacks the precision asked for, or when it is a software
    /// adapter and the check is f64 (the native path is faster on the same cores).
    pub fn new(opts: &CheckOptions) -> Result<Self> {
        opts.validate()?;
        let mut notices = Vec::new();
        let gpu = match opts.device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => {
                let ctx = GpuContext::new(opts.adapter.as_deref())?;
                ctx.ensure_precision(opts.precision)?;
                Some(ctx)
            }
            DeviceChoice::Auto => match GpuContext::new(opts.adapter.as_deref()) {
                // A software adapter runs on the same cores as the native CPU path, 20-60x
                // slower (benches/RESULTS.md); f64 checks go native, f32 ones need it.
                Ok(ctx) if ctx.summary().software && opts.precision == Precision::F64 => {
                    notices.push(format!(
                        "'{}' is a software adapter; the native CPU path is faster, so the check runs there (--device gpu to use it)",
                        ctx.summary().name
                    ));
                    None
                }
                Ok(ctx) if opts.precision == Precision::F32 || ctx.supports_f64() => Some(ctx),
                Ok(ctx) => {
                    notices.push(format!(
                        "GPU '{}' has no f64 shaders; running on the CPU",
                        ctx.summary().name
                    ));
                    None
                }
                Err(Error::NoAdapter(why)) => {
                    notices.push(format!("no GPU adapter found{why}; running on the CPU"));
                    None
                }
                Err(e) => return Err(e),
            },
        };
        if gpu.is_none() && opts.precision == Precision::F32 {
            return Err(Error::Option(
                "f32 needs a GPU (the CPU path computes in f64)".into(),
            ));
        }
        Ok(Self { gpu, notices })
    }

    /// Cost changes of `indices` by the delta method on this engine's device.
    fn delta_costs(
        &self,
        (problem, sens): (&Problem, &Sensitivity),
        eps: f64,
        indices: &[usize],
        opts: &CheckOptions,
        monitor: &dyn Monitor,
    ) -> Result<(Vec<DeltaCost>, Option<f64>)> {
        match &self.gpu {
            Some(ctx) => {
                // Slices keep each output buffer within the device's limits and the budget.
                let bytes_per_item = gpu::delta::OUTPUTS as u64 * opts.precision.size() as u64;
                let slice = memory::slice_items(ctx.binding_limit(), opts.budget(), bytes_per_item);
                monitor.begin(indices.len() as u64);
                let mut deltas = Vec::with_capacity(indices.len());
                let mut gpu_seconds: Option<f64> = None;
                for part in indices.chunks(slice.max(1)) {
                    let run = gpu::delta::evaluate(
                        ctx,
                        (problem, sens),
                        eps,
                        opts.precision,
                        part,
                        opts.chunk,
                        &Continuing(monitor),
                    )?;
                    deltas.extend(run.deltas);
                    gpu_seconds = match (gpu_seconds, run.gpu_seconds) {
                        (Some(a), Some(b)) => Some(a + b),
                        (a, b) => a.or(b),
                    };
                }
                Ok((deltas, gpu_seconds))
            }
            None => Ok((
                cpu::delta::delta_costs(problem, sens, eps, indices, monitor)?,
                None,
            )),
        }
    }

    /// The delta method over every coordinate; those whose step crossed a ReLU kink are
    /// evaluated again with a step [`KINK_RECHECK_FACTOR`] times smaller, and the ones that
    /// still cross stay flagged (inconclusive).
    fn delta_with_kink_recheck(
        &self,
        problem: &Problem,
        eps: f64,
        opts: &CheckOptions,
        monitor: &dyn Monitor,
    ) -> Result<(Estimates, Option<f64>)> {
        let total = problem.net().num_params();
        let indices: Vec<usize> = match opts.sample {
            Some(k) => crate::sample::choose(&problem.net().layout(), k, opts.sample_seed)?,
            None => (0..total).collect(),
        };
        // What every step of every coordinate shares: computed once, for both rounds.
        let sens = Sensitivity::new(problem);
        let (mut deltas, mut gpu_seconds) =
            self.delta_costs((problem, &sens), eps, &indices, opts, monitor)?;
        let mut steps = vec![eps; indices.len()];
        // Positions (in `indices`) whose step crossed a kink.
        let kinked: Vec<usize> = (0..indices.len()).filter(|&k| deltas[k].kink).collect();
        if !kinked.is_empty() {
            let small = eps * KINK_RECHECK_FACTOR;
            let again_at: Vec<usize> = kinked.iter().map(|&k| indices[k]).collect();
            let (again, seconds) =
                self.delta_costs((problem, &sens), small, &again_at, opts, monitor)?;
            for (&k, d) in kinked.iter().zip(again) {
                deltas[k] = d;
                steps[k] = small;
            }
            gpu_seconds = gpu_seconds.zip(seconds).map(|(a, b)| a + b).or(gpu_seconds);
        }
        let j = sens.cost(problem);
        let u = match self.gpu {
            Some(_) => opts.precision.unit_roundoff(),
            None => Precision::F64.unit_roundoff(),
        };
        let estimates = Estimates::from_deltas(j, &deltas, &steps, u);
        let estimates = if indices.len() < total {
            estimates.scatter(&indices, total)
        } else {
            estimates
        };
        Ok((estimates, gpu_seconds))
    }

    /// The GPU in use, if any.
    pub fn gpu(&self) -> Option<&GpuContext> {
        self.gpu.as_ref()
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
        let checked = opts.sample.or(opts.directions).unwrap_or(usize::MAX);
        memory::ensure_fits(problem, checked, opts.budget())?;
        let eps = opts.eps();
        // An f32 device sees the problem rounded to f32; its reference gradient must too.
        let seen = match opts.precision {
            Precision::F32 => problem.rounded_to_f32(),
            Precision::F64 => problem.clone(),
        };
        let start = Instant::now();
        if let Some(k) = opts.directions {
            return self.evaluate_directions(seen, k, opts, monitor, start);
        }
        let (estimates, gpu_seconds) = match opts.method {
            Method::Full => match &self.gpu {
                Some(ctx) => {
                    let run =
                        gpu::full::evaluate(ctx, &seen, eps, opts.precision, opts.chunk, monitor)?;
                    (run.estimates, run.gpu_seconds)
                }
                None => (
                    cpu::finite_diff::central_differences(&seen, eps, Precision::F64, monitor)?,
                    None,
                ),
            },
            Method::Delta => self.delta_with_kink_recheck(&seen, eps, opts, monitor)?,
        };
        let adapter = self.gpu.as_ref().map(|ctx| ctx.summary().clone());
        Ok(Evaluation {
            problem: seen,
            estimates,
            directions: None,
            eps,
            precision: opts.precision,
            method: opts.method,
            adapter,
            seconds: start.elapsed().as_secs_f64(),
            gpu_seconds,
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
        let eps = opts.eps();
        let dirs = crate::directions::draw(&seen.net().layout(), k, opts.sample_seed)?;
        let (costs, gpu_seconds, u) = match &self.gpu {
            Some(ctx) => {
                let (costs, seconds) = gpu::directions::direction_costs(
                    ctx,
                    &seen,
                    eps,
                    opts.precision,
                    &dirs,
                    monitor,
                )?;
                (costs, seconds, opts.precision.unit_roundoff())
            }
            None => (
                cpu::directions::direction_costs(&seen, eps, &dirs, monitor)?,
                None,
                Precision::F64.unit_roundoff(),
            ),
        };
        let (j_plus, j_minus) = costs.into_iter().unzip();
        let estimates = Estimates::from_costs(j_plus, j_minus, &vec![2.0 * eps; k], u);
        Ok(Evaluation {
            problem: seen,
            estimates,
            directions: Some(dirs),
            eps,
            precision: opts.precision,
            method: Method::Full,
            adapter: self.gpu.as_ref().map(|ctx| ctx.summary().clone()),
            seconds: start.elapsed().as_secs_f64(),
            gpu_seconds,
        })
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
    pub seconds: f64,
    pub gpu_seconds: Option<f64>,
}

/// The gradient put on trial.
#[derive(Clone, Debug)]
pub enum Gradients {
    /// The library's own backprop, optionally with planted bugs.
    Backprop(Option<BugSpec>),
    /// Gradients from elsewhere (a file), flattened in layout order.
    Given { values: Vec<f64>, source: String },
}

impl Gradients {
    /// The flat gradient for `problem`.
    pub fn resolve(&self, problem: &Problem) -> Result<Vec<f64>> {
        match self {
            Gradients::Backprop(bugs) => {
                let mut grad = cpu::backprop::gradients(problem);
                if let Some(bugs) = bugs {
                    bugs.apply(&problem.net().layout(), &mut grad)?;
                }
                Ok(grad)
            }
            Gradients::Given { values, .. } => {
                if values.len() != problem.net().num_params() {
                    return Err(Error::Shape(format!(
                        "{} gradient values for {} parameters",
                        values.len(),
                        problem.net().num_params()
                    )));
                }
                Ok(values.clone())
            }
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
            Gradients::Given { source, .. } => source.clone(),
        }
    }
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
    crate::problem::ensure_finite("the gradients", grad.iter())?;
    let layout = eval.problem.net().layout();
    let (comparison, scope) = match &eval.directions {
        None => {
            let comparison = compare(&layout, &grad, &eval.estimates, opts.threshold(), opts.top);
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
            let groups = layout.tensors().iter().enumerate().map(|(t, spec)| {
                let items = dirs
                    .iter()
                    .enumerate()
                    .filter(move |(_, d)| d.tensor == t)
                    .map(|(k, d)| Judged {
                        index: k,
                        grad: d.project(&layout, &grad),
                        approx: est.gradapprox[k],
                        noise: est.noise[k],
                    });
                (spec, items)
            });
            let name = |k: usize| format!("{}·v{k}", layout.tensors()[dirs[k].tensor].name);
            let comparison = compare_groups(groups, Vec::new(), name, opts.threshold(), opts.top);
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
    let mut warnings = Vec::new();
    if comparison.noise_level > comparison.threshold {
        warnings.push(format!(
            "finite-difference round-off ({:.1e} relative) exceeds the threshold: the check cannot resolve errors that small; use a larger --eps or f64",
            comparison.noise_level
        ));
    }
    Ok(Report {
        title: title.to_string(),
        gradients: gradients.describe(),
        widths: eval.problem.net().widths(),
        examples: eval.problem.examples(),
        params: layout.len(),
        cost: cpu::forward::cost(
            eval.problem.net(),
            eval.problem.x().view(),
            eval.problem.y().view(),
        ),
        eps: eval.eps,
        precision: eval.precision,
        method: eval.method,
        device: if eval.adapter.is_some() { "gpu" } else { "cpu" }.to_string(),
        adapter: eval.adapter.clone(),
        verdict: comparison.verdict,
        difference: comparison.difference,
        threshold: comparison.threshold,
        failed_coordinates: comparison.failed_coordinates,
        scope,
        inconclusive: comparison.inconclusive,
        noise_level: comparison.noise_level,
        tensors: comparison.tensors,
        worst: comparison.worst,
        warnings,
        timing: Timing {
            seconds: eval.seconds + start.elapsed().as_secs_f64(),
            gpu_seconds: eval.gpu_seconds,
        },
    })
}
