//! Runs shaders/math_probe.wgsl so tests can hold the WGSL math to Rust's f64.

use super::buffers::{decode, encode, map_read, poisoned, staging, storage};
use super::shader::{compose, module, ModelOps, MATH_PROBE};
use super::GpuContext;
use crate::error::{Error, Result};
use crate::options::Precision;

/// Values per input of [`math`].
pub const PROBED: usize = 7;

/// `[exp(v), log1p(clamp(v, 0, 1)), softplus(v), log1p(x) − x at x = clamp(v, −0.64, 1.72),
/// expm1(x) − x at x = clamp(v, −0.99, 0.99), tanh(v), sigmoid(v)]` for each input, computed on the GPU.
pub fn math(ctx: &GpuContext, inputs: &[f64], precision: Precision) -> Result<Vec<[f64; PROBED]>> {
    if precision == Precision::F64 && !ctx.supports_f64() {
        return Err(Error::Unsupported {
            adapter: ctx.summary().name.clone(),
            what: "f64 shaders".into(),
        });
    }
    let out_len = PROBED * inputs.len();
    let bytes = ctx.scoped(|| {
        let shader = module(
            &ctx.device,
            "math_probe",
            &compose(
                MATH_PROBE,
                precision,
                &[],
                &ModelOps::of(&crate::model::Model::classic(1), 1),
            ),
        );
        let pipeline = ctx
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("math_probe"),
                layout: None,
                module: &shader,
                entry_point: Some("main"),
                compilation_options: Default::default(),
                cache: None,
            });
        let input = storage(ctx, "probe in", &encode(inputs.iter().copied(), precision));
        let output = poisoned(ctx, "probe out", out_len, precision);
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("math_probe"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: input.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: output.as_entire_binding(),
                },
            ],
        });
        let size = output.size();
        let staged = staging(ctx, "probe read-back", size);
        let mut encoder = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups((inputs.len() as u32).div_ceil(64), 1, 1);
        }
        encoder.copy_buffer_to_buffer(&output, 0, &staged, 0, size);
        ctx.queue.submit([encoder.finish()]);
        map_read(ctx, &staged)
    })?;
    Ok(decode(&bytes, precision)
        .chunks_exact(PROBED)
        .map(|c| std::array::from_fn(|k| c[k]))
        .collect())
}
