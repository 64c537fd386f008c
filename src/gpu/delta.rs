//! The delta method on the GPU: one thread per parameter, both signs at once, from each
//! row's gain and reach (cpu/sensitivity.rs), computed once on the host in f64.

use super::buffers::{encode, ensure_fits, storage};
use super::dispatch::{layer_table, run_kernel, KernelConfig, Work};
use super::full::default_chunk;
use super::shader::ModelOps;
use super::shader::DELTA;
use super::GpuContext;
use crate::cpu::sensitivity::Sensitivity;
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
    let inputs: Vec<f64> = sens
        .inputs
        .iter()
        .flat_map(|a| a.t().iter().copied().collect::<Vec<_>>())
        .collect();
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
    for (what, len) in [
        ("the layer inputs", inputs.len()),
        ("the row gains", gains.len()),
        ("the results", outputs),
    ] {
        ensure_fits(ctx, what, len as u64 * size)?;
    }

    let workgroups = indices.len().div_ceil(WORKGROUP_SIZE as usize);
    let work = WORKGROUP_SIZE as usize * problem.examples() * problem.y().nrows() * 64;
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
        DELTA,
        precision,
        (&[("WG", WORKGROUP_SIZE)], &ModelOps::of(problem.model())),
        || {
            vec![
                storage(ctx, "layers", bytemuck::cast_slice(&layer_table(problem))),
                storage(ctx, "inputs", &encode(inputs.iter().copied(), precision)),
                storage(ctx, "gain", &encode(gains.iter().copied(), precision)),
                storage(ctx, "reach", &encode(reach.iter().copied(), precision)),
                storage(ctx, "logits", &encode(logits.iter().copied(), precision)),
                storage(ctx, "indices", bytemuck::cast_slice(&index_words)),
            ]
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
