//! Gradients computed in float32 are judged with their own round-off: correct ones pass,
//! planted bugs of 1e-3 and up still fail, and the bound is calibrated by measurement.

mod common;

use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, GivenGradients, Gradients};
use gradcheck::cpu::roundoff::GRADIENT_ROUNDOFF_SAFETY;
use gradcheck::generate::NetworkSpec;
use gradcheck::options::{CheckOptions, DeviceChoice, Precision};
use gradcheck::problem::Problem;

/// Random networks of depth 2–5, widths up to 128, up to 128 examples, one and several
/// outputs.
fn networks() -> Vec<Problem> {
    let shapes: [(&[usize], usize); 10] = [
        (&[4, 5, 1], 3),
        (&[20, 16, 1], 128),
        (&[64, 32, 16, 1], 64),
        (&[128, 128, 1], 128),
        (&[30, 60, 40, 20, 3], 50),
        (&[10, 128, 128, 128, 128, 1], 32),
        (&[100, 50, 25, 10, 5, 4], 100),
        (&[7, 9, 11, 2], 17),
        (&[128, 64, 128, 1], 128),
        (&[3, 100, 100, 1], 128),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, (w, m))| {
            NetworkSpec::new(w.to_vec(), *m, 900 + i as u64)
                .unwrap()
                .generate()
                .rounded_to_f32()
        })
        .collect()
}

/// A planted bug: rewrites one tensor's gradient in place.
type Bug = dyn Fn(&mut [f64]);

fn given(problem: &Problem, values: Vec<f64>) -> Gradients {
    let tensors = problem.net().layout().tensors().len();
    Gradients::Given(GivenGradients {
        values,
        given: vec![true; tensors],
        arrays: Vec::new(),
        stored: Precision::F32,
        float32_values: false,
        float32_forward: false,
        source: "a float32 backprop".into(),
    })
}

#[test]
fn the_gradient_roundoff_bound_covers_float32_backprops_with_margin() {
    let worst = networks()
        .iter()
        .map(common::float32_deviation)
        .fold(0.0f64, f64::max);
    eprintln!("largest |g32 − g| / σ: {worst:.3}");
    assert!(
        worst * 4.0 <= GRADIENT_ROUNDOFF_SAFETY,
        "measured {worst}, safety {GRADIENT_ROUNDOFF_SAFETY}"
    );
}

#[test]
fn correct_float32_backprops_pass_and_planted_bugs_fail() {
    let opts = CheckOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let engine = Engine::new(&opts).unwrap();
    for p in networks() {
        let eval = engine.evaluate(&p, &opts).unwrap();
        let single: Vec<f64> = common::float32_backprop(&p)
            .into_iter()
            .map(f64::from)
            .collect();
        let report = judge("f32", &eval, &given(&p, single.clone()), &opts).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "{:?}: {}",
            p.net().widths(),
            report.render(false)
        );
        assert_eq!(report.header.grad_precision, Precision::F32);
        eprintln!(
            "{:?}: resolution {:.2e}, difference {:.2e}",
            p.net().widths(),
            report.resolution,
            report.difference
        );
        let layout = p.net().layout();
        let bugs: [(&str, &Bug); 3] = [
            ("×1.001 on W1", &|g| g.iter_mut().for_each(|v| *v *= 1.001)),
            ("×2 on the last bias", &|g| {
                g.iter_mut().for_each(|v| *v *= 2.0)
            }),
            ("×1.01 on the largest entry of W2", &|g| {
                let k = (0..g.len())
                    .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
                    .unwrap();
                g[k] *= 1.01;
            }),
        ];
        let targets = ["W1", &format!("b{}", layout.tensors().len() / 2), "W2"];
        for ((what, bug), target) in bugs.iter().zip(targets) {
            let mut buggy = single.clone();
            bug(&mut buggy[layout.tensor_named(target).unwrap().range()]);
            let report = judge("f32 bug", &eval, &given(&p, buggy), &opts).unwrap();
            assert_eq!(
                report.failing_tensors(),
                [target],
                "{what} in {:?}: {}",
                p.net().widths(),
                report.render(false)
            );
        }
    }
}

/// A hidden unit within float32 round-off of its kink: the float32 backprop switches it the
/// other way than the exact one. The check must not call that a bug.
#[test]
fn a_unit_switched_by_float32_roundoff_is_not_a_false_alarm() {
    use gradcheck::model::{Layer, Mlp};
    use ndarray::Axis;
    let base = NetworkSpec::new(vec![6, 8, 5, 1], 12, 31)
        .unwrap()
        .generate()
        .rounded_to_f32();
    // z₂[0, 0] in f32 arithmetic, as the user computes it.
    let z2_f32 = |p: &Problem| -> f32 {
        let f = |a: &ndarray::Array2<f64>| a.mapv(|v| v as f32);
        let l = p.net().layers();
        let b = |i: usize| l[i].b.mapv(|v| v as f32).insert_axis(Axis(1));
        let a1 = (f(&l[0].w).dot(&f(p.x())) + b(0)).mapv(|v| v.max(0.0));
        (f(&l[1].w).dot(&a1) + b(1))[[0, 0]]
    };
    let z2_f64 = |p: &Problem| {
        gradcheck::cpu::forward::forward(p.net(), p.model(), p.x().view()).z[1][[0, 0]]
    };
    let opts = CheckOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let engine = Engine::new(&opts).unwrap();
    let mut switched = 0;
    for k in -40..=40 {
        let mut layers: Vec<Layer> = base.net().layers().to_vec();
        let shift = z2_f64(&base) - f64::from(k) * 2e-8;
        layers[1].b[0] = (layers[1].b[0] - shift) as f32 as f64;
        let p = Problem::new(
            Mlp::new(layers).unwrap(),
            base.x().clone(),
            base.y().clone(),
        )
        .unwrap();
        if (z2_f32(&p) > 0.0) == (z2_f64(&p) > 0.0) {
            continue;
        }
        switched += 1;
        let single: Vec<f64> = common::float32_backprop(&p)
            .into_iter()
            .map(f64::from)
            .collect();
        let eval = engine.evaluate(&p, &opts).unwrap();
        let report = judge("near a kink", &eval, &given(&p, single), &opts).unwrap();
        assert_ne!(report.verdict, Verdict::Fail, "{}", report.render(false));
    }
    assert!(switched > 0, "no shift made float32 switch the unit");
}

/// The bound, derived and calibrated on ReLU networks, against float32 backprops of every
/// other model (tanh, sigmoid, leaky ReLU, softmax, squared error, L2, dropout): no false
/// alarm, and a margin of at least 2 (measured: 3.4σ at worst, on sigmoid networks with a
/// squared-error output, against 1.9σ for ReLU ones).
#[test]
fn the_gradient_roundoff_bound_covers_float32_backprops_of_every_model() {
    let models = common::OTHER_MODELS;
    let opts = CheckOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    };
    let engine = Engine::new(&opts).unwrap();
    let mut worst = 0.0f64;
    for settings in models {
        for (k, widths) in [[12usize, 32, 16, 3], [30, 64, 64, 4], [8, 128, 16, 2]]
            .iter()
            .enumerate()
        {
            let p = common::network_of(settings, widths, 16 << k, 40 + k as u64);
            worst = worst.max(common::float32_deviation(&p));
            let eval = engine.evaluate(&p, &opts).unwrap();
            let single: Vec<f64> = common::float32_backprop(&p)
                .into_iter()
                .map(f64::from)
                .collect();
            let report = judge("f32", &eval, &given(&p, single), &opts).unwrap();
            assert_ne!(
                report.verdict,
                Verdict::Fail,
                "{settings}: {}",
                report.render(false)
            );
        }
    }
    eprintln!("every model: largest |g32 − g| / σ: {worst:.3}");
    assert!(
        worst * 2.0 <= GRADIENT_ROUNDOFF_SAFETY,
        "measured {worst}, safety {GRADIENT_ROUNDOFF_SAFETY}"
    );
}
