//! Kinks judged, not dropped: where a step crosses a ReLU kink the gradient is judged
//! against the exact one-sided derivatives (and the ReLU'(0) conventions), with both methods.

mod common;

use common::zero_bias_blank_example;
use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::cpu::backprop::gradients_with_relu_prime_at_zero as backprop_with_relu_prime_at_zero;
use gradcheck::options::{CheckOptions, DeviceChoice, Method};
use gradcheck::problem::Problem;

fn networks() -> Vec<Problem> {
    [
        (&[4usize, 5, 3, 1][..], 10usize),
        (&[6, 8, 8, 8, 1], 12),
        (&[10, 20, 20, 20, 20, 2], 16),
        (&[3, 30, 1], 5),
    ]
    .iter()
    .enumerate()
    .map(|(i, (w, m))| zero_bias_blank_example(w, *m, 40 + i as u64))
    .collect()
}

fn options(method: Method) -> CheckOptions {
    CheckOptions {
        device: DeviceChoice::Cpu,
        method,
        ..Default::default()
    }
}

#[test]
fn both_relu_conventions_pass_and_the_planted_bias_bugs_fail_with_both_methods() {
    for method in [Method::Delta, Method::Full] {
        let opts = options(method);
        let engine = Engine::new(&opts).unwrap();
        for p in networks() {
            let eval = engine.evaluate(&p, &opts).unwrap();
            let layout = p.net().layout();
            let b1 = layout.tensor_named("b1").unwrap().range();
            for at_zero in [0.0, 1.0] {
                let grad = backprop_with_relu_prime_at_zero(&p, at_zero);
                let report = judge(
                    "kinks",
                    &eval,
                    &Gradients::given(grad.clone(), "conv"),
                    &opts,
                )
                .unwrap();
                assert_eq!(
                    report.verdict,
                    Verdict::Pass,
                    "{method:?} ReLU'(0) = {at_zero}: {}",
                    report.render(false)
                );
                assert!(
                    report.kink_coordinates >= b1.len(),
                    "{}",
                    report.render(false)
                );
                for bug in [4.0, 0.0] {
                    let mut buggy = grad.clone();
                    buggy[b1.clone()].iter_mut().for_each(|g| *g *= bug);
                    let report =
                        judge("bug", &eval, &Gradients::given(buggy, "bug"), &opts).unwrap();
                    assert_eq!(
                        report.failing_tensors(),
                        ["b1"],
                        "{method:?} db1 ×{bug}: {}",
                        report.render(false)
                    );
                }
            }
        }
    }
}

/// How far the ReLU'(0) conventions land outside the one-sided derivatives when several
/// units sit on their kinks at once (relative to |left| + |right|): the reason a kink
/// admits the conventions' derivatives as well as the interval between one-sided ones.
#[test]
fn conventions_can_land_outside_the_one_sided_derivatives_and_are_computed_exactly() {
    let mut outside = 0.0f64;
    let mut cases = 0;
    for p in networks() {
        let opts = options(Method::Delta);
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        for at_zero in [0.0, 1.0] {
            let grad = backprop_with_relu_prime_at_zero(&p, at_zero);
            for (&i, b) in &eval.estimates.kinks {
                let (lo, hi) = (b.left.min(b.right), b.right.max(b.left));
                let distance = (lo - grad[i]).max(grad[i] - hi).max(0.0);
                let scale = b.left.abs() + b.right.abs();
                if scale > 0.0 {
                    outside = outside.max(distance / scale);
                }
                let convention = if at_zero == 0.0 { b.relu0 } else { b.relu1 };
                assert!(
                    (grad[i] - convention).abs() <= 1e-12 * scale.max(grad[i].abs()),
                    "ReLU'(0) = {at_zero} at {i}: {} vs {convention}",
                    grad[i]
                );
                cases += 1;
            }
        }
    }
    eprintln!("{cases} kink coordinates; the conventions land up to {outside:.3} (relative) outside [left, right]");
    assert!(cases > 50);
}

#[test]
fn directions_across_kinks_are_judged_by_their_one_sided_derivatives_too() {
    let mut crossing = 0;
    for p in networks() {
        let k = 3 * p.net().layout().tensors().len();
        let opts = CheckOptions {
            directions: Some(k),
            ..options(Method::Full)
        };
        let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
        crossing += eval.estimates.kinks.len();
        let b1 = p.net().layout().tensor_named("b1").unwrap().range();
        for at_zero in [0.0, 1.0] {
            let grad = backprop_with_relu_prime_at_zero(&p, at_zero);
            let report = judge(
                "dirs",
                &eval,
                &Gradients::given(grad.clone(), "conv"),
                &opts,
            )
            .unwrap();
            assert_eq!(report.verdict, Verdict::Pass, "{}", report.render(false));
            let mut buggy = grad;
            buggy[b1.clone()].iter_mut().for_each(|g| *g *= 4.0);
            let report = judge("dirs", &eval, &Gradients::given(buggy, "bug"), &opts).unwrap();
            assert_eq!(report.failing_tensors(), ["b1"], "{}", report.render(false));
        }
    }
    assert!(crossing > 0, "no direction crossed a kink");
}
