//! `--sample K`: a seeded subset of coordinates, every tensor represented, evaluated by the
//! same method as a full check and reported as a sample.

mod common;

use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::generate::{BugSpec, NetworkSpec};
use gradcheck::options::{CheckOptions, DeviceChoice, Precision};

fn cpu(sample: Option<usize>) -> CheckOptions {
    CheckOptions {
        device: DeviceChoice::Cpu,
        sample,
        sample_seed: 4,
        ..Default::default()
    }
}

#[test]
fn a_sample_matches_the_full_check_where_it_looks_and_catches_a_bug_in_a_bias() {
    let p = NetworkSpec::new(vec![784, 128, 64, 1], 16, 2)
        .unwrap()
        .generate();
    let total = p.net().num_params();
    let engine = Engine::new(&cpu(None)).unwrap();
    let full = engine.evaluate(&p, &cpu(None)).unwrap();
    let sampled = engine.evaluate(&p, &cpu(Some(500))).unwrap();

    let est = &sampled.estimates;
    let checked: Vec<usize> = (0..total).filter(|&i| est.is_checked(i)).collect();
    assert_eq!(checked.len(), 500);
    for i in 0..total {
        if est.is_checked(i) {
            // A sample is summed parameter by parameter, the whole by matrix products:
            // the same estimate within the round-off both bound.
            let gap = (est.gradapprox[i] - full.estimates.gradapprox[i]).abs();
            assert!(
                gap <= est.noise[i] + full.estimates.noise[i],
                "{i}: {gap:e} beyond {:e}",
                est.noise[i] + full.estimates.noise[i]
            );
        } else {
            assert!(est.gradapprox[i].is_nan());
        }
    }

    let report = judge(
        "sample",
        &sampled,
        &Gradients::Backprop(None),
        &cpu(Some(500)),
    )
    .unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.scope.mode, "sample");
    assert_eq!((report.scope.evaluated, report.scope.total), (500, total));
    assert_eq!(report.scope.seed, Some(4));
    assert!(report.tensors.iter().all(|t| t.checked_coordinates >= 1));
    let text = report.render(false);
    assert!(text.contains("the other 108301 are NOT checked"), "{text}");
    assert!(text.contains("PASS ON THE SAMPLE"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["scope"]["evaluated"], 500);

    // b2 has 64 of 108,801 parameters; the sample still holds some of them.
    let bug: BugSpec = "db2=1.001".parse().unwrap();
    let report = judge(
        "sample",
        &sampled,
        &Gradients::Backprop(Some(bug)),
        &cpu(Some(500)),
    )
    .unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    let failing = report.failing_tensors();
    assert_eq!(failing, ["b2"]);
    assert!(report
        .render(false)
        .contains("FAIL: backprop disagrees with finite differences on the sample"));
}

#[test]
fn a_gpu_sample_matches_the_cpu_sample() {
    let Some(ctx) = common::gpu() else { return };
    let p = NetworkSpec::new(vec![40, 30, 20, 1], 8, 5)
        .unwrap()
        .generate();
    // In f64 where the adapter has it; else in f32, within the f32 estimate's own bound.
    let precision = common::gpu_precisions(&ctx)[0];
    let gpu = CheckOptions {
        device: DeviceChoice::Gpu,
        precision: precision.into(),
        ..cpu(Some(300))
    };
    let on_cpu = Engine::new(&cpu(Some(300)))
        .unwrap()
        .evaluate(&p, &cpu(Some(300)))
        .unwrap();
    let on_gpu = Engine::new(&gpu).unwrap().evaluate(&p, &gpu).unwrap();
    for i in 0..p.net().num_params() {
        assert_eq!(
            on_cpu.estimates.is_checked(i),
            on_gpu.estimates.is_checked(i)
        );
        if on_cpu.estimates.is_checked(i) {
            let (a, b) = (
                on_cpu.estimates.gradapprox[i],
                on_gpu.estimates.gradapprox[i],
            );
            let allowed = match precision {
                Precision::F64 => 1e-9 * (a.abs() + b.abs()) + 1e-15,
                Precision::F32 => on_gpu.estimates.noise[i] + 1e-9 * a.abs(),
            };
            assert!((a - b).abs() <= allowed, "{i}: {a} vs {b}");
        }
    }
}

#[test]
fn bad_samples_are_refused_with_one_line() {
    for (args, message) in [
        (vec!["--sample", "0"], "'--sample <K>': must be at least 1"),
        (
            vec!["--sample", "3", "--method", "full"],
            "a sample works with the delta method",
        ),
        (vec!["--sample", "5"], "cannot represent all 6 tensors"),
    ] {
        common::check_refuses(&args, message);
    }
}
