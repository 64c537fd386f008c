//! The GPU side: wgpu context, shader composition, and the batched methods.

mod buffers;
pub mod context;
pub mod delta;
pub mod directions;
mod dispatch;
pub mod full;
pub mod probe;
pub mod products;
pub mod shader;

pub use dispatch::{layer_table, KernelConfig, LayerInfo};

pub use context::{list_adapters, AdapterSummary, GpuContext};
