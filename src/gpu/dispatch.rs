//! What every batched kernel shares: pipeline and bind group creation, the chunked
//! dispatch loop with its per-chunk config and timestamps, and reading results back.

use bytemuck::{Pod, Zeroable};

use super::buffers::{decode, encode, map_read, poisoned, staging, storage};
use super::shader::{Kernel, ModelOps};
use super::GpuContext;
use crate::error::{Error, Result};
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// Most dispatches (and timestamp pairs) one evaluation uses.
pub(crate) const MAX_CHUNKS: usize = 4096;
/// Workgroups per grid dimension (WebGPU's minimum limit).
const GRID_DIM: u32 = 65535;
/// `resolve_query_set` destination offsets must be multiples of this.
const QUERY_STRIDE: u64 = 256;

/// Iterations of the loop that closes every invocation (config.wgsl: `loops_completed`):
/// it completes only if no loop limit expired before it.
pub const PROBE: u32 = 2;

/// Loop iterations one invocation may run per dispatch, by the kernels' own count of their
/// loops. llvmpipe (Mesa's lavapipe and GL drivers) ends every loop of an invocation once
/// their iterations reach 65,535 in all, silently; half of that leaves room for the loops
/// the count leaves out. A block cut short anyway is detected (the probe) and run again
/// in smaller blocks.
pub const LOOP_BUDGET: u64 = 32_768;

/// How the examples are split across dispatches: at most `per_block` per dispatch, a
/// multiple of `align` (the whole-pass kernels' tile of examples, or 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Blocks {
    pub examples: usize,
    pub per_block: usize,
    pub align: usize,
}

impl Blocks {
    /// Blocks of as many examples as `iterations_per_unit` (loop iterations per `align`
    /// examples) allow within [`LOOP_BUDGET`], after `fixed` iterations of their own.
    pub fn within_budget(
        examples: usize,
        align: usize,
        iterations_per_unit: u64,
        fixed: u64,
    ) -> Self {
        #[cfg(test)]
        if let Some(forced) = tests::FORCED_BLOCKS.with(std::cell::Cell::get) {
            return Self {
                examples,
                per_block: forced.0.next_multiple_of(align),
                align: forced.1.next_multiple_of(align),
            };
        }
        let units = (LOOP_BUDGET.saturating_sub(fixed) / iterations_per_unit.max(1)).max(1);
        let per_block = usize::try_from(units)
            .unwrap_or(usize::MAX)
            .saturating_mul(align)
            .min(examples.next_multiple_of(align))
            .max(align);
        Self {
            examples,
            per_block,
            align,
        }
    }

    /// The example ranges, in order.
    pub fn ranges(&self) -> Vec<(u32, u32)> {
        (0..self.examples)
            .step_by(self.per_block)
            .map(|b| (b as u32, (b + self.per_block).min(self.examples) as u32))
            .collect()
    }

    /// The same split with blocks half as long (at least `align`).
    fn halved(self) -> Self {
        Self {
            per_block: (self.per_block / 2)
                .next_multiple_of(self.align)
                .max(self.align),
            ..self
        }
    }
}

/// Where each output item keeps its status word (config.wgsl: `status_word`): items of
/// `stride` scalars, the word at `at`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Status {
    pub stride: usize,
    pub at: usize,
}

/// Mirror of `Config` in shaders/config.wgsl: one dispatch's slice
/// of the work (workgroups `base .. base + count`) and the sizes of the problem.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct KernelConfig {
    pub layers: u32,
    pub examples: u32,
    /// Examples per tile (their activations fit in workgroup memory).
    pub tile: u32,
    pub count: u32,
    pub base: u32,
    /// Workgroups along x (the grid is 2-D past 65535).
    pub grid_x: u32,
    /// Work items of the whole evaluation, for kernels with one item per thread.
    pub items: u32,
    /// The examples this dispatch sums, `e_begin..e_end` (set per dispatch, [`Blocks`]).
    pub e_begin: u32,
    pub e_end: u32,
    /// Iterations of each invocation's closing probe loop ([`PROBE`]).
    pub probe: u32,
    pub _pad1: u32,
}

impl KernelConfig {
    /// The sizes of `problem`, with `tile` examples per tile; `count`, `base` and `grid_x`
    /// are set per dispatch.
    pub fn for_problem(problem: &Problem, tile: u32) -> Self {
        Self {
            layers: problem.net().layers().len() as u32,
            examples: problem.examples() as u32,
            tile,
            ..Default::default()
        }
    }
}

/// Mirror of `LayerInfo` in shaders/config.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LayerInfo {
    pub rows: u32,
    pub cols: u32,
    pub w_offset: u32,
    pub b_offset: u32,
    /// Offset of the layer's `n_l × m` block in per-unit, per-example arrays.
    pub z_offset: u32,
    /// Offset of the layer's `m × n_(l−1)` input block.
    pub in_offset: u32,
    /// Offset of the hidden layer's dropout mask (`n_l × m`) in the X buffer, after X.
    pub mask_offset: u32,
    pub _pad2: u32,
}

/// The layer table the kernels walk.
pub fn layer_table(problem: &Problem) -> Vec<LayerInfo> {
    let m = problem.examples() as u32;
    let (mut offset, mut z_offset, mut in_offset) = (0u32, 0u32, 0u32);
    let mut mask_offset = problem.x().len() as u32;
    problem
        .net()
        .layers()
        .iter()
        .map(|layer| {
            let (rows, cols) = (layer.w.nrows() as u32, layer.w.ncols() as u32);
            let info = LayerInfo {
                rows,
                cols,
                w_offset: offset,
                b_offset: offset + rows * cols,
                z_offset,
                in_offset,
                mask_offset,
                _pad2: 0,
            };
            mask_offset += rows * m;
            offset += rows * cols + rows;
            z_offset += rows * m;
            in_offset += cols * m;
            info
        })
        .collect()
}

/// A compiled kernel bound to its buffers (binding 0 is the config, the rest in order).
struct BoundKernel {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    config: wgpu::Buffer,
}

impl BoundKernel {
    fn new(
        ctx: &GpuContext,
        kernel: Kernel,
        precision: Precision,
        (constants, ops): (&[(&str, u32)], &ModelOps),
        buffers: &[&wgpu::Buffer],
    ) -> Self {
        let pipeline = ctx.pipeline(kernel, precision, constants, ops);
        let config = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("config"),
            size: std::mem::size_of::<KernelConfig>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let entries: Vec<wgpu::BindGroupEntry> = std::iter::once(&config)
            .chain(buffers.iter().copied())
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Self {
            pipeline,
            bind_group,
            config,
        }
    }

    /// Dispatches `work.workgroups` in chunks, each over the example `blocks` in order, one
    /// submit each, and returns the summed GPU time in seconds where timestamp queries
    /// exist. With more than one chunk, each is waited for, so that `monitor` sees progress
    /// and can stop the run between them.
    fn run(
        &self,
        ctx: &GpuContext,
        template: KernelConfig,
        (work, blocks): (Work, Blocks),
        monitor: &dyn Monitor,
    ) -> Result<Option<f64>> {
        let (total, chunk) = (work.workgroups, work.chunk);
        let chunks = total.div_ceil(chunk);
        let ranges = blocks.ranges();
        let dispatches = chunks * ranges.len();
        // Timestamps for at most MAX_CHUNKS dispatches; beyond, the time goes unmeasured
        // (the report then shows none).
        let timing = (ctx.supports_timestamps() && dispatches <= MAX_CHUNKS).then(|| {
            let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps resolved"),
                size: dispatches as u64 * QUERY_STRIDE,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (queries, resolved)
        });
        let mut dispatch = 0u64;
        for c in 0..chunks {
            let base = c * chunk;
            let count = chunk.min(total - base) as u32;
            let grid_x = count.min(GRID_DIM);
            for &(e_begin, e_end) in &ranges {
                let cfg = KernelConfig {
                    count,
                    base: base as u32,
                    grid_x,
                    e_begin,
                    e_end,
                    probe: PROBE,
                    ..template
                };
                ctx.queue
                    .write_buffer(&self.config, 0, bytemuck::bytes_of(&cfg));
                let mut encoder = ctx.device.create_command_encoder(&Default::default());
                {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: None,
                        timestamp_writes: timing.as_ref().map(|(q, _)| {
                            wgpu::ComputePassTimestampWrites {
                                query_set: q,
                                beginning_of_pass_write_index: Some(0),
                                end_of_pass_write_index: Some(1),
                            }
                        }),
                    });
                    pass.set_pipeline(&self.pipeline);
                    pass.set_bind_group(0, &self.bind_group, &[]);
                    pass.dispatch_workgroups(grid_x, count.div_ceil(grid_x), 1);
                }
                if let Some((queries, resolved)) = &timing {
                    encoder.resolve_query_set(queries, 0..2, resolved, dispatch * QUERY_STRIDE);
                }
                // Each block reads what the one before wrote: the queue runs submissions
                // (and the config writes staged before each) in order, so no wait.
                ctx.queue.submit([encoder.finish()]);
                dispatch += 1;
            }
            if chunks > 1 {
                ctx.wait()?;
                monitor.advance(u64::from(count) * work.items_per_workgroup);
                if monitor.cancelled() {
                    return Err(Error::Cancelled);
                }
            }
        }
        let Some((_, resolved)) = &timing else {
            return Ok(None);
        };
        let bytes = read_bytes(ctx, resolved)?;
        let stamps: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        let stride = (QUERY_STRIDE / 8) as usize;
        let ticks: u64 = (0..dispatches)
            .map(|d| stamps[d * stride + 1].saturating_sub(stamps[d * stride]))
            .sum();
        Ok(Some(
            ticks as f64 * f64::from(ctx.queue.get_timestamp_period()) * 1e-9,
        ))
    }
}

/// The inputs every kernel binds first: the layer table, θ, X (then the dropout masks, if
/// any) and Y, in `precision`.
pub(crate) fn problem_buffers(
    ctx: &GpuContext,
    problem: &Problem,
    precision: Precision,
) -> Vec<wgpu::Buffer> {
    let masks = problem.model().dropout.iter().flat_map(|d| &d.masks);
    let x = problem
        .x()
        .iter()
        .chain(masks.flat_map(|mask| mask.iter()))
        .copied();
    vec![
        storage(ctx, "layers", bytemuck::cast_slice(&layer_table(problem))),
        storage(ctx, "theta", &encode(problem.net().flatten(), precision)),
        storage(ctx, "X", &encode(x, precision)),
        storage(ctx, "Y", &encode(problem.y().iter().copied(), precision)),
    ]
}

/// How many workgroups to dispatch, how many per submit, and how many work items (as the
/// caller's monitor counts them) each workgroup does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Work {
    pub workgroups: usize,
    pub chunk: usize,
    pub items_per_workgroup: u64,
}

/// What one kernel run is: the kernel, its precision, constants and model ops, the
/// config template, and where its output binds among its storage buffers.
pub(crate) struct Launch<'a> {
    pub kernel: Kernel,
    pub precision: Precision,
    pub constants: &'a [(&'a str, u32)],
    pub ops: &'a ModelOps,
    pub template: KernelConfig,
    pub output_at: usize,
    pub status: Status,
}

/// Runs `launch` over `work` in chunks and its examples in `blocks`: binds the buffers
/// `inputs` makes with a NaN-poisoned output of `outputs` scalars at `launch.output_at`,
/// and returns that output and the GPU time. Every item's status word must count every
/// block: a block that a driver's loop limit cut short is run again in blocks half as
/// long, and one of `blocks.align` examples cut short is an error, never a partial sum.
/// All of it inside the context's error scopes.
pub(crate) fn run_kernel(
    ctx: &GpuContext,
    launch: &Launch<'_>,
    inputs: impl FnOnce() -> Vec<wgpu::Buffer>,
    outputs: usize,
    (work, mut blocks): (Work, Blocks),
    monitor: &dyn Monitor,
) -> Result<(Vec<f64>, Option<f64>)> {
    let Launch {
        kernel, precision, ..
    } = *launch;
    ctx.scoped(|| {
        let inputs = inputs();
        let out = poisoned(ctx, kernel.name, outputs, precision);
        let mut bound: Vec<&wgpu::Buffer> = inputs.iter().collect();
        bound.insert(launch.output_at, &out);
        ensure_within_limits(ctx, (kernel.name, precision), &bound, launch.constants)?;
        let bound_kernel = BoundKernel::new(
            ctx,
            kernel,
            precision,
            (launch.constants, launch.ops),
            &bound,
        );
        loop {
            let gpu_seconds = bound_kernel.run(ctx, launch.template, (work, blocks), monitor)?;
            let values = read_reals(ctx, &out, precision)?;
            let expected = blocks.ranges().len() as f64;
            let complete = values
                .chunks_exact(launch.status.stride)
                .all(|item| item[launch.status.at] == expected);
            if complete {
                return Ok((values, gpu_seconds));
            }
            if blocks.per_block <= blocks.align {
                return Err(Error::Unsupported {
                    adapter: ctx.summary().name.clone(),
                    what: format!(
                        "the {} kernel over {} examples at a time: its loops stopped short (a driver loop limit); the results would be partial sums",
                        kernel.name, blocks.align
                    ),
                });
            }
            #[cfg(test)]
            tests::RETRIES.with(|r| r.set(r.get() + 1));
            blocks = blocks.halved();
        }
    })
}

/// Refuses, before any pipeline is created, a kernel that needs more than the device's
/// limits allow (storage buffers per stage, binding sizes, workgroup memory, threads per
/// workgroup), naming the limit, the need and the device: wgpu would otherwise fail with a
/// validation error.
fn ensure_within_limits(
    ctx: &GpuContext,
    (kernel, precision): (&str, Precision),
    bound: &[&wgpu::Buffer],
    constants: &[(&str, u32)],
) -> Result<()> {
    let limits = &ctx.limits;
    let adapter = ctx.summary();
    let refuse = |need: String, limit: &str, allowed: u64| {
        Err(Error::Unsupported {
            adapter: adapter.name.clone(),
            what: format!(
                "the {kernel} kernel's {need} ({limit} is {allowed} under the {} limits)",
                adapter.limits
            ),
        })
    };
    let buffers = bound.len() as u64;
    if buffers > u64::from(limits.max_storage_buffers_per_shader_stage) {
        return refuse(
            format!("{buffers} storage buffers"),
            "max_storage_buffers_per_shader_stage",
            u64::from(limits.max_storage_buffers_per_shader_stage),
        );
    }
    if let Some(largest) = bound.iter().map(|b| b.size()).max() {
        if largest > limits.max_storage_buffer_binding_size {
            return refuse(
                format!("binding of {largest} bytes"),
                "max_storage_buffer_binding_size",
                limits.max_storage_buffer_binding_size,
            );
        }
    }
    let constant = |wanted: &str| {
        constants
            .iter()
            .find(|(name, _)| *name == wanted)
            .map(|&(_, v)| v)
    };
    // Workgroup memory: the activations (SCRATCH scalars) and the reduction (WG scalars).
    if let Some(scratch) = constant("SCRATCH") {
        let bytes = u64::from(scratch + constant("WG").unwrap_or(0)) * precision.size() as u64;
        let allowed = u64::from(limits.max_compute_workgroup_storage_size);
        if bytes > allowed {
            return refuse(
                format!("{bytes} bytes of workgroup memory"),
                "max_compute_workgroup_storage_size",
                allowed,
            );
        }
    }
    if let Some(threads) = constant("WG") {
        let allowed = limits
            .max_compute_invocations_per_workgroup
            .min(limits.max_compute_workgroup_size_x);
        if threads > allowed {
            return refuse(
                format!("{threads} threads per workgroup"),
                "max_compute_invocations_per_workgroup",
                u64::from(allowed),
            );
        }
    }
    Ok(())
}

/// Copies `buffer` to the host.
pub(crate) fn read_bytes(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    let staged = staging(ctx, "read-back", buffer.size());
    let mut encoder = ctx.device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staged, 0, buffer.size());
    ctx.queue.submit([encoder.finish()]);
    map_read(ctx, &staged)
}

/// Copies a buffer of `precision` scalars to the host as f64.
fn read_reals(ctx: &GpuContext, buffer: &wgpu::Buffer, precision: Precision) -> Result<Vec<f64>> {
    Ok(decode(&read_bytes(ctx, buffer)?, precision))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::Cell;

    use crate::cpu::sensitivity::Sensitivity;
    use crate::generate::NetworkSpec;
    use crate::gpu::{delta, full, GpuContext};
    use crate::monitor::Silent;
    use crate::options::{LimitsChoice, Precision};

    thread_local! {
        /// `(per_block, align)` forced on every [`super::Blocks`] made on this thread:
        /// blocks too long for a driver's loop limit, to see the limit detected.
        pub(crate) static FORCED_BLOCKS: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
        /// Runs made again in shorter blocks on this thread.
        pub(crate) static RETRIES: Cell<usize> = const { Cell::new(0) };
    }

    fn gpu() -> Option<GpuContext> {
        match GpuContext::new(None, LimitsChoice::Adapter) {
            Ok(ctx) => Some(ctx),
            Err(e) if std::env::var("GRADCHECK_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
                panic!("GRADCHECK_REQUIRE_GPU=1 but no GPU: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED (no GPU adapter: {e})");
                None
            }
        }
    }

    /// `run` with `(per_block, align)` forced, and how often it was run again in shorter
    /// blocks.
    fn forced<T>(blocks: (usize, usize), run: impl FnOnce() -> T) -> (T, usize) {
        FORCED_BLOCKS.with(|f| f.set(Some(blocks)));
        RETRIES.with(|r| r.set(0));
        let out = run();
        FORCED_BLOCKS.with(|f| f.set(None));
        (out, RETRIES.with(Cell::get))
    }

    /// On a driver with a loop limit (llvmpipe), a block of every example at once stops
    /// short: the probe sees it, the blocks are halved until none does, and the results are
    /// those of a run in budgeted blocks (bit for bit where the sums continue across blocks
    /// in one order, as the per-parameter kernels' do). A block that may not be split is an
    /// error. Elsewhere every run completes at once, and the same holds.
    #[test]
    fn blocks_cut_short_by_a_loop_limit_are_detected_and_run_again() {
        let Some(ctx) = gpu() else { return };
        let limited = ctx.summary().name.contains("llvmpipe");
        let precision = if ctx.supports_f64() {
            Precision::F64
        } else {
            Precision::F32
        };
        let m = 100_000;
        let p = NetworkSpec::new(vec![3, 1], m, 5).unwrap().generate();
        let sens = Sensitivity::new(&p);
        let all: Vec<usize> = (0..p.net().num_params()).collect();
        let run = || delta::evaluate(&ctx, (&p, &sens), 1e-5, precision, &all, None, &Silent);
        let budgeted = run().unwrap();
        let (whole, retries) = forced((m, 1), run);
        let bits = |r: &delta::DeltaRun| -> Vec<u64> {
            r.deltas
                .iter()
                .flat_map(|d| [d.plus.to_bits(), d.minus.to_bits(), d.sizes.to_bits()])
                .collect()
        };
        assert_eq!(bits(&budgeted), bits(&whole.unwrap()));
        assert_eq!(retries > 0, limited, "{retries} runs again");
        let (unsplittable, _) = forced((m, m), run);
        if limited {
            match unsplittable {
                Err(crate::Error::Unsupported { what, .. }) => {
                    assert!(what.contains("partial sums"), "{what}")
                }
                other => panic!("expected the loop limit refused, got {other:?}"),
            }
        } else {
            assert_eq!(bits(&unsplittable.unwrap()), bits(&budgeted));
        }
        // The whole-pass kernel likewise, one tile of examples per block at least: a
        // narrow network with millions of examples, thousands of tiles.
        let m = 1_000_000;
        let narrow = NetworkSpec::new(vec![1, 2, 1], m, 6).unwrap().generate();
        let passes = || full::evaluate(&ctx, &narrow, 1e-2, Precision::F32, None, &Silent);
        let budgeted = passes().unwrap().estimates;
        let (whole, retries) = forced((m, 1), passes);
        let whole = whole.unwrap().estimates;
        assert_eq!(retries > 0, limited, "{retries} runs again");
        for (a, b) in budgeted.j_plus.iter().zip(&whole.j_plus) {
            // The same sums, grouped by other blocks: a few f32 roundings apart.
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{a} vs {b}");
        }
    }
}
