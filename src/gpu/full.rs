//! The full method on the GPU: all 2N perturbed forward passes, one per workgroup, in
//! chunks that respect the device's limits.

use super::buffers::{encode, ensure_fits, storage};
use super::dispatch::{
    problem_buffers, run_kernel, Blocks, KernelConfig, Launch, Status, Work, MAX_CHUNKS, PROBE,
};
use super::shader::{Kernel, ModelOps, FULL};
use super::GpuContext;
use crate::cpu::roundoff::Summation;
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

/// How forward.wgsl sums a pass's cost: each thread its share of every tile's loss terms
/// (4 × 4 blocks of outputs and examples, or a softmax's one per example), then the
/// workgroup's tree, then one addition per further block of examples.
pub(crate) fn summation(
    ctx: &GpuContext,
    problem: &Problem,
    precision: Precision,
) -> Result<Summation> {
    let (_, tile) = pass_sizes(ctx, problem, precision)?;
    let (tile, m) = (tile as usize, problem.examples());
    let outputs = *problem.net().widths().last().expect("layers");
    let wg = WORKGROUP_SIZE as usize;
    let per_tile = match problem.model().loss {
        crate::model::Loss::Softmax => tile.div_ceil(wg),
        _ => 16 * (outputs.div_ceil(4) * tile.div_ceil(4)).div_ceil(wg),
    };
    let tiles = m.div_ceil(tile);
    Ok(Summation::Recursive {
        depth: tiles * per_tile + wg.ilog2() as usize + tiles,
    })
}

/// Loop iterations one thread of a whole-pass kernel runs per tile of `tile` examples, at
/// most (forward.wgsl): per layer, its share of the 4 × 4 blocks, each a loop over the
/// inputs (and, for `correction_loops`, over them again), over its 4 rows and 4 examples
/// with each output's activation or loss; a softmax's per-example loops.
pub(crate) fn iterations_per_tile(problem: &Problem, tile: usize, correction_loops: u64) -> u64 {
    let widths = problem.net().widths();
    let model = problem.model();
    let layers = widths.len() - 1;
    let ex_blocks = tile.div_ceil(4) as u64;
    let mut total = 1u64;
    for l in 0..layers {
        let (cols, rows) = (widths[l] as u64, widths[l + 1] as u64);
        let per_thread = (rows.div_ceil(4) * ex_blocks).div_ceil(u64::from(WORKGROUP_SIZE));
        let per_output = 1 + if l + 1 < layers {
            activation_loops(model.hidden[l])
        } else {
            loss_loops(model.loss)
        };
        total += 1 + per_thread * (1 + cols * (1 + correction_loops) + 4 + 16 * per_output);
    }
    if model.loss == crate::model::Loss::Softmax {
        let outputs = *widths.last().expect("layers") as u64;
        let per_thread = (tile as u64).div_ceil(u64::from(WORKGROUP_SIZE));
        total += 1 + per_thread * (1 + outputs * (2 + EXP_LOOPS) + LOG_LOOPS);
    }
    total
}

/// Loop iterations of math.wgsl's `exp_real` (its series, then e^n by 64s up to 709), of
/// `log1p_unit` and of `expm1_minus_x`, at most; losses.wgsl's `log_real` adds its own
/// reduction by e^64.
const EXP_LOOPS: u64 = 20 + 12;
const LOG1P_LOOPS: u64 = 18;
const EXPM1_LOOPS: u64 = 22;
const LOG_LOOPS: u64 = 12 + LOG1P_LOOPS;

/// Loop iterations of one activation in activations.wgsl.
fn activation_loops(act: crate::model::Activation) -> u64 {
    use crate::model::Activation;
    match act {
        Activation::Relu | Activation::LeakyRelu(_) | Activation::Identity => 0,
        Activation::Tanh => EXPM1_LOOPS.max(EXP_LOOPS),
        Activation::Sigmoid => EXP_LOOPS,
    }
}

/// Loop iterations of one output unit's loss term in losses.wgsl (softmax's are counted
/// per example).
fn loss_loops(loss: crate::model::Loss) -> u64 {
    use crate::model::Loss;
    match loss {
        Loss::Bce => EXP_LOOPS + LOG1P_LOOPS,
        Loss::Softmax | Loss::Mse | Loss::MseMean | Loss::Sse => 0,
    }
}

/// Runs a whole-pass kernel (forward.wgsl: one perturbed pass per workgroup) over
/// `perturbations` workgroups, `chunk` per dispatch and the examples in blocks that no
/// driver loop limit cuts short: binds the problem, the step, the costs, then the buffers
/// `extra` makes; returns each perturbation's cost and the GPU time. `correction_loops`
/// says how often the kernel's correction loops over a layer's inputs.
pub(crate) fn run_passes(
    ctx: &GpuContext,
    (kernel, correction_loops): (Kernel, u64),
    (problem, eps, precision): (&Problem, f64, Precision),
    extra: impl FnOnce() -> Vec<wgpu::Buffer>,
    (perturbations, chunk): (usize, usize),
    monitor: &dyn Monitor,
) -> Result<(Vec<f64>, Option<f64>)> {
    let (scratch, tile) = pass_sizes(ctx, problem, precision)?;
    monitor.begin(perturbations as u64);
    let ops = ModelOps::of(problem.model(), problem.y().nrows());
    let launch = Launch {
        kernel,
        precision,
        constants: &[("WG", WORKGROUP_SIZE), ("SCRATCH", scratch)],
        ops: &ops,
        template: KernelConfig::for_problem(problem, tile),
        output_at: 5,
        status: Status { stride: 2, at: 1 },
    };
    let tile = tile as usize;
    // Besides the tiles: the reduction over the workgroup and the probe.
    let fixed = u64::from(WORKGROUP_SIZE).ilog2() as u64 + 2 * u64::from(PROBE) + 2;
    let per_tile = iterations_per_tile(problem, tile, correction_loops);
    let blocks = Blocks::within_budget(problem.examples(), tile, per_tile, fixed);
    let (costs, gpu_seconds) = run_kernel(
        ctx,
        &launch,
        || {
            let mut inputs = problem_buffers(ctx, problem, precision);
            inputs.push(storage(ctx, "eps", &encode([eps], precision)));
            inputs.extend(extra());
            inputs
        },
        2 * perturbations,
        (
            Work {
                workgroups: perturbations,
                chunk,
                items_per_workgroup: 1,
            },
            blocks,
        ),
        monitor,
    )?;
    Ok((costs.into_iter().step_by(2).collect(), gpu_seconds))
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
    if u32::try_from(2 * outputs).is_err() || u32::try_from(problem.x().len()).is_err() {
        return Err(Error::TooLarge(format!(
            "{params} parameters exceed the kernels' 32-bit indices"
        )));
    }
    ensure_fits(ctx, "the parameter vector", params as u64 * size)?;
    ensure_fits(ctx, "X", problem.x().len() as u64 * size)?;
    ensure_fits(
        ctx,
        "the results of every perturbation",
        2 * outputs as u64 * size,
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
        (FULL, 0),
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
    let summation = summation(ctx, problem, precision)?;
    let error = crate::cpu::roundoff::coordinate_cost_roundoff(problem, precision, summation);
    let estimates = Estimates::from_costs(j_plus, j_minus, &steps, &error);
    Ok(GpuRun {
        estimates,
        gpu_seconds,
        chunks: perturbations.div_ceil(chunk),
    })
}
