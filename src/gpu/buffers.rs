//! Buffer helpers: upload in either precision, NaN-poisoned outputs, and read-back.

use super::GpuContext;
use crate::error::{Error, Result};
use crate::options::Precision;

/// `values` encoded as `precision` scalars.
pub(crate) fn encode(values: impl IntoIterator<Item = f64>, precision: Precision) -> Vec<u8> {
    match precision {
        Precision::F32 => values
            .into_iter()
            .flat_map(|v| (v as f32).to_le_bytes())
            .collect(),
        Precision::F64 => values.into_iter().flat_map(f64::to_le_bytes).collect(),
    }
}

/// The inverse of [`encode`].
pub(crate) fn decode(bytes: &[u8], precision: Precision) -> Vec<f64> {
    match precision {
        Precision::F32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes(c.try_into().unwrap())))
            .collect(),
        Precision::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
    }
}

/// Refuses a binding larger than the device allows, naming it, before anything is allocated.
pub(crate) fn ensure_fits(ctx: &GpuContext, what: &str, bytes: u64) -> Result<()> {
    let limit = ctx
        .limits
        .max_storage_buffer_binding_size
        .min(ctx.limits.max_buffer_size);
    if bytes > limit {
        return Err(Error::TooLarge(format!(
            "{what} needs {bytes} bytes but '{}' binds at most {limit}",
            ctx.summary().name
        )));
    }
    Ok(())
}

/// A storage buffer holding `bytes` (`extra` usages besides STORAGE and COPY_DST). Filled
/// by a queue write rather than mapped at creation: on a lost device wgpu panics reading a
/// mapping back, while a queue write fails into the error scopes.
fn filled(ctx: &GpuContext, label: &str, bytes: &[u8], extra: wgpu::BufferUsages) -> wgpu::Buffer {
    let size = (bytes.len() as u64)
        .next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
        .max(4);
    let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
        mapped_at_creation: false,
    });
    if !bytes.is_empty() {
        ctx.queue.write_buffer(&buffer, 0, bytes);
    }
    buffer
}

/// A read-only storage buffer holding `bytes`.
pub(crate) fn storage(ctx: &GpuContext, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    filled(ctx, label, bytes, wgpu::BufferUsages::empty())
}

/// An output buffer of `len` scalars filled with NaN, so an element no kernel wrote
/// cannot pass a check.
pub(crate) fn poisoned(
    ctx: &GpuContext,
    label: &str,
    len: usize,
    precision: Precision,
) -> wgpu::Buffer {
    filled(
        ctx,
        label,
        &encode(std::iter::repeat_n(f64::NAN, len), precision),
        wgpu::BufferUsages::COPY_SRC,
    )
}

/// A buffer the host can map after copying `size` bytes into it.
pub(crate) fn staging(ctx: &GpuContext, label: &str, size: u64) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    })
}

/// Maps `buffer` (already copied into and submitted) and returns its bytes.
pub(crate) fn map_read(ctx: &GpuContext, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        let _ = sender.send(r);
    });
    ctx.wait()?;
    receiver
        .recv()
        .map_err(|_| Error::Gpu("the device dropped a read-back".into()))?
        .map_err(|e| Error::Gpu(format!("read-back failed: {e}")))?;
    let bytes = buffer
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("read-back failed: {e}")))?
        .to_vec();
    buffer.unmap();
    Ok(bytes)
}
