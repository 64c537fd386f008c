//! Where perturbed costs are computed: one trait, one implementation per device, so that
//! a new device (or a method on every device) is one implementation and the engine never
//! matches on which one it holds.

use crate::cpu;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::Series;
use crate::directions::Direction;
use crate::error::Result;
use crate::estimate::{DeltaCost, Estimates};
use crate::gpu::{self, AdapterSummary, GpuContext};
use crate::memory;
use crate::monitor::{Continuing, Monitor};
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

/// How one backend call evaluates: the step, the arithmetic, perturbations per dispatch
/// (else chosen from the device's limits) and the host memory it may use.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub eps: f64,
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

    /// `J(θ ± ε e_i)` of every coordinate by whole forward passes.
    fn coordinate_costs(
        &self,
        problem: &Problem,
        settings: Settings,
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>>;

    /// The cost changes of the coordinates `indices` by the delta method (ReLU networks).
    fn delta_costs(
        &self,
        problem: (&Problem, &Sensitivity),
        settings: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>>;

    /// The cost changes of the coordinates `indices` by the delta method for any model,
    /// from each unit's series.
    fn series_costs(
        &self,
        problem: (&Problem, &Series),
        settings: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>>;

    /// `J(θ ± ε v)` along each direction.
    fn direction_costs(
        &self,
        problem: &Problem,
        settings: Settings,
        directions: &[Direction],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<(f64, f64)>>>;
}

/// Runs a per-parameter kernel over `indices` in slices that keep each output buffer
/// within the device's limits and the memory budget.
fn sliced(
    ctx: &GpuContext,
    settings: Settings,
    indices: &[usize],
    monitor: &dyn Monitor,
    run: impl Fn(&[usize], Settings, &dyn Monitor) -> Result<gpu::delta::DeltaRun>,
) -> Result<Run<Vec<DeltaCost>>> {
    let bytes_per_item = gpu::delta::OUTPUTS as u64 * settings.precision.size() as u64;
    let slice = memory::slice_items(ctx.binding_limit(), settings.budget, bytes_per_item);
    monitor.begin(indices.len() as u64);
    let mut deltas = Vec::with_capacity(indices.len());
    let mut gpu_seconds = None;
    for part in indices.chunks(slice.max(1)) {
        let done = run(part, settings, &Continuing(monitor))?;
        deltas.extend(done.deltas);
        gpu_seconds = add_seconds(gpu_seconds, done.gpu_seconds);
    }
    Ok(Run {
        values: deltas,
        gpu_seconds,
    })
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

    fn coordinate_costs(
        &self,
        problem: &Problem,
        Settings { eps, .. }: Settings,
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>> {
        cpu::finite_diff::central_differences(problem, eps, Precision::F64, monitor)
            .map(Run::untimed)
    }

    fn delta_costs(
        &self,
        (problem, sens): (&Problem, &Sensitivity),
        Settings { eps, .. }: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        cpu::delta::delta_costs(problem, sens, eps, indices, monitor).map(Run::untimed)
    }

    fn series_costs(
        &self,
        (problem, series): (&Problem, &Series),
        settings: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        cpu::series::delta_costs(problem, series, settings.eps, indices, monitor).map(Run::untimed)
    }

    fn direction_costs(
        &self,
        problem: &Problem,
        Settings { eps, .. }: Settings,
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

    fn coordinate_costs(
        &self,
        problem: &Problem,
        Settings {
            eps,
            precision,
            chunk,
            ..
        }: Settings,
        monitor: &dyn Monitor,
    ) -> Result<Run<Estimates>> {
        let run = gpu::full::evaluate(self, problem, eps, precision, chunk, monitor)?;
        Ok(Run {
            values: run.estimates,
            gpu_seconds: run.gpu_seconds,
        })
    }

    fn delta_costs(
        &self,
        (problem, sens): (&Problem, &Sensitivity),
        settings: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        sliced(self, settings, indices, monitor, |part, s, monitor| {
            gpu::delta::evaluate(
                self,
                (problem, sens),
                s.eps,
                s.precision,
                part,
                s.chunk,
                monitor,
            )
        })
    }

    fn series_costs(
        &self,
        (problem, series): (&Problem, &Series),
        settings: Settings,
        indices: &[usize],
        monitor: &dyn Monitor,
    ) -> Result<Run<Vec<DeltaCost>>> {
        sliced(self, settings, indices, monitor, |part, s, monitor| {
            let at = (problem, series);
            gpu::delta::evaluate_series(self, at, s.eps, s.precision, part, s.chunk, monitor)
        })
    }

    fn direction_costs(
        &self,
        problem: &Problem,
        Settings { eps, precision, .. }: Settings,
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
