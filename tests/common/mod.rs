//! Helpers shared by the integration tests.
#![allow(dead_code)]

use gradcheck::generate::NetworkSpec;
use gradcheck::gpu::GpuContext;
use gradcheck::problem::Problem;

/// The exercise's fixture, as shipped in the repository.
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/exercise_buggy_backprop.npz"
);

/// The GPU context for GPU tests. Without an adapter the test is skipped with a visible
/// message, unless `GRADCHECK_REQUIRE_GPU=1` (set by CI), where it fails.
pub fn gpu() -> Option<GpuContext> {
    match GpuContext::new(None) {
        Ok(ctx) => Some(ctx),
        Err(e) => {
            if std::env::var("GRADCHECK_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("GRADCHECK_REQUIRE_GPU=1 but no GPU: {e}");
            }
            eprintln!(
                "SKIPPED (no GPU adapter: {e}); set GRADCHECK_REQUIRE_GPU=1 to make this a failure"
            );
            None
        }
    }
}

/// A family of random networks: depth 1–4, small odd widths, a few seeds.
pub fn random_problems() -> Vec<Problem> {
    let shapes: [(&[usize], usize); 8] = [
        (&[3, 1], 5),
        (&[7, 5, 1], 1),
        (&[4, 9, 2], 13),
        (&[12, 17, 9, 1], 32),
        (&[5, 40, 3, 7, 1], 11),
        (&[1, 1, 1, 1, 1], 3),
        (&[20, 33, 1], 29),
        (&[6, 8, 8, 8, 3], 17),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (widths, m))| {
            NetworkSpec::new(widths.to_vec(), *m, 100 + i as u64)
                .unwrap()
                .generate()
        })
        .collect()
}

/// Relative distance `|a − b| / |b|`.
pub fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs()
}

/// Runs `gradcheck check --device cpu ARGS` and asserts exit 2 with `message` on stderr.
pub fn check_refuses(args: &[&str], message: &str) {
    assert_cmd::Command::cargo_bin("gradcheck")
        .unwrap()
        .args(["check", "--device", "cpu"])
        .args(args)
        .assert()
        .code(2)
        .stderr(predicates::str::contains(message));
}
