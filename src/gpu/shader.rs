//! Shader sources: each kernel in `shaders/` is compiled with a prelude that fixes the
//! precision (`alias Real`) and its compile-time sizes, followed by the shared math.

use crate::options::Precision;

/// The shared scalar functions (exp, log1p, softplus) every kernel may call.
pub const MATH: &str = include_str!("../../shaders/math.wgsl");

/// The per-dispatch `Config` struct the batched kernels share.
pub const CONFIG: &str = include_str!("../../shaders/config.wgsl");

/// The whole-pass forward (one workgroup per perturbed network) the full and directions
/// kernels share; each defines its own `correction`.
pub const FORWARD: &str = include_str!("../../shaders/forward.wgsl");

/// A kernel with an entry point `main`, and the shared files it needs besides the math and
/// the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub shared: &'static [&'static str],
}

/// The full method's kernel.
pub const FULL: Kernel = Kernel {
    name: "full",
    source: include_str!("../../shaders/full.wgsl"),
    shared: &[FORWARD],
};
/// The directional checks' kernel.
pub const DIRECTIONS: Kernel = Kernel {
    name: "directions",
    source: include_str!("../../shaders/directions.wgsl"),
    shared: &[FORWARD],
};
/// The delta method's kernel.
pub const DELTA: Kernel = Kernel {
    name: "delta",
    source: include_str!("../../shaders/delta.wgsl"),
    shared: &[],
};
/// The math test kernel.
pub const MATH_PROBE: Kernel = Kernel {
    name: "math_probe",
    source: include_str!("../../shaders/math_probe.wgsl"),
    shared: &[],
};

/// Every kernel, for the tests that validate them all.
pub const KERNELS: [Kernel; 4] = [FULL, DIRECTIONS, DELTA, MATH_PROBE];

/// The complete WGSL of `kernel` in `precision`, with `constants` (`const NAME: u32 = V;`).
pub fn compose(kernel: Kernel, precision: Precision, constants: &[(&str, u32)]) -> String {
    let mut text = format!(
        "alias Real = {};\nconst REAL_EPSILON: Real = {:e};\n",
        precision.as_str(),
        precision.unit_roundoff() / 2.0
    );
    for (name, value) in constants {
        text.push_str(&format!("const {name}: u32 = {value}u;\n"));
    }
    for shared in [MATH, CONFIG].iter().chain(kernel.shared) {
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
