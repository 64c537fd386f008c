//! Shader sources: each kernel in `shaders/` is compiled with a prelude that fixes the
//! precision (`alias Real`) and its compile-time sizes, followed by the shared math.

use crate::model::{Activation, Loss, Model, Reduction};
use crate::options::Precision;

/// The shared scalar functions (exp, log1p, softplus) every kernel may call.
pub const MATH: &str = include_str!("../../shaders/math.wgsl");

/// The per-dispatch `Config` struct the batched kernels share.
pub const CONFIG: &str = include_str!("../../shaders/config.wgsl");

/// The whole-pass forward (one workgroup per perturbed network) the full and directions
/// kernels share; each defines its own `correction`.
pub const FORWARD: &str = include_str!("../../shaders/forward.wgsl");

/// What the one-thread-per-parameter kernels share (bindings 0–2, a parameter's place).
pub const PER_PARAMETER: &str = include_str!("../../shaders/per_parameter.wgsl");

/// The hidden activations, one function per op.
pub const ACTIVATIONS: &str = include_str!("../../shaders/activations.wgsl");

/// The output losses and the log they need.
pub const LOSSES: &str = include_str!("../../shaders/losses.wgsl");

/// A kernel with an entry point `main`, and the shared files it needs besides the math and
/// the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub shared: &'static [&'static str],
    /// Whether it runs the model's own forward pass (activations, dropout, loss), which
    /// is then composed in from [`ModelOps`].
    pub model: bool,
}

/// What a model adds to a whole-pass kernel: `LOSS`, `MEAN`, `DROPOUT`, `KEEP_SCALE` and
/// `fn activate(l, z)`, one case per hidden layer calling that layer's op. Part of the
/// pipeline cache's key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelOps(String);

impl ModelOps {
    /// The ops of `model` over `outputs` output units (a squared error's mean over them is
    /// a factor in the kernel).
    pub fn of(model: &Model, outputs: usize) -> Self {
        let loss = match model.loss {
            Loss::Bce => 0,
            Loss::Softmax => 1,
            Loss::Mse | Loss::MseMean | Loss::Sse => 2,
        };
        let squared = model.loss.squared_factor(outputs).unwrap_or(0.5);
        let keep_scale = model.dropout.as_ref().map_or(1.0, |d| 1.0 / d.keep_prob);
        let mut text = format!(
            "const LOSS: u32 = {loss}u;\nconst MEAN: bool = {};\nconst DROPOUT: bool = {};\nconst KEEP_SCALE: Real = {keep_scale:e};\nconst SQUARED_FACTOR: Real = {squared:e};\n",
            model.reduction == Reduction::Mean,
            model.dropout.is_some(),
        );
        text.push_str("fn activate(l: u32, z: Real) -> Real {\n    switch l {\n");
        for (l, act) in model.hidden.iter().enumerate() {
            let call = match act {
                Activation::Relu => "act_relu(z)".to_string(),
                Activation::LeakyRelu(a) => format!("act_leaky_relu(z, Real({a:e}))"),
                Activation::Tanh => "act_tanh(z)".to_string(),
                Activation::Sigmoid => "act_sigmoid(z)".to_string(),
                Activation::Identity => "z".to_string(),
            };
            text.push_str(&format!("        case {l}u: {{ return {call}; }}\n"));
        }
        text.push_str("        default: { return z; }\n    }\n}\n");
        Self(text)
    }

    /// The WGSL text.
    pub fn source(&self) -> &str {
        &self.0
    }
}

/// The full method's kernel.
pub const FULL: Kernel = Kernel {
    name: "full",
    source: include_str!("../../shaders/full.wgsl"),
    shared: &[FORWARD],
    model: true,
};
/// The directional checks' kernel.
pub const DIRECTIONS: Kernel = Kernel {
    name: "directions",
    source: include_str!("../../shaders/directions.wgsl"),
    shared: &[FORWARD],
    model: true,
};
/// The delta method's kernel.
pub const DELTA: Kernel = Kernel {
    name: "delta",
    source: include_str!("../../shaders/delta.wgsl"),
    shared: &[PER_PARAMETER],
    model: false,
};
/// The delta method's kernel for any model (per-unit series).
pub const SERIES: Kernel = Kernel {
    name: "series",
    source: include_str!("../../shaders/series.wgsl"),
    shared: &[PER_PARAMETER],
    model: false,
};
/// The delta method's per-parameter sums of dense blocks as tiled matrix products.
pub const PRODUCTS: Kernel = Kernel {
    name: "products",
    source: include_str!("../../shaders/products.wgsl"),
    shared: &[],
    model: false,
};
/// The math test kernel.
pub const MATH_PROBE: Kernel = Kernel {
    name: "math_probe",
    source: include_str!("../../shaders/math_probe.wgsl"),
    shared: &[ACTIVATIONS],
    model: false,
};

/// Every kernel, for the tests that validate them all.
pub const KERNELS: [Kernel; 6] = [FULL, DIRECTIONS, DELTA, SERIES, PRODUCTS, MATH_PROBE];

/// The complete WGSL of `kernel` in `precision`, with `constants` (`const NAME: u32 = V;`)
/// and, for a kernel that runs the model, its `ops`.
pub fn compose(
    kernel: Kernel,
    precision: Precision,
    constants: &[(&str, u32)],
    ops: &ModelOps,
) -> String {
    let mut text = format!(
        "alias Real = {};\nconst REAL_EPSILON: Real = {:e};\nconst TINY_OVER_U: Real = {:e};\n",
        precision.as_str(),
        precision.unit_roundoff() / 2.0,
        precision.smallest_normal() / precision.unit_roundoff()
    );
    for (name, value) in constants {
        text.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    let model: &[&str] = if kernel.model {
        &[ACTIVATIONS, LOSSES, ops.source()]
    } else {
        &[]
    };
    for shared in [MATH, CONFIG].iter().chain(model).chain(kernel.shared) {
        text.push_str(shared);
        text.push('\n');
    }
    text.push_str(kernel.source);
    text
}

/// Compiles `wgsl` into a module on `device`.
pub(crate) fn module(device: &wgpu::Device, label: &str, wgsl: &str) -> wgpu::ShaderModule {
    device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(label),
        source: wgpu::ShaderSource::Wgsl(wgsl.into()),
    })
}
