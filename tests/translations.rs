//! Every kernel as each backend will compile it: naga translates it to SPIR-V (Vulkan,
//! checked by spirv-val), GLSL (GL, checked by glslangValidator), MSL (Metal) and HLSL
//! (DX12), in f32 everywhere and in f64 where the backend has it (wgpu offers f64 shaders
//! on Vulkan only). A broken translation fails here instead of on a user's laptop.
//! spirv-val and glslangValidator come from Debian's spirv-tools and glslang-tools (CI
//! installs them); without them those two checks are skipped with a message, unless
//! GRADCHECK_REQUIRE_GPU=1.

mod common;

use std::path::Path;
use std::process::Command;

use gradcheck::gpu::shader::{compose, KERNELS};
use gradcheck::options::Precision;

use common::CONSTANTS;

fn module(wgsl: &str) -> (naga::Module, naga::valid::ModuleInfo) {
    let module =
        naga::front::wgsl::parse_str(wgsl).unwrap_or_else(|e| panic!("{}", e.emit_to_string(wgsl)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::FLOAT64,
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{}", e.emit_to_string(wgsl)));
    (module, info)
}

/// Runs an external validator on `path`, or says it is missing (a failure in CI).
fn external(tool: &str, args: &[&str], path: &Path) -> bool {
    match Command::new(tool).args(args).arg(path).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{tool} rejects {}: {}{}",
                path.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(e) => {
            if std::env::var("GRADCHECK_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{tool} is needed (apt-get install spirv-tools glslang-tools): {e}");
            }
            eprintln!("SKIPPED {tool} ({e}); install spirv-tools and glslang-tools");
            false
        }
    }
}

/// Every kernel with every model variant (kernels that run no model once).
fn kernels_with_every_model() -> Vec<(
    gradcheck::gpu::shader::Kernel,
    gradcheck::gpu::shader::ModelOps,
)> {
    KERNELS
        .iter()
        .flat_map(|&k| {
            let variants = common::model_variants();
            let n = if k.model { variants.len() } else { 1 };
            variants.into_iter().take(n).map(move |ops| (k, ops))
        })
        .collect()
}

#[test]
fn every_kernel_translates_to_spirv_in_both_precisions_and_spirv_val_accepts_it() {
    let dir = tempfile::TempDir::new().unwrap();
    for (kernel, ops) in kernels_with_every_model() {
        for precision in [Precision::F32, Precision::F64] {
            let (module, info) = module(&compose(kernel, precision, &CONSTANTS, &ops));
            let pipeline = naga::back::spv::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: "main".into(),
            };
            let words = naga::back::spv::write_vec(
                &module,
                &info,
                &naga::back::spv::Options::default(),
                Some(&pipeline),
            )
            .unwrap_or_else(|e| panic!("{} {precision:?}: {e}", kernel.name));
            let path = dir.path().join(format!(
                "{}-{}-{}.spv",
                kernel.name,
                precision.as_str(),
                ops.source().len()
            ));
            std::fs::write(&path, bytemuck::cast_slice::<u32, u8>(&words)).unwrap();
            external("spirv-val", &["--target-env", "vulkan1.1"], &path);
        }
    }
}

#[test]
fn every_kernel_translates_to_glsl_430_and_es_310_and_glslang_accepts_it() {
    use naga::back::glsl;
    let dir = tempfile::TempDir::new().unwrap();
    for (kernel, ops) in kernels_with_every_model() {
        let (module, info) = module(&compose(kernel, Precision::F32, &CONSTANTS, &ops));
        for version in [glsl::Version::Desktop(430), glsl::Version::new_gles(310)] {
            let options = glsl::Options {
                version,
                ..Default::default()
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: "main".into(),
                multiview: None,
            };
            let mut text = String::new();
            glsl::Writer::new(
                &mut text,
                &module,
                &info,
                &options,
                &pipeline,
                naga::proc::BoundsCheckPolicies::default(),
            )
            .and_then(|mut w| w.write())
            .unwrap_or_else(|e| panic!("{} {version:?}: {e}", kernel.name));
            let path = dir.path().join(format!(
                "{}-{}-{}.comp",
                kernel.name,
                version.is_es(),
                ops.source().len()
            ));
            std::fs::write(&path, text).unwrap();
            external("glslangValidator", &[], &path);
        }
    }
}

#[test]
fn every_kernel_translates_to_msl_and_hlsl_in_f32() {
    for (kernel, ops) in kernels_with_every_model() {
        let (module, info) = module(&compose(kernel, Precision::F32, &CONSTANTS, &ops));
        let msl_pipeline = naga::back::msl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, "main".into())),
            ..Default::default()
        };
        naga::back::msl::write_string(
            &module,
            &info,
            &naga::back::msl::Options {
                lang_version: (2, 1),
                ..Default::default()
            },
            &msl_pipeline,
        )
        .unwrap_or_else(|e| panic!("{} MSL: {e}", kernel.name));
        let hlsl_options = naga::back::hlsl::Options {
            shader_model: naga::back::hlsl::ShaderModel::V6_0,
            ..Default::default()
        };
        let hlsl_pipeline = naga::back::hlsl::PipelineOptions {
            entry_point: Some((naga::ShaderStage::Compute, "main".into())),
        };
        let mut text = String::new();
        naga::back::hlsl::Writer::new(&mut text, &hlsl_options, &hlsl_pipeline)
            .write(&module, &info, None)
            .unwrap_or_else(|e| panic!("{} HLSL: {e}", kernel.name));
        assert!(text.contains("main"), "{}", kernel.name);
    }
}
