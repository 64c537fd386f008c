//! Penalties on the parameters in the conventions people write them, through the binary:
//! the course's λ/(2m)·Σ‖W‖², a plain coefficient on Σ‖W‖² (cs231n's `reg·ΣW²`, NNFS's
//! `weight_regularizer_l2`), L1 on weights and biases and L2 on biases (NNFS's four
//! regularisers). A correct backprop passes under the right names; the regulariser's
//! gradient forgotten, doubled or halved fails; L1 at θ = 0 accepts one `sign(0)`
//! convention per kind of tensor, not a mix.

mod common;

use common::{gradcheck, network_of, user_backprop, Style};
use gradcheck::model::{Layer, Mlp, TensorKind};
use gradcheck::problem::Problem;
use tempfile::TempDir;

/// Runs `gradcheck check` on `p`'s arrays with gradient `grad` and `flags`; the exit code
/// and the output.
fn check(dir: &TempDir, (p, grad): (&Problem, &[f64]), flags: &[&str]) -> (i32, String) {
    let (code, text) = common::check_arrays(dir, "net.npz", (p, grad), flags);
    (code.unwrap_or(-1), text)
}

/// The data term's gradient of `p` (its penalties left out), as a user's backprop.
fn data_gradient(p: &Problem) -> Vec<f64> {
    user_backprop(&common::without_penalties(p), Style::default())
}

/// `grad` plus `factor` times the penalties' slope, with `sign0(i)` the slope of `|θ|` a
/// backprop takes at a θ_i of 0.
fn with_penalty(p: &Problem, grad: &[f64], factor: f64, sign0: impl Fn(usize) -> f64) -> Vec<f64> {
    let layout = p.net().layout();
    let theta = p.net().flatten();
    let model = p.model();
    let scale = model.scale(p.examples());
    grad.iter()
        .enumerate()
        .map(|(i, &g)| {
            let spec = layout.tensor_of(i);
            let (square, absolute) = model.penalty.factors(spec.layer - 1, spec.kind, scale);
            let sign = if theta[i] == 0.0 {
                sign0(i)
            } else {
                theta[i].signum()
            };
            g + factor * (2.0 * square * theta[i] + absolute * sign)
        })
        .collect()
}

#[test]
fn every_penalty_passes_its_gradient_and_fails_a_forgotten_or_rescaled_one() {
    let dir = TempDir::new().unwrap();
    for (settings, flags) in [
        ("l2=0.7", vec!["--l2", "0.7"]),
        ("weight_l2=0.05", vec!["--weight-l2", "0.05"]),
        ("weight_l2=0.05", vec!["--reg", "0.05"]),
        ("weight_l1=0.01", vec!["--weight-l1", "0.01"]),
        ("bias_l2=0.2", vec!["--bias-l2", "0.2"]),
        ("bias_l1=0.01", vec!["--bias-l1", "0.01"]),
        // Per layer, as NNFS sets them on each Layer_Dense.
        (
            "weight_l2=0.05,0,0.02 bias_l1=0,0.01,0",
            vec!["--weight-l2", "0.05,0,0.02", "--bias-l1", "0,0.01,0"],
        ),
        (
            "weight_l2=0.01 weight_l1=0.002 bias_l2=0.03 bias_l1=0.004",
            vec![
                "--weight-l2",
                "0.01",
                "--weight-l1",
                "0.002",
                "--bias-l2",
                "0.03",
                "--bias-l1",
                "0.004",
            ],
        ),
    ] {
        let p = network_of(settings, &[4, 6, 5, 1], 12, 3);
        let data = data_gradient(&p);
        let sign0 = |_| 0.0;
        for method in ["delta", "full"] {
            let args: Vec<&str> = flags.iter().copied().chain(["--method", method]).collect();
            let right = with_penalty(&p, &data, 1.0, sign0);
            let (code, text) = check(&dir, (&p, &right), &args);
            assert_eq!(code, 0, "{settings} {method}: {text}");
            for factor in [0.0, 2.0, 0.5] {
                let wrong = with_penalty(&p, &data, factor, sign0);
                let (code, text) = check(&dir, (&p, &wrong), &args);
                assert_eq!(code, 1, "{settings} ×{factor} {method}: {text}");
            }
        }
    }
}

#[test]
fn a_penalty_on_one_layer_is_not_one_on_every_layer() {
    // NNFS's chapter 14: dense1 regularised, dense2 not.
    let dir = TempDir::new().unwrap();
    let one = network_of(
        "loss=softmax weight_l2=5e-4,0 bias_l2=5e-4,0",
        &[2, 16, 3],
        30,
        4,
    );
    let every = network_of(
        "loss=softmax weight_l2=5e-4 bias_l2=5e-4",
        &[2, 16, 3],
        30,
        4,
    );
    let flags = [
        "--loss",
        "softmax",
        "--weight-l2",
        "5e-4,0",
        "--bias-l2",
        "5e-4,0",
    ];
    let data = data_gradient(&one);
    let (code, text) = check(
        &dir,
        (&one, &with_penalty(&one, &data, 1.0, |_| 0.0)),
        &flags,
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("weight L2 0.0005,0 (per layer)"), "{text}");
    // The regulariser's gradient added to both layers fails the unregularised one.
    let (code, text) = check(
        &dir,
        (&one, &with_penalty(&every, &data, 1.0, |_| 0.0)),
        &flags,
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("failing: W2, b2"), "{text}");
    // One coefficient per layer or one for all: three for two layers is refused.
    let (code, text) = check(
        &dir,
        (&one, &data),
        &["--loss", "softmax", "--weight-l2", "1,2,3"],
    );
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("3 coefficients for a network of 2 layers"),
        "{text}"
    );
}

/// `p` with its first entries of every weight and bias tensor set to 0: where L1 has a
/// kink.
fn with_zeros(p: &Problem) -> Problem {
    let layers: Vec<Layer> = p
        .net()
        .layers()
        .iter()
        .map(|l| {
            let mut w = l.w.clone();
            let mut b = l.b.clone();
            w[[0, 0]] = 0.0;
            let last = w.ncols() - 1;
            w[[0, last]] = 0.0;
            b[0] = 0.0;
            Layer { w, b }
        })
        .collect();
    Problem::with_model(
        Mlp::new(layers).unwrap(),
        p.model().clone(),
        p.x().clone(),
        p.y().clone(),
    )
    .unwrap()
}

#[test]
fn l1_at_zero_admits_one_sign_convention_per_kind_of_tensor() {
    let dir = TempDir::new().unwrap();
    let p = with_zeros(&network_of(
        "weight_l1=0.05 bias_l1=0.02",
        &[3, 5, 4, 1],
        10,
        8,
    ));
    let layout = p.net().layout();
    let data = data_gradient(&p);
    let args = ["--weight-l1", "0.05", "--bias-l1", "0.02"];
    // np.sign's 0, NNFS's `dL1[θ < 0] = −1` (1 at 0), and −1: each passes.
    for convention in [0.0, 1.0, -1.0] {
        let grad = with_penalty(&p, &data, 1.0, |_| convention);
        let (code, text) = check(&dir, (&p, &grad), &args);
        assert_eq!(code, 0, "sign(0)={convention}: {text}");
        assert!(text.contains("at kinks"), "{text}");
    }
    // Weights at one convention, biases at another: two sites, each consistent.
    let grad = with_penalty(&p, &data, 1.0, |i| {
        if layout.tensor_of(i).kind == TensorKind::Weight {
            1.0
        } else {
            0.0
        }
    });
    let (code, text) = check(&dir, (&p, &grad), &args);
    assert_eq!(code, 0, "{text}");
    // The weights' zeros at different conventions: no one backprop gives that.
    let w1 = layout.tensor_named("W1").unwrap().range();
    let grad = with_penalty(&p, &data, 1.0, |i| if w1.contains(&i) { 1.0 } else { 0.0 });
    let (code, text) = check(&dir, (&p, &grad), &args);
    assert_eq!(code, 1, "{text}");
    // A sign(0) of ½ is no convention.
    let grad = with_penalty(&p, &data, 1.0, |_| 0.5);
    let (code, text) = check(&dir, (&p, &grad), &args);
    assert_eq!(code, 1, "{text}");
    // L1 forgotten.
    let (code, text) = check(&dir, (&p, &data), &args);
    assert_eq!(code, 1, "{text}");
}

/// cs231n's assignment-1 TwoLayerNet adds `reg·ΣW²` (gradient `2·reg·W`): `--reg reg`
/// passes it; the old README's `l2 = reg·N` (the `0.5·reg` years' convention) fails it.
#[test]
fn cs231n_reg_is_a_plain_coefficient() {
    let dir = TempDir::new().unwrap();
    let reg = 0.05;
    let p = network_of(&format!("weight_l2={reg} loss=softmax"), &[4, 10, 3], 5, 2);
    let grad = with_penalty(&p, &data_gradient(&p), 1.0, |_| 0.0);
    let (code, text) = check(&dir, (&p, &grad), &["--loss", "softmax", "--reg", "0.05"]);
    assert_eq!(code, 0, "{text}");
    let n = (reg * 5.0).to_string();
    let (code, text) = check(&dir, (&p, &grad), &["--loss", "softmax", "--l2", &n]);
    assert_eq!(code, 1, "{text}");
}

#[test]
fn two_conventions_for_one_term_are_refused() {
    let out = gradcheck()
        .args([
            "check",
            "--layers",
            "3,4,1",
            "--l2",
            "0.1",
            "--weight-l2",
            "0.1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("give one"), "{text}");
}
