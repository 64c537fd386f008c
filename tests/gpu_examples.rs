//! GPU kernels never drop work: every kernel against the CPU at m in the thousands (many
//! blocks of examples per dispatch), and at the largest m its bindings allow, where one
//! example more is refused rather than summed in part.

mod common;

use common::{f32_cost_bound, gpu, gpu_precisions, network_of, rel};
use gradcheck::cpu::sensitivity::Sensitivity;
use gradcheck::cpu::series::Series;
use gradcheck::directions;
use gradcheck::estimate::DeltaCost;
use gradcheck::gpu::{delta, full, GpuContext};
use gradcheck::monitor::Silent;
use gradcheck::options::{LimitsChoice, Precision};
use gradcheck::problem::Problem;

/// The GPU's delta estimates against the CPU's: within both round-off bounds (the
/// device's in its precision, the CPU's in f64) and the step's truncation, which bounds
/// what either arithmetic may lose of the terms beyond the first (a running sum absorbs
/// terms below half its ulp: the even ones alike in both signs, the odd ones within it).
fn assert_deltas_agree(
    (gpu, cpu): (&[DeltaCost], &[DeltaCost]),
    (eps, truncation): (f64, &[f64]),
    precision: Precision,
    what: &str,
) {
    assert_eq!(gpu.len(), cpu.len());
    let u = precision.unit_roundoff();
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let estimate = |d: &DeltaCost| (d.plus - d.minus) / (2.0 * eps);
        let tolerance = (g.roundoff(u) + c.roundoff(Precision::F64.unit_roundoff())) / (2.0 * eps)
            + truncation[i];
        let (got, want) = (estimate(g), estimate(c));
        assert!(
            (got - want).abs() <= tolerance,
            "{what} {precision:?} coordinate {i}: gpu {got:e}, cpu {want:e} (tolerance {tolerance:e})"
        );
    }
}

/// Whole-pass costs of the GPU against the CPU's at the same points: 1e-12 relative in
/// f64, the derived f32 bound in f32.
fn assert_costs_agree(gpu: &[f64], cpu: &[f64], bound: f64, precision: Precision, what: &str) {
    assert_eq!(gpu.len(), cpu.len());
    for (i, (g, c)) in gpu.iter().zip(cpu).enumerate() {
        let ok = match precision {
            Precision::F64 => rel(*g, *c) < 1e-12,
            Precision::F32 => (g - c).abs() <= bound,
        };
        assert!(ok, "{what} {precision:?} cost {i}: gpu {g}, cpu {c}");
    }
}

fn every_coordinate(p: &Problem) -> Vec<usize> {
    (0..p.net().num_params()).collect()
}

/// The delta method's cost changes of `indices` on `ctx` and on the CPU, from the row gains
/// or the per-unit series, with each coordinate's truncation bound.
fn evaluate_both(
    ctx: &GpuContext,
    p: &Problem,
    series: bool,
    (eps, indices): (f64, &[usize]),
    precision: Precision,
) -> (Vec<DeltaCost>, Vec<DeltaCost>, Vec<f64>) {
    let located = |i: usize| p.locate(i).unwrap();
    if series {
        let s = Series::new(p);
        let gpu = delta::evaluate_series(ctx, (p, &s), eps, precision, indices, None, &Silent);
        let cpu = gradcheck::cpu::series::delta_costs(p, &s, eps, indices, &Silent);
        let truncation = indices
            .iter()
            .map(|&i| s.truncation_bound(located(i), eps))
            .collect();
        (gpu.unwrap().deltas, cpu.unwrap(), truncation)
    } else {
        let s = Sensitivity::new(p);
        let gpu = delta::evaluate(ctx, (p, &s), eps, precision, indices, None, &Silent);
        let cpu = gradcheck::cpu::delta::delta_costs(p, &s, eps, indices, &Silent);
        let truncation = indices
            .iter()
            .map(|&i| s.truncation_bound(located(i), eps))
            .collect();
        (gpu.unwrap().deltas, cpu.unwrap(), truncation)
    }
}

/// The delta method (row gains and per-unit series) on `ctx` against the CPU.
fn check_delta(ctx: &GpuContext, p: &Problem, series: bool, what: &str) {
    for precision in gpu_precisions(ctx) {
        let all = every_coordinate(p);
        let eps = 1e-4;
        let (gpu, cpu, truncation) = evaluate_both(ctx, p, series, (eps, &all), precision);
        assert_deltas_agree((&gpu, &cpu), (eps, &truncation), precision, what);
    }
}

/// The full method and directions on `ctx` against the CPU, at the points each device
/// evaluates (f32 rounds the problem and the steps).
fn check_whole_passes(ctx: &GpuContext, p: &Problem, what: &str) {
    use gradcheck::cpu::finite_diff::central_differences;
    let dirs = directions::draw(p.net().layout(), p.net().layout().tensors().len(), 3).unwrap();
    for precision in gpu_precisions(ctx) {
        let (seen, eps) = match precision {
            Precision::F64 => (p.clone(), 1e-4),
            Precision::F32 => (p.rounded_to_f32(), 1e-2),
        };
        let bound = f32_cost_bound(&seen);
        let gpu = full::evaluate(ctx, &seen, eps, precision, None, &Silent)
            .unwrap()
            .estimates;
        let cpu = central_differences(&seen, eps, precision, &Silent).unwrap();
        assert_costs_agree(&gpu.j_plus, &cpu.j_plus, bound, precision, what);
        assert_costs_agree(&gpu.j_minus, &cpu.j_minus, bound, precision, what);
        let (gpu_dirs, _) =
            gradcheck::gpu::directions::direction_costs(ctx, &seen, eps, precision, &dirs, &Silent)
                .unwrap();
        let cpu_dirs =
            gradcheck::cpu::directions::direction_costs(&seen, eps, &dirs, &Silent).unwrap();
        let flat = |pairs: &[(f64, f64)]| -> Vec<f64> {
            pairs.iter().flat_map(|&(a, b)| [a, b]).collect()
        };
        assert_costs_agree(&flat(&gpu_dirs), &flat(&cpu_dirs), bound, precision, what);
    }
}

#[test]
fn every_kernel_sums_every_example_at_m_in_the_thousands() {
    let Some(ctx) = gpu() else { return };
    // Several outputs: many loop iterations per example, so many blocks per dispatch.
    check_delta(&ctx, &network_of("", &[20, 16, 3], 3000, 1), false, "gains");
    check_delta(
        &ctx,
        &network_of("hidden=tanh loss=softmax", &[20, 16, 4], 3000, 2),
        true,
        "series",
    );
    check_delta(
        &ctx,
        &network_of("hidden=sigmoid loss=mse keep_prob=0.8", &[6, 9, 2], 5000, 3),
        true,
        "series, dropout",
    );
    check_whole_passes(&ctx, &network_of("", &[12, 8, 2], 3000, 4), "relu → bce");
    check_whole_passes(
        &ctx,
        &network_of("hidden=tanh loss=softmax", &[5, 6, 3], 4000, 5),
        "tanh → softmax",
    );
}

/// The largest m whose biggest binding, `words_per_example` scalars of `precision` per
/// example, fits `limit` bytes.
fn largest_m(limit: u64, words_per_example: u64, precision: Precision) -> usize {
    (limit / (words_per_example * precision.size() as u64)) as usize
}

#[test]
fn every_kernel_covers_the_largest_m_its_bindings_allow_and_refuses_one_more() {
    let Some(opened) = gpu() else { return };
    drop(opened);
    // Bindings held to 4 MiB: the same edge as a device's own 128 MiB or 2 GiB, at a size
    // the CPU reference and lavapipe check in seconds.
    const LIMIT: u64 = 4 << 20;
    let ctx = GpuContext::new(None, LimitsChoice::from_env())
        .unwrap()
        .with_binding_limit(LIMIT);
    let refused = |result: gradcheck::Result<()>, what: &str| match result {
        Err(gradcheck::Error::TooLarge(m) | gradcheck::Error::Unsupported { what: m, .. }) => {
            assert!(m.contains("bytes"), "{what}: {m}")
        }
        other => panic!("{what}: one example more than the bindings allow gave {other:?}"),
    };
    for precision in gpu_precisions(&ctx) {
        let all = [0usize, 1];
        // Row gains of a 1 → 1 network (the logits binding holds z, σ(z) and σ − y), and
        // the series of a squared-error one (five coefficients per example).
        for (settings, words, series) in [("", 3, false), ("loss=mse", 5, true)] {
            let m = largest_m(LIMIT, words, precision);
            let p = network_of(settings, &[1, 1], m, 6);
            let (gpu, cpu, truncation) = evaluate_both(&ctx, &p, series, (1e-4, &all), precision);
            assert_deltas_agree((&gpu, &cpu), (1e-4, &truncation), precision, settings);
            let more = network_of(settings, &[1, 1], m + 1, 6);
            let gpu = if series {
                let s = Series::new(&more);
                delta::evaluate_series(&ctx, (&more, &s), 1e-4, precision, &all, None, &Silent)
            } else {
                let s = Sensitivity::new(&more);
                delta::evaluate(&ctx, (&more, &s), 1e-4, precision, &all, None, &Silent)
            };
            refused(gpu.map(|_| ()), settings);
        }
        // Whole passes of a 1 → 1 network: X and Y, one scalar per example each.
        let m = largest_m(LIMIT, 1, precision);
        for (examples, fits) in [(m, true), (m + 1, false)] {
            let p = network_of("", &[1, 1], examples, 8);
            let seen = match precision {
                Precision::F64 => p,
                Precision::F32 => p.rounded_to_f32(),
            };
            let gpu = full::evaluate(&ctx, &seen, 1e-2, precision, None, &Silent);
            if fits {
                let cpu = gradcheck::cpu::finite_diff::central_differences(
                    &seen, 1e-2, precision, &Silent,
                )
                .unwrap();
                let gpu = gpu.unwrap().estimates;
                let bound = f32_cost_bound(&seen);
                assert_costs_agree(&gpu.j_plus, &cpu.j_plus, bound, precision, "full edge");
                assert_costs_agree(&gpu.j_minus, &cpu.j_minus, bound, precision, "full edge");
            } else {
                refused(gpu.map(|_| ()), "full");
            }
        }
    }
}

/// The command that summed only the first ~2260 examples on lavapipe now checks them all.
#[test]
fn the_gpu_delta_checks_thousands_of_examples_from_the_command_line() {
    if gpu().is_none() {
        return;
    }
    for precision in ["f64", "f32"] {
        if precision == "f64" && !common::gpu_has_f64(&gpu().unwrap()) {
            continue;
        }
        common::gradcheck()
            .args(["check", "--layers", "3,4,1", "--examples", "2261"])
            .args(["--device", "gpu", "--precision", precision])
            .assert()
            .code(0);
    }
}
