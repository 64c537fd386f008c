//! Within WebGPU's limits: every kernel runs under WebGPU's default limits, a device too
//! small is refused before any pipeline is made, naming the limit, and f32 results do not
//! depend on the device's limits.

mod common;

use common::{gpu, gpu_precisions, gradcheck, random_problems};
use gradcheck::gpu::{full, GpuContext};
use gradcheck::monitor::Silent;
use gradcheck::options::{LimitsChoice, Precision};

#[test]
fn every_kernel_runs_under_webgpu_limits_and_downlevel_ones_are_refused_by_name() {
    let Some(ctx) = gpu() else { return };
    let precisions: Vec<&str> = gpu_precisions(&ctx)
        .into_iter()
        .map(Precision::as_str)
        .collect();
    for precision in &precisions {
        for method in [
            &["--method", "delta"][..],
            &["--method", "full"],
            &["--directions", "6"],
        ] {
            let out = gradcheck()
                .args([
                    "check",
                    "--device",
                    "gpu",
                    "--limits",
                    "webgpu",
                    "--precision",
                ])
                .arg(precision)
                .args(method)
                .output()
                .unwrap();
            // Pass, or undecided for f32 whole passes: never an error.
            let code = out.status.code().unwrap();
            assert!(
                code == 0 || code == 3,
                "{precision} {method:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    gradcheck()
        .args([
            "check",
            "--device",
            "gpu",
            "--limits",
            "downlevel",
            "--precision",
            "f32",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "max_storage_buffers_per_shader_stage is 4 under the downlevel limits",
        ));
}

#[test]
fn f32_results_are_the_same_bits_under_any_limits() {
    let Some(_) = gpu() else { return };
    let open = |limits| GpuContext::new(None, limits).unwrap();
    let (large, small) = (open(LimitsChoice::Adapter), open(LimitsChoice::Webgpu));
    assert_eq!(small.summary().limits, "webgpu");
    // A hidden layer of 100 units and 64 examples: the tile is what workgroup memory holds
    // (20 examples in 16 KiB), which used to follow the device's maximum.
    let wide = gradcheck::generate::NetworkSpec::new(vec![8, 100, 1], 64, 9)
        .unwrap()
        .generate();
    for p in random_problems().iter().take(3).chain([&wide]) {
        let run = |ctx: &GpuContext| {
            full::evaluate(ctx, p, 1e-2, Precision::F32, None, &Silent)
                .unwrap()
                .estimates
                .j_plus
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<u64>>()
        };
        assert_eq!(run(&large), run(&small), "{:?}", p.net().widths());
    }
}
