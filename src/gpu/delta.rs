//! The delta method on the GPU: one thread per parameter, both signs at once, from each
//! row's gain and reach (cpu/sensitivity.rs, the classic model) or each unit's series
//! (cpu/series.rs, any model), computed once on the host in f64.

use super::buffers::{encode, ensure_fits, storage};
use super::dispatch::{layer_table, run_kernel, Blocks, KernelConfig, Launch, Status, Work};
use super::full::default_chunk;
use super::shader::{Kernel, ModelOps, DELTA, SERIES};
use super::GpuContext;
use crate::backend::{add_seconds, Settings};
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::{Series, ORDER};
use crate::error::{Error, Result};
use crate::estimate::DeltaCost;
use crate::memory;
use crate::monitor::{Continuing, Monitor};
use crate::options::Precision;
use crate::problem::Problem;

/// Threads (parameters) per workgroup.
pub const WORKGROUP_SIZE: u32 = 64;
/// Results per parameter: dJ₊, dJ₋, the sums of the terms' sizes and of the running sums'
/// magnitudes, status.
pub const OUTPUTS: usize = 5;

/// The cost changes of the parameters asked for, and how long the GPU took.
#[derive(Clone, Debug)]
pub struct DeltaRun {
    pub deltas: Vec<DeltaCost>,
    pub gpu_seconds: Option<f64>,
}

/// The delta method's inputs for one problem on the device, uploaded once and reused by
/// every round (the first steps, the kink re-check, slices): the layer table, the layer
/// inputs, and the per-row data — the gains, reaches and logits of the classic model, or
/// each unit's series and reaches. Each round adds only its indices and its step.
pub struct Prepared<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) problem: &'a Problem,
    pub(super) precision: Precision,
    kernel: Kernel,
    constants: Vec<(&'static str, u32)>,
    /// Multiply-adds per example and parameter, for the default chunking.
    work: usize,
    /// Loop iterations per example and parameter, for the example blocks.
    iterations: u64,
    /// The layer table and inputs (bindings 1, 2), then the per-row data (from 6 on).
    pub(super) buffers: Vec<wgpu::Buffer>,
}

/// Loop iterations of one cost term's change in delta.wgsl, at most: the series of
/// `softplus_remainder` (22 + 29), or two softplus evaluations beyond (2 × 40).
const COST_TERM_ITERATIONS: u64 = 80;

impl<'a> Prepared<'a> {
    /// The classic model's rows: gains, reaches, and `z_L`, `σ(z_L)`, `σ − Y`.
    pub fn gains(
        ctx: &'a GpuContext,
        (problem, sens): (&'a Problem, &Sensitivity),
        precision: Precision,
    ) -> Result<Self> {
        let gains: Vec<f64> = sens.gain.iter().flat_map(|g| g.iter().copied()).collect();
        // z_L, σ(z_L), σ − Y: one binding (delta.wgsl's `logits`).
        let logits: Vec<f64> = sens
            .z_out
            .iter()
            .chain(&sens.sigma)
            .chain(&sens.residual)
            .copied()
            .collect();
        ensure_fits(
            ctx,
            "the row gains",
            gains.len() as u64 * precision.size() as u64,
        )?;
        let outs = problem.y().nrows();
        Self::upload(
            ctx,
            (problem, precision, &sens.inputs),
            (DELTA, vec![("WG", WORKGROUP_SIZE)], outs * 64),
            1 + outs as u64 * (1 + 2 * COST_TERM_ITERATIONS),
            &[("gain", &gains), ("logits", &logits)],
        )
    }

    /// Any model's rows: each unit's series and reaches (shaders/series.wgsl).
    pub fn series(
        ctx: &'a GpuContext,
        (problem, series): (&'a Problem, &Series),
        precision: Precision,
    ) -> Result<Self> {
        let coeff: Vec<f64> = series
            .coeff
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        ensure_fits(
            ctx,
            "the series",
            coeff.len() as u64 * precision.size() as u64,
        )?;
        let constants = vec![("WG", WORKGROUP_SIZE), ("ORDER", ORDER as u32)];
        Self::upload(
            ctx,
            (problem, precision, &series.sens.inputs),
            (SERIES, constants, 4 * ORDER),
            1 + ORDER as u64,
            &[("series", &coeff)],
        )
    }

    /// Uploads the layer table, the layer inputs (example-major, `m × n_(p−1)`, so that
    /// neighbouring threads read neighbouring words) and `rows`, inside the context's error
    /// scopes.
    fn upload(
        ctx: &'a GpuContext,
        (problem, precision, layer_inputs): (&'a Problem, Precision, &[ndarray::Array2<f64>]),
        (kernel, constants, work): (Kernel, Vec<(&'static str, u32)>, usize),
        iterations: u64,
        rows: &[(&str, &[f64])],
    ) -> Result<Self> {
        ctx.ensure_precision(precision)?;
        let inputs: Vec<f64> = layer_inputs
            .iter()
            .flat_map(|a| a.t().iter().copied().collect::<Vec<_>>())
            .collect();
        ensure_fits(
            ctx,
            "the layer inputs",
            inputs.len() as u64 * precision.size() as u64,
        )?;
        let buffers = ctx.scoped(|| {
            let mut buffers = vec![
                storage(ctx, "layers", bytemuck::cast_slice(&layer_table(problem))),
                storage(ctx, "inputs", &encode(inputs.iter().copied(), precision)),
            ];
            for (label, values) in rows {
                buffers.push(storage(
                    ctx,
                    label,
                    &encode(values.iter().copied(), precision),
                ));
            }
            Ok(buffers)
        })?;
        Ok(Self {
            ctx,
            problem,
            precision,
            kernel,
            constants,
            work,
            iterations,
            buffers,
        })
    }

    /// [`Self::evaluate`] in slices that keep each output within the device's binding
    /// limit and the memory budget; `monitor`'s total is the caller's to announce.
    pub fn evaluate_sliced(
        &self,
        eps: f64,
        indices: &[usize],
        settings: Settings,
        monitor: &dyn Monitor,
    ) -> Result<DeltaRun> {
        let bytes_per_item = OUTPUTS as u64 * settings.precision.size() as u64;
        let slice = memory::slice_items(self.ctx.binding_limit(), settings.budget, bytes_per_item);
        let mut deltas = Vec::with_capacity(indices.len());
        let mut gpu_seconds = None;
        for part in indices.chunks(slice.max(1)) {
            let done = self.evaluate(eps, part, settings.chunk, &Continuing(monitor))?;
            deltas.extend(done.deltas);
            gpu_seconds = add_seconds(gpu_seconds, done.gpu_seconds);
        }
        Ok(DeltaRun {
            deltas,
            gpu_seconds,
        })
    }

    /// Cost changes of `θ_i ± eps` for every `i` in `indices`. `chunk` forces the
    /// parameters per dispatch (rounded up to whole workgroups).
    pub fn evaluate(
        &self,
        eps: f64,
        indices: &[usize],
        chunk: Option<usize>,
        monitor: &dyn Monitor,
    ) -> Result<DeltaRun> {
        let (ctx, problem, precision) = (self.ctx, self.problem, self.precision);
        let Some(&largest) = indices.iter().max() else {
            return Ok(DeltaRun {
                deltas: Vec::new(),
                gpu_seconds: None,
            });
        };
        problem.locate(largest)?;
        let outputs = OUTPUTS * indices.len();
        if u32::try_from(outputs).is_err() {
            return Err(Error::TooLarge(format!(
                "{} coordinates exceed the kernel's 32-bit indices",
                indices.len()
            )));
        }
        ensure_fits(ctx, "the results", outputs as u64 * precision.size() as u64)?;
        let workgroups = indices.len().div_ceil(WORKGROUP_SIZE as usize);
        let work = WORKGROUP_SIZE as usize * problem.examples() * self.work;
        let chunk = chunk
            .map(|c| c.div_ceil(WORKGROUP_SIZE as usize))
            .unwrap_or_else(|| default_chunk(workgroups, work))
            .clamp(1, workgroups);
        monitor.begin(indices.len() as u64);
        let index_words: Vec<u32> = indices.iter().map(|&i| i as u32).collect();
        let template = KernelConfig {
            items: indices.len() as u32,
            ..KernelConfig::for_problem(problem, 0)
        };
        let ops = ModelOps::of(problem.model(), problem.y().nrows());
        let launch = Launch {
            kernel: self.kernel,
            precision,
            constants: &self.constants,
            ops: &ops,
            template,
            output_at: 4,
            status: Status {
                stride: OUTPUTS,
                at: 4,
            },
        };
        // Per invocation: the parameter's place (a loop over the layers), the examples.
        let fixed = problem.net().layers().len() as u64 + 2 * u64::from(super::dispatch::PROBE);
        let blocks = Blocks::within_budget(problem.examples(), 1, self.iterations, fixed);
        let (values, gpu_seconds) = run_kernel(
            ctx,
            &launch,
            || {
                // Bindings 1-5 (per_parameter.wgsl), then the kernel's per-row data.
                let mut buffers = self.buffers[..2].to_vec();
                buffers.push(storage(ctx, "indices", bytemuck::cast_slice(&index_words)));
                buffers.push(storage(ctx, "step", &encode([eps], precision)));
                buffers.extend(self.buffers[2..].iter().cloned());
                buffers
            },
            outputs,
            (
                Work {
                    workgroups,
                    chunk,
                    items_per_workgroup: u64::from(WORKGROUP_SIZE),
                },
                blocks,
            ),
            monitor,
        )?;
        let deltas = values
            .chunks_exact(OUTPUTS)
            .map(|v| DeltaCost {
                plus: v[0],
                minus: v[1],
                sizes: v[2],
                partials: v[3],
                truncation: None,
            })
            .collect();
        Ok(DeltaRun {
            deltas,
            gpu_seconds,
        })
    }
}

/// Cost changes of `θ_i ± eps` for every `i` in `indices`, computed in `precision`, from
/// `problem`'s sensitivity: [`Prepared::gains`] for one round.
pub fn evaluate(
    ctx: &GpuContext,
    (problem, sens): (&Problem, &Sensitivity),
    eps: f64,
    precision: Precision,
    indices: &[usize],
    chunk: Option<usize>,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    Prepared::gains(ctx, (problem, sens), precision)?.evaluate(eps, indices, chunk, monitor)
}

/// The delta method for any model: [`Prepared::series`] for one round.
pub fn evaluate_series(
    ctx: &GpuContext,
    (problem, series): (&Problem, &Series),
    eps: f64,
    precision: Precision,
    indices: &[usize],
    chunk: Option<usize>,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    Prepared::series(ctx, (problem, series), precision)?.evaluate(eps, indices, chunk, monitor)
}
