//! The full method on the GPU: all 2N perturbed forward passes, one per workgroup, in
//! chunks that respect the device's limits.

use super::buffers::{encode, ensure_fits, storage};
use super::dispatch::{problem_buffers, run_kernel, KernelConfig, Work, MAX_CHUNKS};
use super::shader::{Kernel, ModelOps, FULL};
use super::GpuContext;
use crate::error::{Error, Result};
use crate::estimate::{perturbed_pair, Estimates};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// Threads per workgroup (a power of two: the cost reduction halves it).
pub const WORKGROUP_SIZE: u32 = 64;
/// Work per dispatch the default chunking aims at, in multiply-adds: large enough to hide
/// the ~0.1 ms submit cost on lavapipe, small enough to keep each dispatch short.
pub(crate) const TARGET_CHUNK_WORK: usize = 1 << 27;

/// What a GPU evaluation returns besides the estimates.
#[derive(Clone, Debug)]
pub struct GpuRun {
    pub estimates: Estimates,
    /// Sum of the dispatches' GPU time, when the adapter has timestamp queries.
    pub gpu_seconds: Option<f64>,
    /// Number of dispatches.
    pub chunks: usize,
}

/// Default chunk: about [`TARGET_CHUNK_WORK`] multiply-adds of `work_per_item` each, at
/// most [`MAX_CHUNKS`] chunks.
pub(crate) fn default_chunk(items: usize, work_per_item: usize) -> usize {
    let by_work = TARGET_CHUNK_WORK / work_per_item.max(1);
    by_work.max(items.div_ceil(MAX_CHUNKS)).clamp(1, items)
}

/// Workgroup memory the whole-pass kernels size their tiles by whatever the device
/// offers: the smallest limit wgpu knows (its downlevel defaults). Every device then tiles
/// the examples — and so sums them — alike, and f32 results are the same bits on every IEEE
/// device; only a hidden layer too wide for it uses the device's larger memory.
pub const PORTABLE_WORKGROUP_BYTES: u32 = 16_352;

/// Workgroup memory of the whole-pass kernels (forward.wgsl): a reduction array of WG
/// scalars plus two activation halves, each `hidden × tile` for the widest hidden layer
/// (or softmax output, whose logits are kept for the example's log-sum-exp) and a tile of
/// examples; returns the halves' total size (in scalars) and the tile. Sized by
/// the problem within [`PORTABLE_WORKGROUP_BYTES`], not by the device's maximum.
pub(crate) fn pass_sizes(
    ctx: &GpuContext,
    problem: &Problem,
    precision: Precision,
) -> Result<(u32, u32)> {
    let widths = problem.net().widths();
    let kept = match problem.model().loss {
        crate::model::Loss::Softmax => &widths[1..],
        _ => &widths[1..widths.len() - 1],
    };
    let hidden = kept.iter().copied().max().unwrap_or(1) as u32;
    let size = precision.size() as u32;
    let reduction = WORKGROUP_SIZE * size;
    let tile_within = |bytes: u32| {
        (bytes.saturating_sub(reduction) / size / (2 * hidden)).min(problem.examples() as u32)
    };
    let device = ctx.limits.max_compute_workgroup_storage_size;
    let tile = match tile_within(PORTABLE_WORKGROUP_BYTES.min(device)) {
        0 => tile_within(device),
        tile => tile,
    };
    if tile == 0 {
        return Err(Error::TooLarge(format!(
            "a hidden layer of {hidden} units does not fit one example's activations in the {device} bytes of workgroup memory of '{}' ({})",
            ctx.summary().name,
            precision.as_str()
        )));
    }
    Ok((2 * hidden * tile, tile))
}

/// Runs a whole-pass kernel (forward.wgsl: one perturbed pass per workgroup) over
/// `perturbations` workgroups, `chunk` per dispatch: binds the problem and the step, then
/// the buffers `extra` makes, then the costs; returns the costs and the GPU time.
pub(crate) fn run_passes(
    ctx: &GpuContext,
    kernel: Kernel,
    (problem, eps, precision): (&Problem, f64, Precision),
    extra: impl FnOnce() -> Vec<wgpu::Buffer>,
    (perturbations, chunk): (usize, usize),
    monitor: &dyn Monitor,
) -> Result<(Vec<f64>, Option<f64>)> {
    let (scratch, tile) = pass_sizes(ctx, problem, precision)?;
    monitor.begin(perturbations as u64);
    run_kernel(
        ctx,
        kernel,
        precision,
        (
            &[("WG", WORKGROUP_SIZE), ("SCRATCH", scratch)],
            &ModelOps::of(problem.model()),
        ),
        || {
            let mut inputs = problem_buffers(ctx, problem, precision);
            inputs.push(storage(ctx, "eps", &encode([eps], precision)));
            inputs.extend(extra());
            inputs
        },
        perturbations,
        KernelConfig::for_problem(problem, tile),
        Work {
            workgroups: perturbations,
            chunk,
            items_per_workgroup: 1,
        },
        monitor,
    )
}

/// Checks the indices fit the kernels' u32 arithmetic and the buffers the device's limits.
pub(crate) fn ensure_problem_fits(
    ctx: &GpuContext,
    problem: &Problem,
    precision: Precision,
    outputs: usize,
) -> Result<()> {
    let params = problem.net().num_params();
    let size = precision.size() as u64;
    if u32::try_from(outputs).is_err() || u32::try_from(problem.x().len()).is_err() {
        return Err(Error::TooLarge(format!(
            "{params} parameters exceed the kernels' 32-bit indices"
        )));
    }
    ensure_fits(ctx, "the parameter vector", params as u64 * size)?;
    ensure_fits(ctx, "X", problem.x().len() as u64 * size)?;
    ensure_fits(
        ctx,
        "the results of every perturbation",
        outputs as u64 * size,
    )
}

/// Evaluates `J(θ ± ε e_i)` for every coordinate on the GPU in `precision`.
/// `chunk` forces the perturbations per dispatch (tests use it to cross chunk edges).
pub fn evaluate(
    ctx: &GpuContext,
    problem: &Problem,
    eps: f64,
    precision: Precision,
    chunk: Option<usize>,
    monitor: &dyn Monitor,
) -> Result<GpuRun> {
    ctx.ensure_precision(precision)?;
    let net = problem.net();
    let params = net.num_params();
    let perturbations = 2 * params;
    let m = problem.examples();
    ensure_problem_fits(ctx, problem, precision, perturbations)?;

    let chunk = chunk
        .unwrap_or_else(|| default_chunk(perturbations, params * m))
        .min(perturbations);

    let (costs, gpu_seconds) = run_passes(
        ctx,
        FULL,
        (problem, eps, precision),
        Vec::new,
        (perturbations, chunk),
        monitor,
    )?;

    let theta = net.flatten();
    let mut j_plus = Vec::with_capacity(params);
    let mut j_minus = Vec::with_capacity(params);
    let mut steps = Vec::with_capacity(params);
    for (i, &t) in theta.iter().enumerate() {
        j_plus.push(costs[2 * i]);
        j_minus.push(costs[2 * i + 1]);
        let (plus, minus) = perturbed_pair(t, eps, precision);
        steps.push(plus - minus);
    }
    let estimates = Estimates::from_costs(j_plus, j_minus, &steps, precision.unit_roundoff());
    Ok(GpuRun {
        estimates,
        gpu_seconds,
        chunks: perturbations.div_ceil(chunk),
    })
}
