//! The delta method on the GPU: one workgroup per parameter, both signs at once,
//! propagating only the change from a precomputed unperturbed pass.

use super::buffers::{encode, storage};
use super::dispatch::{problem_buffers, run_kernel, workgroup_scratch, KernelConfig};
use super::full::{default_chunk, ensure_problem_fits, tile_size};
use super::shader::DELTA;
use super::GpuContext;
use crate::cpu::forward::{forward, sigmoid};
use crate::error::{Error, Result};
use crate::estimate::DeltaCost;
use crate::options::Precision;
use crate::problem::Problem;

/// Threads per workgroup (a power of two).
pub const WORKGROUP_SIZE: u32 = 64;
/// Results per parameter: dJ₊, dJ₋, magnitude, kink.
const OUTPUTS: usize = 4;

/// The cost changes of the parameters asked for, and how long the GPU took.
#[derive(Clone, Debug)]
pub struct DeltaRun {
    pub deltas: Vec<DeltaCost>,
    pub gpu_seconds: Option<f64>,
}

/// Cost changes of `θ_i ± eps` for every `i` in `indices`, computed in `precision`.
pub fn evaluate(
    ctx: &GpuContext,
    problem: &Problem,
    eps: f64,
    precision: Precision,
    indices: &[usize],
    chunk: Option<usize>,
) -> Result<DeltaRun> {
    if precision == Precision::F64 && !ctx.supports_f64() {
        return Err(Error::Unsupported {
            adapter: ctx.summary().name.clone(),
            what: "f64 shaders (SHADER_F64); use --precision f32".into(),
        });
    }
    if indices.is_empty() {
        return Ok(DeltaRun {
            deltas: Vec::new(),
            gpu_seconds: None,
        });
    }
    let net = problem.net();
    let m = problem.examples();
    ensure_problem_fits(ctx, problem, precision, OUTPUTS * indices.len())?;

    // The unperturbed pass, in f64 on the host; the kernel sees it rounded to `precision`.
    let base = forward(net, problem.x().view());
    let last = net.layers().len() - 1;
    let mut zs = Vec::new();
    let mut acts = Vec::new();
    for (l, z) in base.z.iter().enumerate() {
        zs.extend(z.iter());
        if l == last {
            acts.extend(z.iter().map(|&z| sigmoid(z)));
        } else {
            acts.extend(base.a[l].iter());
        }
    }
    super::buffers::ensure_fits(
        ctx,
        "the unperturbed activations",
        zs.len() as u64 * precision.size() as u64,
    )?;

    let size = precision.size() as u64;
    let reduction = u64::from(WORKGROUP_SIZE) * 4 * size + 16;
    // vec2 entries, an even number of them (two halves).
    let scratch = (workgroup_scratch(ctx, precision, reduction) / 2) & !1;
    let widths = net.widths();
    let tile = tile_size(ctx, scratch, problem, precision)?;
    let dense: usize = widths
        .windows(2)
        .skip(1)
        .map(|w| w[0] * w[1])
        .max()
        .unwrap_or(0);
    let work = m * (widths.iter().sum::<usize>() + dense);
    let chunk = chunk
        .unwrap_or_else(|| default_chunk(indices.len(), work))
        .min(indices.len());
    let index_words: Vec<u32> = indices.iter().map(|&i| i as u32).collect();

    let template = KernelConfig::for_problem(problem, tile);
    let (values, gpu_seconds) = run_kernel(
        ctx,
        DELTA,
        precision,
        &[("WG", WORKGROUP_SIZE), ("DSCRATCH", scratch)],
        || {
            let mut inputs = problem_buffers(ctx, problem, precision);
            inputs.push(storage(ctx, "Z", &encode(zs.iter().copied(), precision)));
            inputs.push(storage(ctx, "A", &encode(acts.iter().copied(), precision)));
            inputs.push(storage(ctx, "indices", bytemuck::cast_slice(&index_words)));
            inputs.push(storage(ctx, "eps", &encode([eps], precision)));
            inputs
        },
        OUTPUTS * indices.len(),
        template,
        (indices.len(), chunk),
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
