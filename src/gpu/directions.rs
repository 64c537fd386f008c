//! Directional checks on the GPU: one whole perturbed forward pass per workgroup, two per
//! direction (shaders/directions.wgsl).

use super::buffers::{encode, ensure_fits, storage};
use super::full::{default_chunk, ensure_problem_fits, run_passes};
use super::shader::DIRECTIONS;
use super::GpuContext;
use crate::directions::Direction;
use crate::error::{Error, Result};
use crate::model::TensorKind;
use crate::monitor::Monitor;
use crate::options::Precision;
use crate::problem::Problem;

/// `(J(θ + ε v), J(θ − ε v))` per direction, and the GPU time when measured.
pub type DirectionCosts = (Vec<(f64, f64)>, Option<f64>);

/// `J(θ + ε v)` and `J(θ − ε v)` for each direction, and the GPU time.
pub fn direction_costs(
    ctx: &GpuContext,
    problem: &Problem,
    eps: f64,
    precision: Precision,
    directions: &[Direction],
    monitor: &dyn Monitor,
) -> Result<DirectionCosts> {
    ctx.ensure_precision(precision)?;
    if directions.is_empty() {
        return Ok((Vec::new(), None));
    }
    let layout = problem.net().layout();
    let perturbations = 2 * directions.len();
    ensure_problem_fits(ctx, problem, precision, perturbations)?;

    let mut entries = Vec::new();
    let mut info: Vec<[u32; 4]> = Vec::with_capacity(directions.len());
    for d in directions {
        let spec = &layout.tensors()[d.tensor];
        let is_bias = u32::from(spec.kind == TensorKind::Bias);
        info.push([(spec.layer - 1) as u32, is_bias, entries.len() as u32, 0]);
        entries.extend_from_slice(&d.values);
    }
    let size = precision.size() as u64;
    ensure_fits(ctx, "the directions", entries.len() as u64 * size)?;
    if u32::try_from(entries.len()).is_err() {
        return Err(Error::TooLarge(
            "the directions exceed 32-bit indices".into(),
        ));
    }

    let work_per_pass = problem.net().num_params() * problem.examples() * 2;
    let chunk = default_chunk(perturbations, work_per_pass);
    let (costs, gpu_seconds) = run_passes(
        ctx,
        (DIRECTIONS, 1),
        (problem, eps, precision),
        || {
            vec![
                storage(ctx, "dirs", &encode(entries.iter().copied(), precision)),
                storage(ctx, "dir_info", bytemuck::cast_slice(&info)),
            ]
        },
        (perturbations, chunk),
        monitor,
    )?;
    let pairs = costs.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    Ok((pairs, gpu_seconds))
}
