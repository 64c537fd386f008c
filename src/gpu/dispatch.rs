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

    /// Dispatches `work.workgroups` in chunks, one submit each, and returns the summed GPU
    /// time in seconds where timestamp queries exist. With more than one chunk, each is
    /// waited for, so that `monitor` sees progress and can stop the run between them.
    fn run(
        &self,
        ctx: &GpuContext,
        template: KernelConfig,
        work: Work,
        monitor: &dyn Monitor,
    ) -> Result<Option<f64>> {
        let (total, chunk) = (work.workgroups, work.chunk);
        let chunks = total.div_ceil(chunk);
        let timing = (ctx.supports_timestamps() && chunks <= MAX_CHUNKS).then(|| {
            let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps resolved"),
                size: chunks as u64 * QUERY_STRIDE,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (queries, resolved)
        });
        for c in 0..chunks {
            let base = c * chunk;
            let count = chunk.min(total - base) as u32;
            let grid_x = count.min(GRID_DIM);
            let cfg = KernelConfig {
                count,
                base: base as u32,
                grid_x,
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
                encoder.resolve_query_set(queries, 0..2, resolved, c as u64 * QUERY_STRIDE);
            }
            ctx.queue.submit([encoder.finish()]);
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
        let ticks: u64 = (0..chunks)
            .map(|c| stamps[c * stride + 1].saturating_sub(stamps[c * stride]))
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

/// Runs `kernel` over `work` in chunks: binds the buffers `inputs` makes, then a
/// NaN-poisoned output of `outputs` scalars, and returns that output and the GPU time. All of
/// it inside the context's error scopes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_kernel(
    ctx: &GpuContext,
    kernel: Kernel,
    precision: Precision,
    (constants, ops): (&[(&str, u32)], &ModelOps),
    inputs: impl FnOnce() -> Vec<wgpu::Buffer>,
    outputs: usize,
    template: KernelConfig,
    work: Work,
    monitor: &dyn Monitor,
) -> Result<(Vec<f64>, Option<f64>)> {
    ctx.scoped(|| {
        let inputs = inputs();
        let out = poisoned(ctx, kernel.name, outputs, precision);
        let bound: Vec<&wgpu::Buffer> = inputs.iter().chain(std::iter::once(&out)).collect();
        ensure_within_limits(ctx, (kernel.name, precision), &bound, constants)?;
        let kernel = BoundKernel::new(ctx, kernel, precision, (constants, ops), &bound);
        let gpu_seconds = kernel.run(ctx, template, work, monitor)?;
        Ok((read_reals(ctx, &out, precision)?, gpu_seconds))
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
