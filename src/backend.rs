//! Where perturbed costs are computed: one trait, one implementation per device, so that
//! a new device (or a method on every device) is one implementation and the engine never
//! matches on which one it holds.

use crate::cpu;
use crate::cpu::roundoff::Summation;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::Series;
use crate::directions::Direction;
use crate::error::Result;
use crate::estimate::{DeltaCost, Estimates};
use crate::gpu::{self, AdapterSummary, GpuContext};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// What every backend call returns: its values and the device time, where measured.
#[derive(Clone, Debug)]
pub struct Run<T> {
    pub values: T,
    pub gpu_seconds: Option<f64>,
}

impl<T> Run<T> {
    fn untimed(values: T) -> Self {
        Self {
            values,
            gpu_seconds: None,
        }
    }
}

/// Adds two optional device times (`None` only when neither was measured).
pub fn add_seconds(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    }
}

/// How a backend evaluates: the arithmetic, perturbations per dispatch (else chosen from
/// the device's limits) and the host memory it may use. The step comes with each call.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub precision: Precision,
    pub chunk: Option<usize>,
    pub budget: u64,
}

/// A device that evaluates the data cost of perturbed networks (L2 is exact and added by
/// the engine). Every method works on `problem` as the device sees it (rounded to f32 for
/// an f32 device).
pub trait Backend: Send + Sync {
    /// The adapter, for a GPU.
    fn adapter(&self) -> Option<&AdapterSummary>;

    /// The unit round-off of the costs it returns when computing in `precision`.
    fn unit_roundoff(&self, precision: Precision) -> f64;

    /// Whether its delta method evaluates the classic model from the row gains directly
    /// (a kernel of its own); otherwise every model's rows are series.
    fn evaluates_gains(&self) -> bool {
        false
    }

    /// How its whole passes add up a cost's terms (what their round-off bound needs).
    fn summation(&self, problem: &Problem, precision: Precision) -> Result<Summation>;

    /// `J(θ ± ε e_i)` of every coordinate by whole forward passes; `step` is `(ε, settings)`.
    fn coordinate_costs(
        &self,
        problem: &Problem,
        step: (f64, Settings),
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>>;

    /// The delta method on `problem` from its `rows`, prepared once (a device uploads
    /// what every round shares) for the rounds the engine runs.
    fn delta_session<'a>(
        &'a self,
        problem: &'a Problem,
        rows: Rows<'a>,
        settings: Settings,
    ) -> Result<Box<dyn DeltaSession + 'a>>;

    /// `J(θ ± ε v)` along each direction; `step` is `(ε, settings)`.
    fn direction_costs(
        &self,
        problem: &Problem,
        step: (f64, Settings),
        directions: &[Direction],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<(f64, f64)>>>;
}

/// What every parameter of a row shares in the delta method: the classic model's gains
/// and reaches, or any model's per-unit series.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    Gains(&'a Sensitivity),
    Series(&'a Series),
}

/// The delta method on one problem, prepared once, run for each round: the first steps
/// and the kink re-check, each on its own coordinates and step.
pub trait DeltaSession {
    /// The cost changes of `θ_i ± eps` for each `i` in `indices`.
    fn run(
        &self,
        eps: f64,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>>;
}

/// The CPU's rounds: nothing to prepare.
struct CpuRounds<'a> {
    problem: &'a Problem,
    rows: Rows<'a>,
}

impl DeltaSession for CpuRounds<'_> {
    fn run(
        &self,
        eps: f64,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        let problem = self.problem;
        match self.rows {
            Rows::Gains(sens) => cpu::delta::delta_costs(problem, sens, eps, indices, monitor),
            Rows::Series(series) => {
                cpu::products::delta_costs(problem, series, eps, indices, monitor)
            }
        }
        .map(Run::untimed)
    }
}

/// The GPU's rounds: inputs uploaded once; a series' dense blocks as matrix products, the
/// rest (and the classic model's gains) coordinate by coordinate.
struct GpuRounds<'a> {
    prepared: gpu::delta::Prepared<'a>,
    rows: Rows<'a>,
    settings: Settings,
}

impl DeltaSession for GpuRounds<'_> {
    fn run(
        &self,
        eps: f64,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        let done = match self.rows {
            Rows::Series(series) => gpu::products::delta_costs(
                &self.prepared,
                series,
                eps,
                indices,
                self.settings,
                monitor,
            )?,
            Rows::Gains(_) => {
                monitor.begin(indices.len() as u64);
                self.prepared
                    .evaluate_sliced(eps, indices, self.settings, monitor)?
            }
        };
        Ok(Run {
            values: done.deltas,
            gpu_seconds: done.gpu_seconds,
        })
    }
}

/// The host's cores, in f64.
pub struct Cpu;

impl Backend for Cpu {
    fn adapter(&self) -> Option<&AdapterSummary> {
        None
    }

    fn unit_roundoff(&self, _: Precision) -> f64 {
        Precision::F64.unit_roundoff()
    }

    fn summation(&self, _: &Problem, _: Precision) -> Result<Summation> {
        Ok(Summation::Compensated)
    }

    fn coordinate_costs(
        &self,
        problem: &Problem,
        (eps, _): (f64, Settings),
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>> {
        cpu::finite_diff::central_differences(problem, eps, Precision::F64, monitor)
            .map(Run::untimed)
    }

    fn delta_session<'a>(
        &'a self,
        problem: &'a Problem,
        rows: Rows<'a>,
        _: Settings,
    ) -> Result<Box<dyn DeltaSession + 'a>> {
        Ok(Box::new(CpuRounds { problem, rows }))
    }

    fn direction_costs(
        &self,
        problem: &Problem,
        (eps, _): (f64, Settings),
        directions: &[Direction],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<(f64, f64)>>> {
        cpu::directions::direction_costs(problem, eps, directions, monitor).map(Run::untimed)
    }
}

impl Backend for GpuContext {
    fn adapter(&self) -> Option<&AdapterSummary> {
        Some(self.summary())
    }

    fn unit_roundoff(&self, precision: Precision) -> f64 {
        precision.unit_roundoff()
    }

    fn summation(&self, problem: &Problem, precision: Precision) -> Result<Summation> {
        gpu::full::summation(self, problem, precision)
    }

    fn coordinate_costs(
        &self,
        problem: &Problem,
        (
            eps,
            Settings {
                precision, chunk, ..
            },
        ): (f64, Settings),
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>> {
        let run = gpu::full::evaluate(self, problem, eps, precision, chunk, monitor)?;
        Ok(Run {
            values: run.estimates,
            gpu_seconds: run.gpu_seconds,
        })
    }

    fn delta_session<'a>(
        &'a self,
        problem: &'a Problem,
        rows: Rows<'a>,
        settings: Settings,
    ) -> Result<Box<dyn DeltaSession + 'a>> {
        let precision = settings.precision;
        let prepared = match rows {
            Rows::Gains(sens) => gpu::delta::Prepared::gains(self, (problem, sens), precision)?,
            Rows::Series(series) => {
                gpu::delta::Prepared::series(self, (problem, series), precision)?
            }
        };
        Ok(Box::new(GpuRounds {
            prepared,
            rows,
            settings,
        }))
    }

    fn direction_costs(
        &self,
        problem: &Problem,
        (eps, Settings { precision, .. }): (f64, Settings),
        directions: &[Direction],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<(f64, f64)>>> {
        let (values, gpu_seconds) =
            gpu::directions::direction_costs(self, problem, eps, precision, directions, monitor)?;
        Ok(Run {
            values,
            gpu_seconds,
        })
    }
}
