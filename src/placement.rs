//! Where a check runs and in which precision: one pure function of what was asked and
//! what the adapter offers, so the policy is stated, and tested, in one place.
//!
//! wgpu offers f64 shaders on Vulkan only (never Metal, DX12 or GL), and Intel GPUs lack
//! them even there, so most laptop GPUs run f32; the delta method resolves ~1e-7 there,
//! which is what makes an f32 check worth running. A software adapter (lavapipe,
//! llvmpipe, WARP) runs on the same cores as the native CPU path, 3–60× slower, so `auto`
//! prefers the CPU (f64) when that is all there is.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::gpu::AdapterSummary;
use crate::options::{DeviceChoice, Precision, PrecisionChoice};

/// The decision: the GPU or the CPU, the precision, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Placement {
    pub gpu: bool,
    pub precision: Precision,
    /// One line for the report: why this device and precision.
    pub reason: String,
    /// Whether a GPU was found and `auto` left it for the CPU (a software adapter): the
    /// front ends say how to ask for it.
    #[serde(skip)]
    pub gpu_declined: bool,
}

impl Placement {
    fn cpu(reason: String) -> Self {
        Self {
            gpu: false,
            precision: Precision::F64,
            reason,
            gpu_declined: false,
        }
    }

    fn gpu(precision: Precision, reason: String) -> Self {
        Self {
            gpu: true,
            precision,
            reason,
            gpu_declined: false,
        }
    }
}

/// Decides where a check runs. `adapter` is the adapter found (`None`: none); the caller
/// has already refused a missing adapter where one was required or named.
pub fn place(
    device: DeviceChoice,
    precision: PrecisionChoice,
    adapter: Option<&AdapterSummary>,
) -> Result<Placement> {
    let f32_needs_gpu =
        || Error::Option("f32 runs on a GPU only: the CPU path computes in f64".into());
    match (device, adapter) {
        (DeviceChoice::Cpu, _) => match precision {
            PrecisionChoice::F32 => Err(f32_needs_gpu()),
            _ => Ok(Placement::cpu("the CPU was asked for (f64)".into())),
        },
        (DeviceChoice::Gpu, None) => Err(Error::NoAdapter(String::new())),
        (DeviceChoice::Gpu, Some(a)) => match precision {
            PrecisionChoice::F64 if !a.f64 => Err(Error::Unsupported {
                adapter: a.name.clone(),
                what: "f64 shaders (SHADER_F64)".into(),
            }),
            PrecisionChoice::Auto => Ok(Placement::gpu(
                by_features(a),
                format!("the GPU was asked for; {}", features_reason(a)),
            )),
            forced => Ok(Placement::gpu(
                forced.forced().expect("not auto"),
                "the GPU and the precision were asked for".into(),
            )),
        },
        (DeviceChoice::Auto, None) => match precision {
            PrecisionChoice::F32 => Err(f32_needs_gpu()),
            _ => Ok(Placement::cpu(
                "no GPU adapter: the native CPU path (f64)".into(),
            )),
        },
        (DeviceChoice::Auto, Some(a)) if a.software => match precision {
            PrecisionChoice::F32 => Ok(Placement::gpu(
                Precision::F32,
                format!("f32 was asked for; '{}' is a software adapter", a.name),
            )),
            _ => Ok(Placement {
                gpu_declined: true,
                ..Placement::cpu(format!(
                    "'{}' is a software adapter: the native CPU path is faster on the same cores, and f64",
                    a.name
                ))
            }),
        },
        (DeviceChoice::Auto, Some(a)) => match precision {
            PrecisionChoice::Auto => Ok(Placement::gpu(by_features(a), features_reason(a))),
            PrecisionChoice::F64 if !a.f64 => Ok(Placement::cpu(format!(
                "f64 was asked for and '{}' has no f64 shaders",
                a.name
            ))),
            forced => Ok(Placement::gpu(
                forced.forced().expect("not auto"),
                "the precision was asked for".into(),
            )),
        },
    }
}

/// f64 where the adapter has f64 shaders, else f32.
fn by_features(a: &AdapterSummary) -> Precision {
    if a.f64 {
        Precision::F64
    } else {
        Precision::F32
    }
}

fn features_reason(a: &AdapterSummary) -> String {
    if a.f64 {
        format!("'{}' ({}) has f64 shaders: f64", a.name, a.backend)
    } else {
        format!(
            "'{}' ({}) has no f64 shaders: f32 (the delta method resolves ~1e-7 there)",
            a.name, a.backend
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(name: &str, backend: &str, f64: bool, software: bool) -> AdapterSummary {
        AdapterSummary {
            name: name.into(),
            backend: backend.into(),
            device_type: if software { "Cpu" } else { "IntegratedGpu" }.into(),
            software,
            driver: String::new(),
            f64,
            timestamps: true,
            max_buffer_size: 1 << 30,
            max_storage_binding: 1 << 27,
            limits: "adapter".into(),
        }
    }

    #[test]
    fn auto_picks_the_gpu_and_its_best_precision_and_the_cpu_over_software() {
        use DeviceChoice::{Auto, Cpu, Gpu};
        use Precision::{F32, F64};
        let metal = adapter("Apple M2", "metal", false, false);
        let nvidia = adapter("NVIDIA H100", "vulkan", true, false);
        let intel = adapter("Intel(R) Iris(R) Xe Graphics", "vulkan", false, false);
        let lavapipe = adapter("llvmpipe (LLVM 15)", "vulkan", true, true);
        let llvmpipe_gl = adapter("llvmpipe (LLVM 15)", "gl", false, true);
        let auto = PrecisionChoice::Auto;
        let cases: [(
            DeviceChoice,
            PrecisionChoice,
            Option<&AdapterSummary>,
            bool,
            Precision,
        ); 12] = [
            (Auto, auto, Some(&metal), true, F32),
            (Auto, auto, Some(&intel), true, F32),
            (Auto, auto, Some(&nvidia), true, F64),
            (Auto, auto, Some(&lavapipe), false, F64),
            (Auto, auto, Some(&llvmpipe_gl), false, F64),
            (Auto, auto, None, false, F64),
            (Auto, PrecisionChoice::F64, Some(&metal), false, F64),
            (Auto, PrecisionChoice::F32, Some(&nvidia), true, F32),
            (Auto, PrecisionChoice::F32, Some(&lavapipe), true, F32),
            (Gpu, auto, Some(&llvmpipe_gl), true, F32),
            (Gpu, auto, Some(&lavapipe), true, F64),
            (Cpu, auto, Some(&nvidia), false, F64),
        ];
        for (device, precision, a, gpu, expected) in cases {
            let p = place(device, precision, a).unwrap();
            assert_eq!(
                (p.gpu, p.precision),
                (gpu, expected),
                "{device:?} {precision:?} {a:?}"
            );
            assert!(!p.reason.is_empty());
        }
        // Where auto does not do the obvious, it says so.
        assert!(place(Auto, auto, Some(&lavapipe)).unwrap().gpu_declined);
        assert!(!place(Auto, auto, Some(&nvidia)).unwrap().gpu_declined);
        assert!(place(Auto, auto, Some(&metal))
            .unwrap()
            .reason
            .contains("no f64 shaders"));
    }

    #[test]
    fn what_cannot_be_done_is_refused() {
        let metal = adapter("Apple M2", "metal", false, false);
        assert!(matches!(
            place(DeviceChoice::Gpu, PrecisionChoice::F64, Some(&metal)),
            Err(Error::Unsupported { .. })
        ));
        assert!(place(DeviceChoice::Cpu, PrecisionChoice::F32, None).is_err());
        assert!(place(DeviceChoice::Auto, PrecisionChoice::F32, None).is_err());
        assert!(matches!(
            place(DeviceChoice::Gpu, PrecisionChoice::Auto, None),
            Err(Error::NoAdapter(_))
        ));
    }
}
