//! The full method on the GPU: all 2N perturbed forward passes, one per workgroup, in
//! chunks that respect the device's limits.

use bytemuck::{Pod, Zeroable};

use super::buffers::{decode, encode, ensure_fits, map_read, poisoned, staging, storage};
use super::shader::{compose, module, FULL};
use super::GpuContext;
use crate::error::{Error, Result};
use crate::estimate::{perturbed_pair, Estimates};
use crate::options::Precision;
use crate::problem::Problem;

/// Threads per workgroup (a power of two: the cost reduction halves it).
pub const WORKGROUP_SIZE: u32 = 64;
/// Work per dispatch the default chunking aims at, in multiply-adds: large enough to hide
/// the ~0.1 ms submit cost on lavapipe, small enough to keep each dispatch short.
const TARGET_CHUNK_WORK: usize = 1 << 27;
/// Most dispatches (and timestamp pairs) one evaluation uses.
const MAX_CHUNKS: usize = 4096;
/// Workgroups per grid dimension (WebGPU's minimum limit).
const GRID_DIM: u32 = 65535;
/// `resolve_query_set` destination offsets must be multiples of this.
const QUERY_STRIDE: u64 = 256;

/// Mirror of `LayerInfo` in shaders/full.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LayerInfo {
    pub rows: u32,
    pub cols: u32,
    pub w_offset: u32,
    pub b_offset: u32,
}

/// Mirror of `FullConfig` in shaders/full.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct FullConfig {
    pub layers: u32,
    pub examples: u32,
    pub tile: u32,
    pub count: u32,
    pub base: u32,
    pub grid_x: u32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// What a GPU evaluation returns besides the estimates.
#[derive(Clone, Debug)]
pub struct GpuRun {
    pub estimates: Estimates,
    /// Sum of the dispatches' GPU time, when the adapter has timestamp queries.
    pub gpu_seconds: Option<f64>,
    /// Number of dispatches.
    pub chunks: usize,
}

/// The layer table the kernel walks.
pub fn layer_table(problem: &Problem) -> Vec<LayerInfo> {
    let mut offset = 0u32;
    problem
        .net()
        .layers()
        .iter()
        .map(|layer| {
            let (rows, cols) = (layer.w.nrows() as u32, layer.w.ncols() as u32);
            let info = LayerInfo { rows, cols, w_offset: offset, b_offset: offset + rows * cols };
            offset += rows * cols + rows;
            info
        })
        .collect()
}

/// Default chunk: about [`TARGET_CHUNK_WORK`] multiply-adds, at most [`MAX_CHUNKS`] chunks.
fn default_chunk(perturbations: usize, params: usize, examples: usize) -> usize {
    let by_work = TARGET_CHUNK_WORK / (params * examples).max(1);
    by_work.max(perturbations.div_ceil(MAX_CHUNKS)).clamp(1, perturbations)
}

/// Evaluates `J(θ ± ε e_i)` for every coordinate on the GPU in `precision`.
/// `chunk` forces the perturbations per dispatch (tests use it to cross chunk edges).
pub fn evaluate(ctx: &GpuContext, problem: &Problem, eps: f64, precision: Precision, chunk: Option<usize>) -> Result<GpuRun> {
    if precision == Precision::F64 && !ctx.supports_f64() {
        return Err(Error::Unsupported { adapter: ctx.summary().name.clone(), what: "f64 shaders (SHADER_F64); use --precision f32".into() });
    }
    let net = problem.net();
    let params = net.num_params();
    let perturbations = 2 * params;
    let m = problem.examples();
    let size = precision.size() as u64;
    if u32::try_from(perturbations).is_err() || u32::try_from(problem.x().len()).is_err() {
        return Err(Error::TooLarge(format!("{params} parameters exceed the kernel's 32-bit indices")));
    }
    ensure_fits(ctx, "the parameter vector", params as u64 * size)?;
    ensure_fits(ctx, "X", problem.x().len() as u64 * size)?;
    ensure_fits(ctx, "the cost of every perturbation", perturbations as u64 * size)?;

    // Workgroup memory: a reduction array of WG scalars plus two activation halves.
    let scratch = (ctx.limits.max_compute_workgroup_storage_size as u64 / size).saturating_sub(u64::from(WORKGROUP_SIZE)) as u32 & !1;
    let widths = net.widths();
    let hidden = widths[1..widths.len() - 1].iter().copied().max().unwrap_or(1) as u32;
    let tile = (scratch / 2 / hidden).min(m as u32);
    if tile == 0 {
        return Err(Error::TooLarge(format!(
            "a hidden layer of {hidden} units needs {} bytes of workgroup memory in {}; '{}' has {}",
            2 * u64::from(hidden) * size + u64::from(WORKGROUP_SIZE) * size,
            precision.as_str(),
            ctx.summary().name,
            ctx.limits.max_compute_workgroup_storage_size
        )));
    }
    let chunk = chunk.unwrap_or_else(|| default_chunk(perturbations, params, m)).min(perturbations);
    let chunks = perturbations.div_ceil(chunk);
    let timed = ctx.supports_timestamps() && chunks <= MAX_CHUNKS;

    let theta = net.flatten();
    let (costs, ticks) = ctx.scoped(|| {
        let wgsl = compose(FULL, precision, &[("WG", WORKGROUP_SIZE), ("SCRATCH", scratch)]);
        let shader = module(&ctx.device, "full", &wgsl);
        let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("full"),
            layout: None,
            module: &shader,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let config = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("full config"),
            size: std::mem::size_of::<FullConfig>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let layers = storage(ctx, "layers", bytemuck::cast_slice(&layer_table(problem)));
        let theta_buf = storage(ctx, "theta", &encode(theta.iter().copied(), precision));
        let x = storage(ctx, "X", &encode(problem.x().iter().copied(), precision));
        let y = storage(ctx, "Y", &encode(problem.y().iter().copied(), precision));
        let step = storage(ctx, "eps", &encode([eps], precision));
        let costs = poisoned(ctx, "costs", perturbations, precision);
        let entries: Vec<wgpu::BindGroupEntry> = [&config, &layers, &theta_buf, &x, &y, &step, &costs]
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("full"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let timing = timed.then(|| {
            let queries = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("full timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("full timestamps resolved"),
                size: chunks as u64 * QUERY_STRIDE,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (queries, resolved)
        });

        for c in 0..chunks {
            let base = c * chunk;
            let count = chunk.min(perturbations - base) as u32;
            let grid_x = count.min(GRID_DIM);
            let cfg = FullConfig {
                layers: net.layers().len() as u32,
                examples: m as u32,
                tile,
                count,
                base: base as u32,
                grid_x,
                _pad0: 0,
                _pad1: 0,
            };
            ctx.queue.write_buffer(&config, 0, bytemuck::bytes_of(&cfg));
            let mut encoder = ctx.device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("full"),
                    timestamp_writes: timing.as_ref().map(|(q, _)| wgpu::ComputePassTimestampWrites {
                        query_set: q,
                        beginning_of_pass_write_index: Some(0),
                        end_of_pass_write_index: Some(1),
                    }),
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(grid_x, count.div_ceil(grid_x), 1);
            }
            if let Some((queries, resolved)) = &timing {
                encoder.resolve_query_set(queries, 0..2, resolved, c as u64 * QUERY_STRIDE);
            }
            ctx.queue.submit([encoder.finish()]);
        }

        let cost_bytes = perturbations as u64 * size;
        let cost_staging = staging(ctx, "costs read-back", cost_bytes);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&costs, 0, &cost_staging, 0, cost_bytes);
        let time_staging = timing.as_ref().map(|(_, resolved)| {
            let staged = staging(ctx, "timestamps read-back", resolved.size());
            encoder.copy_buffer_to_buffer(resolved, 0, &staged, 0, resolved.size());
            staged
        });
        ctx.queue.submit([encoder.finish()]);
        let cost_values = decode(&map_read(ctx, &cost_staging)?, precision);
        let ticks = match &time_staging {
            Some(staged) => {
                let bytes = map_read(ctx, staged)?;
                let stamps: Vec<u64> = bytes.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect();
                let per_chunk = (QUERY_STRIDE / 8) as usize;
                Some((0..chunks).map(|c| stamps[c * per_chunk + 1].saturating_sub(stamps[c * per_chunk])).sum::<u64>())
            }
            None => None,
        };
        Ok((cost_values, ticks))
    })?;

    let gpu_seconds = ticks.map(|t| t as f64 * f64::from(ctx.queue.get_timestamp_period()) * 1e-9);
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
    Ok(GpuRun { estimates, gpu_seconds, chunks })
}
