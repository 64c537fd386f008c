//! The GPU full method against the CPU f64 reference, on lavapipe in CI.

mod common;

use common::{f32_cost_bound, gpu, random_problems, rel, FIXTURE};
use gradcheck::check::{compare, Verdict};
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::cpu::{backprop, finite_diff::central_differences, forward};
use gradcheck::estimate::perturbed_pair;
use gradcheck::gpu::{full, probe};
use gradcheck::io::read_npz;
use gradcheck::monitor::Silent;
use gradcheck::options::{CheckOptions, DeviceChoice, Precision};

/// `ln(1 + x) − x` as an independent reference: the direct form where it loses under a
/// bit, the Taylor series (smallest terms first) near 0.
fn reference_log1p_minus_x(x: f64) -> f64 {
    if x.abs() > 0.25 {
        return x.ln_1p() - x;
    }
    (2..=80).rev().map(|k| -(-x).powi(k) / f64::from(k)).sum()
}

/// `e^x − 1 − x`, likewise.
fn reference_expm1_minus_x(x: f64) -> f64 {
    if x.abs() > 0.25 {
        return x.exp_m1() - x;
    }
    let mut factorial = [1.0f64; 40];
    for k in 1..40 {
        factorial[k] = factorial[k - 1] * k as f64;
    }
    (2..40).rev().map(|k| x.powi(k as i32) / factorial[k]).sum()
}

#[test]
fn wgsl_math_matches_rust_f64_to_a_few_ulp() {
    let Some(ctx) = gpu() else { return };
    let inputs: Vec<f64> = (-2000..=2000)
        .map(|i| i as f64 * 0.0173)
        .chain([-700.0, -300.0, 300.0, 700.0, 1e-300, 0.0, 1.0])
        .collect();
    for precision in common::gpu_precisions(&ctx) {
        let ulps = 4.0;
        let u = precision.unit_roundoff() * 2.0;
        let out = probe::math(&ctx, &inputs, precision).unwrap();
        for (&v, got) in inputs.iter().zip(&out) {
            let v = if precision == Precision::F32 {
                v as f32 as f64
            } else {
                v
            };
            if precision == Precision::F32 && v.abs() > 80.0 {
                continue; // outside f32's exp range
            }
            let t = v.clamp(0.0, 1.0);
            // The kernel clamps with bounds in its own precision.
            let bound = |b: f64| {
                if precision == Precision::F32 {
                    b as f32 as f64
                } else {
                    b
                }
            };
            let want = [
                v.exp(),
                t.ln_1p(),
                forward::softplus(v),
                reference_log1p_minus_x(v.clamp(bound(-0.64), bound(1.72))),
                reference_expm1_minus_x(v.clamp(bound(-0.99), bound(0.99))),
                v.tanh(),
                gradcheck::model::spec::sigmoid(v),
            ];
            for (k, (g, w)) in got.iter().zip(want).enumerate() {
                let err = if w == 0.0 { g.abs() } else { rel(*g, w) };
                assert!(
                    err <= ulps * u,
                    "{precision:?} fn {k} at {v}: got {g}, want {w} ({:.1} ulp)",
                    err / u
                );
            }
        }
    }
}

#[test]
fn every_perturbed_cost_matches_the_cpu_in_f64_and_f32() {
    let Some(ctx) = gpu() else { return };
    let has_f64 = common::gpu_has_f64(&ctx);
    let fixture = read_npz(std::path::Path::new(FIXTURE)).unwrap().problem;
    for p in std::iter::once(fixture).chain(random_problems()) {
        let widths = p.net().widths();
        // f64: same points, 1e-12 relative.
        let cpu64 = central_differences(&p, 1e-3, Precision::F64, &Silent).unwrap();
        let gpu64 = match has_f64 {
            true => {
                full::evaluate(&ctx, &p, 1e-3, Precision::F64, Some(5), &Silent)
                    .unwrap()
                    .estimates
            }
            false => cpu64.clone(),
        };
        for i in 0..cpu64.len() {
            assert!(
                rel(gpu64.j_plus[i], cpu64.j_plus[i]) < 1e-12,
                "{widths:?} J+[{i}] {} vs {}",
                gpu64.j_plus[i],
                cpu64.j_plus[i]
            );
            assert!(
                rel(gpu64.j_minus[i], cpu64.j_minus[i]) < 1e-12,
                "{widths:?} J-[{i}]"
            );
        }
        // f32: against f64 at exactly the f32 points, within the derived bound.
        let seen = p.rounded_to_f32();
        let bound = f32_cost_bound(&seen);
        let gpu32 = full::evaluate(&ctx, &seen, 1e-2, Precision::F32, Some(3), &Silent)
            .unwrap()
            .estimates;
        let cpu32 = central_differences(&seen, 1e-2, Precision::F32, &Silent).unwrap();
        let mut worst = 0.0f64;
        for i in 0..cpu32.len() {
            for (g, c) in [
                (gpu32.j_plus[i], cpu32.j_plus[i]),
                (gpu32.j_minus[i], cpu32.j_minus[i]),
            ] {
                assert!(
                    (g - c).abs() <= bound,
                    "{widths:?} coordinate {i}: {g} vs {c}, bound {bound:e}"
                );
                worst = worst.max((g - c).abs() / bound);
            }
        }
        eprintln!("{widths:?}: f32 cost error at most {worst:.3} of the bound {bound:.2e}");
    }
}

#[test]
fn fixture_on_gpu_f64_gives_the_exercise_difference_and_f32_names_b1_and_w2() {
    let Some(ctx) = gpu() else { return };
    let input = read_npz(std::path::Path::new(FIXTURE)).unwrap();
    let buggy = Gradients::Given(input.gradients.clone().unwrap());
    for precision in common::gpu_precisions(&ctx) {
        let opts = CheckOptions {
            device: DeviceChoice::Gpu,
            precision: precision.into(),
            eps: (precision == Precision::F64).then_some(1e-7),
            ..Default::default()
        };
        let engine = Engine::new(&opts).unwrap();
        let eval = engine.evaluate(&input.problem, &opts).unwrap();
        let report = judge("fixture", &eval, &buggy, &opts).unwrap();
        assert_eq!(report.header.device, "gpu");
        assert_eq!(report.verdict, Verdict::Fail);
        let failing = report.failing_tensors();
        assert_eq!(failing, ["b1", "W2"], "{precision:?}");
        assert!(report
            .worst
            .iter()
            .all(|c| c.name.starts_with("b1") || c.name.starts_with("W2")));
        if precision == Precision::F64 {
            assert!(
                (report.difference - 0.2850931).abs() < 1e-7,
                "difference {}",
                report.difference
            );
        } else {
            assert!(
                (report.difference - 0.2850931).abs() < 1e-4,
                "difference {}",
                report.difference
            );
        }
        let correct = judge("fixture", &eval, &Gradients::Backprop(None), &opts).unwrap();
        assert_eq!(
            correct.verdict,
            Verdict::Pass,
            "{precision:?}: {:?}",
            correct.worst
        );
    }
}

#[test]
fn random_networks_agree_with_the_cpu_across_chunk_edges() {
    let Some(ctx) = gpu() else { return };
    let has_f64 = common::gpu_has_f64(&ctx);
    for (n, p) in random_problems().into_iter().enumerate() {
        let grad = backprop::gradients(&p);
        let layout = p.net().layout();
        let chunk = [1, 7, 64, 1000][n % 4];
        // The full method's default step in f64 (1e-6 leaves tensors of small gradients
        // below the resolution).
        if has_f64 {
            let run = full::evaluate(&ctx, &p, 1e-5, Precision::F64, Some(chunk), &Silent).unwrap();
            assert!(
                run.estimates
                    .j_plus
                    .iter()
                    .chain(&run.estimates.j_minus)
                    .all(|j| j.is_finite()),
                "unwritten cost"
            );
            let cmp = compare(layout, &grad, &run.estimates, 2e-7, 3);
            common::passes_but_for_dead_tensors(&cmp.tensors, &grad, layout);
            assert!(cmp.difference < 1e-8);
        }

        // f32: gradapprox against the f64 reference at the same f32 points, within what the
        // cost bound allows (a step this large crosses ReLU kinks, so backprop is not the
        // yardstick here; the reference is).
        let seen = p.rounded_to_f32();
        let bound = f32_cost_bound(&seen);
        let run32 =
            full::evaluate(&ctx, &seen, 1e-2, Precision::F32, Some(chunk), &Silent).unwrap();
        let cpu32 = central_differences(&seen, 1e-2, Precision::F32, &Silent).unwrap();
        for (i, &theta) in seen.net().flatten().iter().enumerate() {
            let (plus, minus) = perturbed_pair(theta, 1e-2, Precision::F32);
            let allowed = 2.0 * bound / (plus - minus);
            let diff = (run32.estimates.gradapprox[i] - cpu32.gradapprox[i]).abs();
            assert!(
                diff <= allowed,
                "{:?} chunk {chunk} coordinate {i}: {diff:e} > {allowed:e}",
                p.net().widths()
            );
        }
    }
}

#[test]
fn runs_are_bit_identical_and_independent_of_the_chunk_size() {
    let Some(ctx) = gpu() else { return };
    let p = &random_problems()[3];
    for precision in common::gpu_precisions(&ctx) {
        let a = full::evaluate(&ctx, p, 1e-3, precision, None, &Silent)
            .unwrap()
            .estimates;
        let b = full::evaluate(&ctx, p, 1e-3, precision, None, &Silent)
            .unwrap()
            .estimates;
        let c = full::evaluate(&ctx, p, 1e-3, precision, Some(13), &Silent)
            .unwrap()
            .estimates;
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.j_plus), bits(&b.j_plus));
        assert_eq!(bits(&a.j_minus), bits(&b.j_minus));
        assert_eq!(bits(&a.j_plus), bits(&c.j_plus));
        assert_eq!(bits(&a.j_minus), bits(&c.j_minus));
    }
}

#[test]
fn gpu_time_is_measured_with_timestamps() {
    let Some(ctx) = gpu() else { return };
    if !ctx.supports_timestamps() {
        eprintln!("SKIPPED: adapter has no timestamp queries");
        return;
    }
    let run = full::evaluate(
        &ctx,
        &random_problems()[4],
        1e-3,
        Precision::F32,
        Some(50),
        &Silent,
    )
    .unwrap();
    let s = run.gpu_seconds.expect("timestamps");
    assert!(s > 0.0 && s < 60.0, "{s}");
    assert!(run.chunks > 1);
}

#[test]
fn the_roundoff_model_bounds_observed_f32_errors_with_margin() {
    let Some(ctx) = gpu() else { return };
    let mut worst = 0.0f64;
    for p in random_problems() {
        let seen = p.rounded_to_f32();
        let reference = central_differences(&seen, 1e-4, Precision::F32, &Silent).unwrap();
        let est = full::evaluate(&ctx, &seen, 1e-4, Precision::F32, None, &Silent)
            .unwrap()
            .estimates;
        for i in 0..est.len() {
            let unit = est.noise[i] / gradcheck::estimate::ROUNDOFF_SAFETY;
            if unit > 0.0 {
                worst = worst.max((est.gradapprox[i] - reference.gradapprox[i]).abs() / unit);
            }
        }
    }
    eprintln!("worst observed round-off ratio (GPU f32): {worst:.2}");
    assert!(
        worst < gradcheck::estimate::ROUNDOFF_SAFETY / 4.0,
        "observed {worst}"
    );
}

#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let Some(ctx) = gpu() else { return };
    let p = &random_problems()[2];
    // One run first, so that the pipelines exist when the device goes.
    full::evaluate(&ctx, p, 1e-3, Precision::F32, None, &Silent).unwrap();
    ctx.lose_device();
    let all: Vec<usize> = (0..p.net().num_params()).collect();
    let full = full::evaluate(&ctx, p, 1e-3, Precision::F32, None, &Silent);
    let sens = gradcheck::cpu::sensitivity::Sensitivity::new(p);
    let delta = gradcheck::gpu::delta::evaluate(
        &ctx,
        (p, &sens),
        1e-5,
        Precision::F32,
        &all,
        None,
        &Silent,
    );
    for (method, result) in [("full", full.map(|_| ())), ("delta", delta.map(|_| ()))] {
        match result {
            Err(gradcheck::Error::Gpu(message)) => {
                assert!(!message.contains('\n'), "{method}: {message}");
                assert!(message.contains("was lost"), "{method}: {message}");
            }
            other => panic!("{method}: expected a GPU error, got {other:?}"),
        }
    }
}
