//! The GPU side: wgpu context, shader composition, and the batched methods.

mod buffers;
pub mod context;
pub mod delta;
mod dispatch;
pub mod full;
pub mod probe;
pub mod shader;

pub use dispatch::KernelConfig;

pub use context::{list_adapters, AdapterSummary, GpuContext};
