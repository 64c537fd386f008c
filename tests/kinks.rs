//! Kinks judged by what a consistent backprop gives: where a coordinate's change reaches a
//! unit sitting on its kink (zero biases and a blank example put every first-layer unit
//! there), the gradient passes only if it is the derivative under some convention for the
//! slope at the kink — ReLU'(0) = 0, ½ or 1 (a leaky ReLU's a, (1 + a)/2, 1), per layer —
//! and the bugs the old one-sided brackets admitted fail: with both methods, every model
//! with a kink, on the CPU and the GPU.

mod common;

use common::{gpu, gpu_precisions, network_of};
use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::cpu::backprop::{gradients_with_conventions, gradients_with_relu_prime_at_zero};
use gradcheck::model::{Layer, Mlp};
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision};
use gradcheck::problem::Problem;

/// `p` with every bias 0 and the first `blank` examples' inputs 0: there every hidden unit
/// of the first layer sits exactly on its kink (and those of later layers whose inputs all
/// vanish there).
fn zero_bias(p: &Problem, blank: usize) -> Problem {
    let layers: Vec<Layer> = p
        .net()
        .layers()
        .iter()
        .map(|l| Layer {
            w: l.w.clone(),
            b: l.b.mapv(|_| 0.0),
        })
        .collect();
    let mut x = p.x().clone();
    for e in 0..blank {
        x.column_mut(e).fill(0.0);
    }
    let net = Mlp::new(layers).unwrap().in_layout(p.net().data_layout());
    Problem::with_model(net, p.model().clone(), x, p.y().clone()).unwrap()
}

/// Networks with units on kinks: the exercise's model at several depths, and the other
/// models with a kink (softmax and squared-error outputs, leaky ReLU, dropout, L2), as
/// NNFS's spiral data puts three points at the origin.
fn networks() -> Vec<(String, Problem)> {
    let cases: [(&str, &[usize], usize); 8] = [
        ("", &[4, 5, 3, 1], 10),
        ("", &[6, 8, 8, 8, 1], 12),
        ("", &[3, 30, 1], 5),
        ("loss=softmax", &[2, 8, 8, 3], 12),
        ("hidden=leaky_relu loss=softmax", &[2, 6, 3], 9),
        ("loss=mse", &[3, 7, 2], 8),
        ("hidden=relu,tanh loss=mse l2=0.3", &[3, 6, 5, 1], 8),
        ("keep_prob=0.8", &[4, 9, 6, 1], 10),
    ];
    cases
        .iter()
        .enumerate()
        .map(|(i, (settings, widths, m))| {
            let blank = 1 + i % 3;
            let p = zero_bias(&network_of(settings, widths, *m, 40 + i as u64), blank);
            (format!("{settings} {widths:?}"), p)
        })
        .collect()
}

fn options(device: DeviceChoice, precision: Precision, method: Method) -> CheckOptions {
    CheckOptions {
        device,
        precision: precision.into(),
        method,
        ..Default::default()
    }
}

fn scaled(p: &Problem, grad: &[f64], tensor: &str, factor: f64) -> Vec<f64> {
    let mut g = grad.to_vec();
    let range = p.net().layout().tensor_named(tensor).unwrap().range();
    g[range].iter_mut().for_each(|v| *v *= factor);
    g
}

/// Every convention passes (the three uniform ones, and layers mixing them), and every bias
/// bug fails, at the kink's own coordinates.
fn assert_conventions_pass_and_bugs_fail(opts: &CheckOptions, f32_device: bool) {
    let engine = Engine::new(opts).unwrap();
    for (what, p) in networks() {
        let eval = engine.evaluate(&p, opts).unwrap();
        let m = p.examples() as f64;
        let hidden = p.net().layers().len() - 1;
        // Indices into each layer's conventions (below, half-way, above).
        let mut choices: Vec<Vec<usize>> = (0..3).map(|c| vec![c; hidden]).collect();
        if hidden > 1 {
            choices.push((0..hidden).map(|l| [0, 2, 1][l % 3]).collect());
        }
        let conventions: Vec<Vec<f64>> = choices
            .iter()
            .map(|choice| {
                choice
                    .iter()
                    .zip(&p.model().hidden)
                    .map(|(&c, act)| act.conventions().map_or(0.0, |v| v[c].1))
                    .collect()
            })
            .collect();
        for at_kink in &conventions {
            let grad = gradients_with_conventions(&p, at_kink);
            let report = judge(
                "kinks",
                &eval,
                &Gradients::given(grad.clone(), "conv"),
                opts,
            )
            .unwrap();
            let b1 = report.tensors.iter().find(|t| t.name == "b1").unwrap();
            assert!(b1.kink_coordinates > 0, "{what}: {}", report.render(false));
            if f32_device {
                assert_ne!(
                    report.verdict,
                    Verdict::Fail,
                    "{what} {at_kink:?}: {}",
                    report.render(false)
                );
            } else {
                assert_eq!(
                    report.verdict,
                    Verdict::Pass,
                    "{what} {:?} ReLU'(0) = {at_kink:?}: {}",
                    opts.method,
                    report.render(false)
                );
            }
            if at_kink != &conventions[0] {
                continue;
            }
            // db1 ×4 (the exercise's bug), divided by m − 1 instead of m, ×1.2, and 0.
            for factor in [4.0, m / (m - 1.0), 1.2, 0.0] {
                let report = judge(
                    "bug",
                    &eval,
                    &Gradients::given(scaled(&p, &grad, "b1", factor), "bug"),
                    opts,
                )
                .unwrap();
                assert!(
                    report.failing_tensors().contains(&"b1"),
                    "{what} {:?} db1 ×{factor}: {}",
                    opts.method,
                    report.render(false)
                );
            }
        }
    }
}

#[test]
fn conventions_pass_and_the_bias_bugs_fail_with_both_methods_on_the_cpu() {
    for method in [Method::Delta, Method::Full] {
        assert_conventions_pass_and_bugs_fail(
            &options(DeviceChoice::Cpu, Precision::F64, method),
            false,
        );
    }
}

#[test]
fn conventions_pass_and_the_bias_bugs_fail_on_the_gpu() {
    let Some(ctx) = gpu() else { return };
    for precision in gpu_precisions(&ctx) {
        let methods: &[Method] = match precision {
            Precision::F64 => &[Method::Delta, Method::Full],
            // f32 whole passes resolve ~1e-3: the delta method is f32's.
            Precision::F32 => &[Method::Delta],
        };
        for &method in methods {
            let opts = options(DeviceChoice::Gpu, precision, method);
            assert_conventions_pass_and_bugs_fail(&opts, precision == Precision::F32);
        }
    }
}

/// The exercise's own bug, db1 ×4, where the blank example's share of db1 dominates (every
/// label 0, the output weights negative): the one-sided bracket admitted it; the
/// conventions do not.
#[test]
fn the_exercises_db1_bug_fails_where_the_blank_example_dominates() {
    let base = network_of("", &[4, 5, 3, 1], 6, 3);
    let mut layers = base.net().layers().to_vec();
    layers[2].w.mapv_inplace(|w| -w.abs());
    let mut x = base.x().clone();
    x.column_mut(0).fill(0.0);
    let layers: Vec<Layer> = layers
        .into_iter()
        .map(|l| Layer {
            w: l.w,
            b: l.b.mapv(|_| 0.0),
        })
        .collect();
    let y = base.y().mapv(|_| 0.0);
    let p = Problem::new(Mlp::new(layers).unwrap(), x, y).unwrap();
    for method in [Method::Delta, Method::Full] {
        let opts = options(DeviceChoice::Cpu, Precision::F64, method);
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        let grad = gradients_with_relu_prime_at_zero(&p, 0.0);
        let correct = judge("c", &eval, &Gradients::given(grad.clone(), "c"), &opts).unwrap();
        assert_eq!(correct.verdict, Verdict::Pass, "{}", correct.render(false));
        let buggy = judge(
            "b",
            &eval,
            &Gradients::given(scaled(&p, &grad, "b1", 4.0), "b"),
            &opts,
        )
        .unwrap();
        assert_eq!(buggy.failing_tensors(), ["b1"], "{}", buggy.render(false));
    }
}

/// A unit 1e-10 above its kink is off it: its derivative is the one-sided one, and a
/// backprop that masks it as off is wrong — with the full method, whose old tie radius (a
/// fraction of the step) called it on its kink and passed the wrong mask, as with delta.
#[test]
fn a_unit_just_above_its_kink_is_not_on_it() {
    let base = network_of("", &[3, 4, 1], 5, 8);
    let mut layers = base.net().layers().to_vec();
    let mut x = base.x().clone();
    x.column_mut(0).fill(0.0);
    layers[0].b[1] = 1e-10;
    let p = Problem::new(Mlp::new(layers).unwrap(), x, base.y().clone()).unwrap();
    let grad = gradcheck::cpu::backprop::gradients(&p);
    // The wrong mask: unit 1 treated as off at example 0 (as `A > 1e-9` would).
    let mut wrong_p = p.clone();
    let mut wrong_layers = wrong_p.net().layers().to_vec();
    wrong_layers[0].b[1] = 0.0;
    wrong_p = Problem::new(
        Mlp::new(wrong_layers).unwrap(),
        wrong_p.x().clone(),
        wrong_p.y().clone(),
    )
    .unwrap();
    let wrong = gradients_with_relu_prime_at_zero(&wrong_p, 0.0);
    assert_ne!(wrong, grad);
    for method in [Method::Delta, Method::Full] {
        let opts = options(DeviceChoice::Cpu, Precision::F64, method);
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        let correct = judge("c", &eval, &Gradients::given(grad.clone(), "c"), &opts).unwrap();
        assert_eq!(
            correct.verdict,
            Verdict::Pass,
            "{method:?}: {}",
            correct.render(false)
        );
        assert_eq!(
            correct.kink_coordinates,
            0,
            "{method:?}: {}",
            correct.render(false)
        );
        let report = judge("w", &eval, &Gradients::given(wrong.clone(), "w"), &opts).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Fail,
            "{method:?}: {}",
            report.render(false)
        );
        assert!(
            report.failing_tensors().contains(&"b1"),
            "{}",
            report.render(false)
        );
    }
}

/// A leaky ReLU of slope 1 is the identity: no kink, nothing undecided.
#[test]
fn a_leaky_relu_of_slope_one_has_no_kink() {
    let p = zero_bias(
        &network_of("hidden=leaky_relu:1.0 loss=softmax", &[2, 6, 3], 9, 5),
        3,
    );
    for method in [Method::Delta, Method::Full] {
        let opts = options(DeviceChoice::Cpu, Precision::F64, method);
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        let report = judge("l", &eval, &Gradients::Backprop(None), &opts).unwrap();
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "{method:?}: {}",
            report.render(false)
        );
        assert_eq!(report.kink_coordinates, 0);
    }
}

#[test]
fn directions_at_kinks_are_judged_by_the_conventions_too() {
    let mut at_kinks = 0;
    for (what, p) in networks().into_iter().take(4) {
        let k = 3 * p.net().layout().tensors().len();
        let opts = CheckOptions {
            directions: Some(k),
            ..options(DeviceChoice::Cpu, Precision::F64, Method::Full)
        };
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        at_kinks += eval.estimates.kinks.len();
        for at_zero in [0.0, 0.5, 1.0] {
            let grad = gradients_with_relu_prime_at_zero(&p, at_zero);
            let report = judge(
                "dirs",
                &eval,
                &Gradients::given(grad.clone(), "conv"),
                &opts,
            )
            .unwrap();
            assert_eq!(
                report.verdict,
                Verdict::Pass,
                "{what}: {}",
                report.render(false)
            );
            let report = judge(
                "dirs",
                &eval,
                &Gradients::given(scaled(&p, &grad, "b1", 4.0), "bug"),
                &opts,
            )
            .unwrap();
            assert_eq!(
                report.failing_tensors(),
                ["b1"],
                "{what}: {}",
                report.render(false)
            );
        }
    }
    assert!(at_kinks > 0, "no direction reached a kink");
}
