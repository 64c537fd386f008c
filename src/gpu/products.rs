//! The delta method on the GPU for blocks of rows dense in requests: each order's sums as
//! one tiled matrix product (shaders/products.wgsl), combined on the host into the two
//! steps' changes exactly as the CPU's products are (`cpu::products::combine`), with the
//! round-off of the device's arithmetic. What the products do not pay for (biases, sparse
//! rows, a sum that left the device's range) goes to the series kernel, coordinate by
//! coordinate.

use std::ops::Range;

use super::buffers::{encode, ensure_fits, storage};
use super::delta::{DeltaRun, Prepared};
use super::dispatch::{run_kernel, Blocks, KernelConfig, Launch, Status, Work, PROBE};
use super::shader::{ModelOps, PRODUCTS};
use crate::backend::{add_seconds, Settings};
use crate::cpu::products::{
    column, combine, is_dense, requests, row_blocks, Arithmetic, HigherSizes,
};
use crate::cpu::series::{Series, ORDER};
use crate::error::{Error, Result};
use crate::estimate::DeltaCost;
use crate::memory;
use crate::monitor::{Continuing, Monitor, StopOnly};

/// Rows and columns of a workgroup's tile.
pub const TILE: u32 = 16;
/// Scalars per weight: the orders' sums, the first order's magnitudes, the status word.
const STRIDE: usize = ORDER + 2;
// shaders/products.wgsl writes its sums out for five orders.
const _: () = assert!(ORDER == 5);

/// Weights per block at most: one block's output and its read-back stay within tens of
/// megabytes whatever the budget.
const BLOCK_WEIGHTS: usize = 1 << 20;

/// The cost changes of `θ_i ± eps` for each index in `indices`, from a series-prepared
/// problem (`Prepared::series` of `series`).
pub fn delta_costs(
    prepared: &Prepared,
    series: &Series,
    eps: f64,
    indices: &[usize],
    settings: Settings,
    monitor: &dyn Monitor,
) -> Result<DeltaRun> {
    let (problem, precision) = (prepared.problem, prepared.precision);
    let wanted = requests(problem, series, indices)?;
    monitor.begin(indices.len() as u64);
    let arithmetic = Arithmetic {
        u: precision.unit_roundoff(),
        tiny_over_u: precision.smallest_normal() / precision.unit_roundoff(),
    };
    let m = problem.examples();
    let mut out = vec![DeltaCost::default(); indices.len()];
    // Positions in the request left to the series kernel.
    let mut single: Vec<u32> = Vec::new();
    let mut gpu_seconds = None;
    for (p, rows) in wanted.iter().enumerate() {
        let cols = series.sens.inputs[p].nrows();
        for range in row_blocks(rows.len(), rows_per_block(prepared, cols, settings.budget)) {
            let requested = &rows[range.clone()];
            if cols == 0 || !is_dense(requested, cols) {
                single.extend(requested.iter().flatten().map(|&(k, _)| k));
                continue;
            }
            if monitor.cancelled() {
                return Err(Error::Cancelled);
            }
            let (sums, seconds) = block_sums(prepared, eps, (p, range.clone()), settings, monitor)?;
            gpu_seconds = add_seconds(gpu_seconds, seconds);
            let higher = HigherSizes::of(series, (p, range), eps);
            let mut done = 0;
            for (r, wanted) in requested.iter().enumerate() {
                for &(k, col) in wanted {
                    let Some(j) = column(col) else {
                        single.push(k);
                        continue;
                    };
                    let at = &sums[(r * cols + j) * STRIDE..][..ORDER + 1];
                    if !at.iter().all(|v| v.is_finite()) {
                        single.push(k);
                        continue;
                    }
                    let terms: [f64; ORDER] = std::array::from_fn(|o| at[o]);
                    let sizes = higher.with_first(r, j, at[ORDER]);
                    out[k as usize] = combine(&terms, &sizes, (m, eps), arithmetic);
                    done += 1;
                }
            }
            monitor.advance(done);
        }
    }
    let rest: Vec<usize> = single.iter().map(|&k| indices[k as usize]).collect();
    let run = prepared.evaluate_sliced(eps, &rest, settings, &Continuing(monitor))?;
    for (&k, d) in single.iter().zip(run.deltas) {
        out[k as usize] = d;
    }
    Ok(DeltaRun {
        deltas: out,
        gpu_seconds: add_seconds(gpu_seconds, run.gpu_seconds),
    })
}

/// Rows per block of a layer with `cols` columns: the block's output within the device's
/// binding limit, a sixteenth of the memory budget (as the device's other outputs) and
/// [`BLOCK_WEIGHTS`], in whole tiles where a tile fits.
fn rows_per_block(prepared: &Prepared, cols: usize, budget: u64) -> usize {
    let per_row = (cols * STRIDE) as u64 * (prepared.precision.size() as u64 + 8);
    let rows = memory::slice_items(prepared.ctx.binding_limit(), budget, per_row)
        .min(BLOCK_WEIGHTS / cols.max(1))
        .max(1);
    if rows >= TILE as usize {
        rows - rows % TILE as usize
    } else {
        rows
    }
}

/// The orders' sums and the first order's magnitudes of every weight of rows `rows` of
/// layer `p`, `STRIDE` scalars per weight (row-major), and the device time.
fn block_sums(
    prepared: &Prepared,
    eps: f64,
    (p, rows): (usize, Range<usize>),
    settings: Settings,
    monitor: &dyn Monitor,
) -> Result<(Vec<f64>, Option<f64>)> {
    let (ctx, problem, precision) = (prepared.ctx, prepared.problem, prepared.precision);
    let cols = problem.net().layers()[p].w.ncols();
    let weights = rows.len() * cols;
    let outputs = weights * STRIDE;
    if u32::try_from(outputs).is_err() {
        return Err(Error::TooLarge(format!(
            "{weights} weights in one block exceed the kernel's 32-bit indices"
        )));
    }
    ensure_fits(
        ctx,
        "the block's products",
        outputs as u64 * precision.size() as u64,
    )?;
    let threads = TILE * TILE;
    let tiles = rows.len().div_ceil(TILE as usize) * cols.div_ceil(TILE as usize);
    let chunk = settings
        .chunk
        .map_or(tiles, |c| c.div_ceil(threads as usize))
        .clamp(1, tiles);
    let constants = [
        ("TILE", TILE),
        ("ORDER", ORDER as u32),
        ("WG", threads),
        ("SCRATCH", ORDER as u32 * threads),
    ];
    let ops = ModelOps::of(problem.model(), problem.y().nrows());
    let launch = Launch {
        kernel: PRODUCTS,
        precision,
        constants: &constants,
        ops: &ops,
        template: KernelConfig {
            items: weights as u32,
            ..KernelConfig::for_problem(problem, 0)
        },
        output_at: 5,
        status: Status {
            stride: STRIDE,
            at: ORDER + 1,
        },
    };
    // Loop iterations per tile of examples: the staging of the coefficients, and each
    // example's orders.
    let per_tile = 1 + ORDER as u64 + u64::from(TILE);
    let fixed = 2 * u64::from(PROBE);
    let blocks = Blocks::within_budget(problem.examples(), TILE as usize, per_tile, fixed);
    let block = [p as u32, rows.start as u32, rows.len() as u32];
    run_kernel(
        ctx,
        &launch,
        || {
            // layers, inputs, series (Prepared::series), then the block and the step.
            let mut buffers = prepared.buffers[..3].to_vec();
            buffers.push(storage(ctx, "block", bytemuck::cast_slice(&block)));
            buffers.push(storage(ctx, "step", &encode([eps], precision)));
            buffers
        },
        outputs,
        (
            Work {
                workgroups: tiles,
                chunk,
                items_per_workgroup: u64::from(threads),
            },
            blocks,
        ),
        &StopOnly(monitor),
    )
}
