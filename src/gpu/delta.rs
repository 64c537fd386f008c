//! The delta method on the GPU: one thread per parameter, both signs at once, from each
//! row's gain and reach (cpu/sensitivity.rs, the classic model) or each unit's series
//! (cpu/series.rs, any model), computed once on the host in f64.

use super::buffers::{encode, ensure_fits, storage};
use super::dispatch::{layer_table, run_kernel, KernelConfig, Work};
use super::full::default_chunk;
use super::shader::{Kernel, ModelOps, DELTA, SERIES};
use super::GpuContext;
use crate::cpu::sensitivity::Sensitivity;
use crate::cpu::series::{Series, ORDER, REACH_MARGIN};
use crate::error::{Error, Result};
use crate::estimate::DeltaCost;
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// Threads (parameters) per workgroup.
pub const WORKGROUP_SIZE: u32 = 64;
/// Results per parameter: dJ₊, dJ₋, magnitude, kink.
pub const OUTPUTS: usize = 4;

/// The cost changes of the parameters asked for, and how long the GPU took.
#[derive(Clone, Debug)]
pub struct DeltaRun {
    pub deltas: Vec<DeltaCost>,
    pub gpu_seconds: Option<f64>,
}

/// Cost changes of `θ_i ± eps` for every `i` in `indices`, computed in `precision`, from
/// `problem`'s sensitivity (computed once by the caller, whatever the steps and slices).
/// `chunk` forces the parameters per dispatch (rounded up to whole workgroups).
pub fn evaluate(
    ctx: &GpuContext,
    (problem, sens): (&Problem, &Sensitivity),
    eps: f64,
    precision: Precision,
    indices: &[usize],
    chunk: Option<usize>,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    let gains: Vec<f64> = sens.gain.iter().flat_map(|g| g.iter().copied()).collect();
    let reach: Vec<f64> = sens.reach.iter().flat_map(|r| r.iter().copied()).collect();
    // z_L, σ(z_L), σ − Y, then the step: one binding (delta.wgsl's `logits`).
    let logits: Vec<f64> = sens
        .z_out
        .iter()
        .chain(&sens.sigma)
        .chain(&sens.residual)
        .copied()
        .chain([eps])
        .collect();
    ensure_fits(
        ctx,
        "the row gains",
        gains.len() as u64 * precision.size() as u64,
    )?;
    let outs = problem.y().nrows();
    per_parameter(
        ctx,
        (DELTA, &[("WG", WORKGROUP_SIZE)]),
        (problem, precision, &sens.inputs),
        (indices, chunk, outs * 64),
        || {
            vec![
                storage(ctx, "gain", &encode(gains.iter().copied(), precision)),
                storage(ctx, "reach", &encode(reach.iter().copied(), precision)),
                storage(ctx, "logits", &encode(logits.iter().copied(), precision)),
            ]
        },
        monitor,
    )
}

/// The delta method for any model on the GPU (shaders/series.wgsl): cost changes of
/// `θ_i ± eps` from each unit's series (`cpu::series`, computed once by the caller).
pub fn evaluate_series(
    ctx: &GpuContext,
    (problem, series): (&Problem, &Series),
    eps: f64,
    precision: Precision,
    indices: &[usize],
    chunk: Option<usize>,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    let coeff: Vec<f64> = series
        .coeff
        .iter()
        .flat_map(|c| c.iter().copied())
        .collect();
    let reach: Vec<f64> = series
        .reach
        .iter()
        .flat_map(|r| r.iter().copied())
        .chain([eps])
        .collect();
    ensure_fits(
        ctx,
        "the series",
        coeff.len() as u64 * precision.size() as u64,
    )?;
    per_parameter(
        ctx,
        (
            SERIES,
            &[
                ("WG", WORKGROUP_SIZE),
                ("ORDER", ORDER as u32),
                ("MARGIN", REACH_MARGIN as u32),
            ],
        ),
        (problem, precision, &series.inputs),
        (indices, chunk, 4 * ORDER),
        || {
            vec![
                storage(ctx, "series", &encode(coeff.iter().copied(), precision)),
                storage(ctx, "reach", &encode(reach.iter().copied(), precision)),
            ]
        },
        monitor,
    )
}

/// Runs a one-thread-per-parameter kernel over `indices`: binds the layer table and the
/// layer inputs, then the buffers `middle` makes, then the indices and the output, and
/// reads back one [`DeltaCost`] per index. `work` is the multiply-adds per example and
/// parameter, for the default chunking.
fn per_parameter(
    ctx: &GpuContext,
    (kernel, constants): (Kernel, &[(&str, u32)]),
    (problem, precision, layer_inputs): (&Problem, Precision, &[ndarray::Array2<f64>]),
    (indices, chunk, work): (&[usize], Option<usize>, usize),
    middle: impl FnOnce() -> Vec<wgpu::Buffer>,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    ctx.ensure_precision(precision)?;
    let Some(&largest) = indices.iter().max() else {
        return Ok(DeltaRun {
            deltas: Vec::new(),
            gpu_seconds: None,
        });
    };
    problem.locate(largest)?;
    let size = precision.size() as u64;
    let outputs = OUTPUTS * indices.len();
    if u32::try_from(outputs).is_err() {
        return Err(Error::TooLarge(format!(
            "{} coordinates exceed the kernel's 32-bit indices",
            indices.len()
        )));
    }
    // Example-major (m × n_(p−1)), so that neighbouring threads read neighbouring words.
    let inputs: Vec<f64> = layer_inputs
        .iter()
        .flat_map(|a| a.t().iter().copied().collect::<Vec<_>>())
        .collect();
    ensure_fits(ctx, "the layer inputs", inputs.len() as u64 * size)?;
    ensure_fits(ctx, "the results", outputs as u64 * size)?;

    let workgroups = indices.len().div_ceil(WORKGROUP_SIZE as usize);
    let work = WORKGROUP_SIZE as usize * problem.examples() * work;
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
    let (values, gpu_seconds) = run_kernel(
        ctx,
        kernel,
        precision,
        (constants, &ModelOps::of(problem.model())),
        || {
            let mut buffers = vec![
                storage(ctx, "layers", bytemuck::cast_slice(&layer_table(problem))),
                storage(ctx, "inputs", &encode(inputs.iter().copied(), precision)),
            ];
            buffers.extend(middle());
            buffers.push(storage(ctx, "indices", bytemuck::cast_slice(&index_words)));
            buffers
        },
        outputs,
        template,
        Work {
            workgroups,
            chunk,
            items_per_workgroup: u64::from(WORKGROUP_SIZE),
        },
        monitor,
    )?;
    let deltas = values
        .chunks_exact(OUTPUTS)
        .map(|v| DeltaCost {
            plus: v[0],
            minus: v[1],
            magnitude: v[2],
            kink: v[3] != 0.0,
        })
        .collect();
    Ok(DeltaRun {
        deltas,
        gpu_seconds,
    })
}
