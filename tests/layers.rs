//! The layer-level check, op by op: every op's reference backward passes against its own
//! central differences in float64, and in float32 (inputs and gradients rounded to f32,
//! judged as f32 gradients); every planted bug that students make fails on exactly its
//! gradient; batch norm with `dout = ones` (true dx ≈ 0) is never a FAIL; bad input is a
//! one-line error. Through the binary too (`gradcheck layer`).

use std::collections::BTreeMap;

use gradcheck::check::Verdict;
use gradcheck::layer::{check_layer, LayerInput, LayerOptions};
use gradcheck::ops::{self, Arrays, Role};
use ndarray::{ArrayD, IxDyn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A random array of `shape`: `scale·N(0, 1) + shift`-ish (never all zeros).
fn random(rng: &mut ChaCha8Rng, shape: &[usize], scale: f64, shift: f64) -> ArrayD<f64> {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            let (a, b): (f64, f64) = (rng.random(), rng.random());
            shift + scale * (-2.0 * a.max(1e-300).ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        })
        .collect();
    ArrayD::from_shape_vec(IxDyn(shape), v).unwrap()
}

/// Each op with inputs as cs231n's notebooks draw them, and its hyperparameters.
fn cases(rng: &mut ChaCha8Rng) -> Vec<(&'static str, BTreeMap<String, f64>, Arrays)> {
    let mut out = Vec::new();
    let none = BTreeMap::new;
    let arrays = |items: Vec<(&str, ArrayD<f64>)>| -> Arrays {
        items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    };
    out.push((
        "affine",
        none(),
        arrays(vec![
            ("x", random(rng, &[10, 2, 3], 1.0, 0.0)),
            ("w", random(rng, &[6, 5], 1.0, 0.0)),
            ("b", random(rng, &[5], 1.0, 0.0)),
        ]),
    ));
    for op in ["relu", "sigmoid", "tanh"] {
        out.push((
            op,
            none(),
            arrays(vec![("x", random(rng, &[10, 10], 2.0, 0.0))]),
        ));
    }
    out.push((
        "leaky_relu",
        [("alpha".to_string(), 0.1)].into(),
        arrays(vec![("x", random(rng, &[10, 10], 2.0, 0.0))]),
    ));
    let labels = ArrayD::from_shape_vec(
        IxDyn(&[50]),
        (0..50)
            .map(|_| f64::from(rng.random_range(0..10u8)))
            .collect(),
    )
    .unwrap();
    for op in ["softmax_loss", "svm_loss"] {
        out.push((
            op,
            none(),
            arrays(vec![
                ("x", random(rng, &[50, 10], 1.0, 0.0)),
                ("y", labels.clone()),
            ]),
        ));
    }
    let mask = random(rng, &[10, 10], 1.0, 0.0).mapv(|v| f64::from(u8::from(v < 0.5)));
    out.push((
        "dropout",
        [("p".to_string(), 0.6)].into(),
        arrays(vec![
            ("x", random(rng, &[10, 10], 1.0, 10.0)),
            ("mask", mask),
        ]),
    ));
    out.push((
        "conv",
        [("stride".to_string(), 2.0), ("pad".to_string(), 1.0)].into(),
        arrays(vec![
            ("x", random(rng, &[2, 3, 5, 5], 1.0, 0.0)),
            ("w", random(rng, &[4, 3, 3, 3], 1.0, 0.0)),
            ("b", random(rng, &[4], 1.0, 0.0)),
        ]),
    ));
    let pool = |ph: f64, stride: f64| -> BTreeMap<String, f64> {
        [
            ("pool_height".to_string(), ph),
            ("pool_width".to_string(), ph),
            ("stride".to_string(), stride),
        ]
        .into()
    };
    out.push((
        "max_pool",
        pool(2.0, 2.0),
        arrays(vec![("x", random(rng, &[3, 2, 8, 8], 1.0, 0.0))]),
    ));
    // overlapping windows: every input in several
    out.push((
        "avg_pool",
        pool(3.0, 1.0),
        arrays(vec![("x", random(rng, &[2, 2, 5, 5], 1.0, 0.0))]),
    ));
    out.push((
        "max_pool",
        pool(3.0, 1.0),
        arrays(vec![("x", random(rng, &[2, 2, 5, 5], 1.0, 0.0))]),
    ));
    out.push((
        "spatial_batchnorm",
        [("eps".to_string(), 1e-5)].into(),
        arrays(vec![
            ("x", random(rng, &[2, 3, 4, 5], 4.0, 10.0)),
            ("gamma", random(rng, &[3], 1.0, 0.0)),
            ("beta", random(rng, &[3], 1.0, 0.0)),
        ]),
    ));
    out.push((
        "spatial_groupnorm",
        [("G".to_string(), 2.0), ("eps".to_string(), 1e-5)].into(),
        arrays(vec![
            ("x", random(rng, &[2, 6, 3, 3], 4.0, 10.0)),
            ("gamma", random(rng, &[1, 6, 1, 1], 1.0, 0.0)),
            ("beta", random(rng, &[1, 6, 1, 1], 1.0, 0.0)),
        ]),
    ));
    out.push((
        "temporal_affine",
        none(),
        arrays(vec![
            ("x", random(rng, &[3, 4, 5], 1.0, 0.0)),
            ("w", random(rng, &[5, 6], 1.0, 0.0)),
            ("b", random(rng, &[6], 1.0, 0.0)),
        ]),
    ));
    // words repeat: their gradients accumulate
    let words = ArrayD::from_shape_vec(
        IxDyn(&[3, 4]),
        (0..12)
            .map(|_| f64::from(rng.random_range(0..5u8)))
            .collect(),
    )
    .unwrap();
    out.push((
        "word_embedding",
        none(),
        arrays(vec![("x", words), ("W", random(rng, &[5, 3], 1.0, 0.0))]),
    ));
    let steps = ArrayD::from_shape_vec(
        IxDyn(&[3, 4]),
        (0..12)
            .map(|_| f64::from(rng.random_range(0..5u8)))
            .collect(),
    )
    .unwrap();
    let mask = ArrayD::from_shape_vec(
        IxDyn(&[3, 4]),
        (0..12).map(|k| f64::from(u8::from(k % 5 != 3))).collect(),
    )
    .unwrap();
    out.push((
        "temporal_softmax_loss",
        none(),
        arrays(vec![
            ("x", random(rng, &[3, 4, 5], 1.0, 0.0)),
            ("y", steps),
            ("mask", mask),
        ]),
    ));
    out.push((
        "rnn_step",
        none(),
        arrays(vec![
            ("x", random(rng, &[3, 10], 1.0, 0.0)),
            ("prev_h", random(rng, &[3, 4], 1.0, 0.0)),
            ("Wx", random(rng, &[10, 4], 0.3, 0.0)),
            ("Wh", random(rng, &[4, 4], 0.3, 0.0)),
            ("b", random(rng, &[4], 0.3, 0.0)),
        ]),
    ));
    out.push((
        "rnn",
        none(),
        arrays(vec![
            ("x", random(rng, &[2, 3, 4], 1.0, 0.0)),
            ("h0", random(rng, &[2, 5], 1.0, 0.0)),
            ("Wx", random(rng, &[4, 5], 0.4, 0.0)),
            ("Wh", random(rng, &[5, 5], 0.4, 0.0)),
            ("b", random(rng, &[5], 0.3, 0.0)),
        ]),
    ));
    out.push((
        "rnn_cell",
        none(),
        arrays(vec![
            ("xt", random(rng, &[3, 4], 1.0, 0.0)),
            ("a_prev", random(rng, &[5, 4], 1.0, 0.0)),
            ("Wax", random(rng, &[5, 3], 0.4, 0.0)),
            ("Waa", random(rng, &[5, 5], 0.4, 0.0)),
            ("ba", random(rng, &[5, 1], 0.3, 0.0)),
        ]),
    ));
    out.push((
        "lstm_cell",
        none(),
        arrays(vec![
            ("xt", random(rng, &[3, 4], 1.0, 0.0)),
            ("a_prev", random(rng, &[2, 4], 1.0, 0.0)),
            ("c_prev", random(rng, &[2, 4], 1.0, 0.0)),
            ("Wf", random(rng, &[2, 5], 0.5, 0.0)),
            ("bf", random(rng, &[2, 1], 0.3, 0.0)),
            ("Wi", random(rng, &[2, 5], 0.5, 0.0)),
            ("bi", random(rng, &[2, 1], 0.3, 0.0)),
            ("Wc", random(rng, &[2, 5], 0.5, 0.0)),
            ("bc", random(rng, &[2, 1], 0.3, 0.0)),
            ("Wo", random(rng, &[2, 5], 0.5, 0.0)),
            ("bo", random(rng, &[2, 1], 0.3, 0.0)),
        ]),
    ));
    out.push((
        "lstm",
        none(),
        arrays(vec![
            ("x", random(rng, &[2, 3, 4], 1.0, 0.0)),
            ("h0", random(rng, &[2, 3], 1.0, 0.0)),
            ("Wx", random(rng, &[4, 12], 0.5, 0.0)),
            ("Wh", random(rng, &[3, 12], 0.5, 0.0)),
            ("b", random(rng, &[12], 0.3, 0.0)),
        ]),
    ));
    out.push((
        "lstm_step",
        none(),
        arrays(vec![
            ("x", random(rng, &[3, 4], 1.0, 0.0)),
            ("prev_h", random(rng, &[3, 5], 1.0, 0.0)),
            ("prev_c", random(rng, &[3, 5], 1.0, 0.0)),
            ("Wx", random(rng, &[4, 20], 0.5, 0.0)),
            ("Wh", random(rng, &[5, 20], 0.5, 0.0)),
            ("b", random(rng, &[20], 0.3, 0.0)),
        ]),
    ));
    for op in ["batchnorm", "layernorm"] {
        out.push((
            op,
            [("eps".to_string(), 1e-5)].into(),
            arrays(vec![
                ("x", random(rng, &[4, 5], 5.0, 12.0)),
                ("gamma", random(rng, &[5], 1.0, 0.0)),
                ("beta", random(rng, &[5], 1.0, 0.0)),
            ]),
        ));
    }
    out
}

/// The check of `op` on `arrays` with gradients `grads` (the reference backward's unless
/// changed) and upstream `dout`.
fn check(
    op: &dyn ops::LayerOp,
    name: &str,
    hparams: &BTreeMap<String, f64>,
    (arrays, dout): (&Arrays, Option<&ArrayD<f64>>),
    grads: Vec<ArrayD<f64>>,
    float32: bool,
) -> gradcheck::report::Report {
    let names: Vec<&str> = op
        .inputs()
        .iter()
        .filter(|i| i.role == Role::Differentiable)
        .map(|i| i.name)
        .collect();
    let input = LayerInput {
        op: ops::op(name, hparams).unwrap(),
        arrays: arrays.clone(),
        dout: dout.cloned(),
        grads: names
            .iter()
            .zip(grads)
            .map(|(n, g)| (format!("d{n}"), g))
            .collect(),
        float32: if float32 {
            vec!["dx".into()]
        } else {
            Vec::new()
        },
        source: "the test".into(),
        unused: Vec::new(),
    };
    check_layer("test", &input, &LayerOptions::default()).unwrap()
}

fn f32_rounded(a: &ArrayD<f64>) -> ArrayD<f64> {
    a.mapv(|v| f64::from(v as f32))
}

#[test]
fn every_ops_reference_backward_passes_in_f64_and_f32() {
    let mut rng = ChaCha8Rng::seed_from_u64(231);
    for (name, hparams, arrays) in cases(&mut rng) {
        let op = ops::op(name, &hparams).unwrap();
        let shape = op.output_shape(&arrays).unwrap();
        let dout = op.takes_dout().then(|| random(&mut rng, &shape, 1.0, 0.0));
        let up = dout
            .clone()
            .unwrap_or_else(|| ArrayD::from_elem(IxDyn(&[]), 1.0));
        let grads = op.backward(&arrays, &up);
        let report = check(
            op.as_ref(),
            name,
            &hparams,
            (&arrays, dout.as_ref()),
            grads,
            false,
        );
        assert_eq!(
            report.verdict,
            Verdict::Pass,
            "{name}: {}",
            report.render(false)
        );
        // float32: every input and dout rounded to f32, the backward's result rounded too.
        let arrays32: Arrays = arrays
            .iter()
            .map(|(k, v)| (k.clone(), f32_rounded(v)))
            .collect();
        let dout32 = dout.as_ref().map(f32_rounded);
        let up32 = dout32
            .clone()
            .unwrap_or_else(|| ArrayD::from_elem(IxDyn(&[]), 1.0));
        let grads32 = op
            .backward(&arrays32, &up32)
            .iter()
            .map(f32_rounded)
            .collect();
        let report = check(
            op.as_ref(),
            name,
            &hparams,
            (&arrays32, dout32.as_ref()),
            grads32,
            true,
        );
        assert_ne!(
            report.verdict,
            Verdict::Fail,
            "{name} f32: {}",
            report.render(false)
        );
        assert_eq!(
            report.header.grad_precision,
            gradcheck::options::Precision::F32
        );
    }
}

#[test]
fn a_wrong_gradient_fails_on_exactly_its_tensor() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for (name, hparams, arrays) in cases(&mut rng) {
        let op = ops::op(name, &hparams).unwrap();
        let shape = op.output_shape(&arrays).unwrap();
        let dout = op.takes_dout().then(|| random(&mut rng, &shape, 1.0, 0.0));
        let up = dout
            .clone()
            .unwrap_or_else(|| ArrayD::from_elem(IxDyn(&[]), 1.0));
        let reference = op.backward(&arrays, &up);
        for wrong in 0..reference.len() {
            let mut grads = reference.clone();
            // one entry off by 1e-4 of the tensor's scale
            let scale = grads[wrong].iter().map(|v| v.abs()).fold(0.0, f64::max);
            let at = 1 % grads[wrong].len();
            grads[wrong].as_slice_mut().unwrap()[at] += 1e-4 * scale;
            let report = check(
                op.as_ref(),
                name,
                &hparams,
                (&arrays, dout.as_ref()),
                grads,
                false,
            );
            assert_eq!(
                report.verdict,
                Verdict::Fail,
                "{name}: {}",
                report.render(false)
            );
            let failing = report.failing_tensors();
            let want = format!(
                "d{}",
                op.inputs()
                    .iter()
                    .filter(|i| i.role == Role::Differentiable)
                    .nth(wrong)
                    .unwrap()
                    .name
            );
            assert_eq!(failing, [want.as_str()], "{name}: {}", report.render(false));
        }
    }
}

#[test]
fn batchnorm_with_dout_of_ones_is_never_a_false_alarm() {
    // The true dx is 0: every backward's is rounding, and so is every estimate's.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..5 {
        let hparams = [("eps".to_string(), 1e-5)].into();
        let arrays: Arrays = [
            ("x".to_string(), random(&mut rng, &[8, 6], 5.0, 12.0)),
            ("gamma".to_string(), random(&mut rng, &[6], 1.0, 0.0)),
            ("beta".to_string(), random(&mut rng, &[6], 1.0, 0.0)),
        ]
        .into();
        let op = ops::op("batchnorm", &hparams).unwrap();
        let ones = ArrayD::from_elem(IxDyn(&[8, 6]), 1.0);
        let grads = op.backward(&arrays, &ones);
        let report = check(
            op.as_ref(),
            "batchnorm",
            &hparams,
            (&arrays, Some(&ones)),
            grads,
            false,
        );
        assert_ne!(report.verdict, Verdict::Fail, "{}", report.render(false));
    }
}

#[test]
fn relu_at_zero_admits_one_convention_for_the_op() {
    let hparams = BTreeMap::new();
    let x = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![0.0, 1.5, -2.0, 0.0, 0.3, -0.7]).unwrap();
    let arrays: Arrays = [("x".to_string(), x.clone())].into();
    let dout = ArrayD::from_shape_vec(IxDyn(&[2, 3]), vec![1.0, 2.0, 3.0, -4.0, 5.0, 6.0]).unwrap();
    let op = ops::op("relu", &hparams).unwrap();
    let mask = |ge: bool| -> ArrayD<f64> {
        let mut g = dout.clone();
        g.zip_mut_with(&x, |g, &v| {
            if !(v > 0.0 || (ge && v == 0.0)) {
                *g = 0.0
            }
        });
        g
    };
    for ge in [false, true] {
        let report = check(
            op.as_ref(),
            "relu",
            &hparams,
            (&arrays, Some(&dout)),
            vec![mask(ge)],
            false,
        );
        assert_eq!(report.verdict, Verdict::Pass, "{}", report.render(false));
        assert_eq!(report.kink_coordinates, 2);
    }
    // x > 0 at one zero and x ≥ 0 at the other: no one backward does that.
    let mut mixed = mask(false);
    mixed.as_slice_mut().unwrap()[3] = -4.0;
    let report = check(
        op.as_ref(),
        "relu",
        &hparams,
        (&arrays, Some(&dout)),
        vec![mixed],
        false,
    );
    assert_eq!(report.verdict, Verdict::Fail, "{}", report.render(false));
}

#[test]
fn bad_layer_input_is_a_one_line_error() {
    let hparams = BTreeMap::new();
    let op = ops::op("affine", &hparams).unwrap();
    let arrays: Arrays = [
        ("x".to_string(), ArrayD::from_elem(IxDyn(&[2, 3]), 1.0)),
        ("w".to_string(), ArrayD::from_elem(IxDyn(&[4, 2]), 1.0)),
        ("b".to_string(), ArrayD::from_elem(IxDyn(&[2]), 1.0)),
    ]
    .into();
    let e = op.output_shape(&arrays).unwrap_err().to_string();
    assert!(
        e.contains("w has shape [4, 2] but x [2, 3] has D = 3"),
        "{e}"
    );
    for (name, hp, want) in [
        ("gru", vec![], "unknown op 'gru'"),
        ("dropout", vec![], "needs its keep probability p"),
        ("relu", vec![("p", 0.5)], "relu has no hyperparameter 'p'"),
        ("dropout", vec![("p", 1.5)], "must lie in (0, 1]"),
    ] {
        let hp: BTreeMap<String, f64> = hp.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        let e = ops::op(name, &hp).err().unwrap().to_string();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn the_binary_checks_a_layer_from_an_npz_file() {
    use assert_cmd::Command;
    let dir = tempfile::TempDir::new().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let hparams: BTreeMap<String, f64> = [("eps".to_string(), 1e-5)].into();
    let arrays: Arrays = [
        ("x".to_string(), random(&mut rng, &[4, 5], 5.0, 12.0)),
        ("gamma".to_string(), random(&mut rng, &[5], 1.0, 0.0)),
        ("beta".to_string(), random(&mut rng, &[5], 1.0, 0.0)),
    ]
    .into();
    let op = ops::op("batchnorm", &hparams).unwrap();
    let dout = random(&mut rng, &[4, 5], 1.0, 0.0);
    let grads = op.backward(&arrays, &dout);
    let write = |name: &str, dx_scale: f64| {
        let path = dir.path().join(name);
        let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&path).unwrap());
        for (k, v) in &arrays {
            npz.add_array(k.as_str(), v).unwrap();
        }
        npz.add_array("dout", &dout).unwrap();
        npz.add_array("dx", &(&grads[0] * dx_scale)).unwrap();
        npz.add_array("dgamma", &grads[1]).unwrap();
        npz.add_array("dbeta", &grads[2]).unwrap();
        npz.finish().unwrap();
        path
    };
    let good = write("good.npz", 1.0);
    let out = Command::cargo_bin("gradcheck")
        .unwrap()
        .args([
            "layer",
            good.to_str().unwrap(),
            "--op",
            "batchnorm",
            "--set",
            "eps=1e-5",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("layer batchnorm eps=1e-5 · x 4×5, gamma 5, beta 5"),
        "{text}"
    );
    let bad = write("bad.npz", 2.0);
    let out = Command::cargo_bin("gradcheck")
        .unwrap()
        .args(["layer", bad.to_str().unwrap(), "--op", "batchnorm"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("failing: dx") && text.contains("constant factor"),
        "{text}"
    );
    // No op: one line naming the fix.
    let out = Command::cargo_bin("gradcheck")
        .unwrap()
        .args(["layer", good.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no op named") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn max_pool_ties_admit_each_routing_and_never_fail_an_even_split() {
    // Two 2×2 windows, the first with its maximum tied twice.
    let x = ArrayD::from_shape_vec(
        IxDyn(&[1, 1, 2, 4]),
        vec![3.0, 1.0, 0.5, 2.0, 3.0, -1.0, 0.25, -3.0],
    )
    .unwrap();
    let hp: BTreeMap<String, f64> = [
        ("pool_height".to_string(), 2.0),
        ("pool_width".to_string(), 2.0),
        ("stride".to_string(), 2.0),
    ]
    .into();
    let op = ops::op("max_pool", &hp).unwrap();
    let arrays: Arrays = [("x".to_string(), x)].into();
    let dout = ArrayD::from_shape_vec(IxDyn(&[1, 1, 1, 2]), vec![1.5, -2.0]).unwrap();
    let routed = |at: &[(usize, f64)]| {
        let mut g = ArrayD::zeros(IxDyn(&[1, 1, 2, 4]));
        for &(i, v) in at {
            g.as_slice_mut().unwrap()[i] += v;
        }
        g
    };
    let second = (3, -2.0); // the second window's maximum, 2.0 at flat index 3
    for (name, grads, want) in [
        ("first", routed(&[(0, 1.5), second]), Verdict::Pass),
        ("last", routed(&[(4, 1.5), second]), Verdict::Pass),
        (
            "every",
            routed(&[(0, 1.5), (4, 1.5), second]),
            Verdict::Pass,
        ),
        (
            "split",
            routed(&[(0, 0.75), (4, 0.75), second]),
            Verdict::Inconclusive,
        ),
        // the second window has no tie: routing to every element is a bug
        (
            "spread",
            routed(&[(0, 1.5), (2, -0.5), (3, -0.5), (6, -0.5), (7, -0.5)]),
            Verdict::Fail,
        ),
    ] {
        let report = check(
            op.as_ref(),
            "max_pool",
            &hp,
            (&arrays, Some(&dout)),
            vec![grads],
            false,
        );
        assert_eq!(report.verdict, want, "{name}: {}", report.render(false));
    }
}

#[test]
fn deeplearning_ais_channels_last_conv_reads_a_prev_and_dz() {
    use gradcheck::layer::{layer_input, LayerSettings};
    use gradcheck::ops::LayerOp;
    use gradcheck::options::Precision;
    let mut rng = ChaCha8Rng::seed_from_u64(41);
    let (a, w, b) = (
        random(&mut rng, &[2, 5, 5, 3], 1.0, 0.0),
        random(&mut rng, &[3, 3, 3, 4], 0.5, 0.0),
        random(&mut rng, &[1, 1, 1, 4], 0.5, 0.0),
    );
    let hp: BTreeMap<String, f64> = [("stride".to_string(), 2.0), ("pad".to_string(), 1.0)].into();
    let op = gradcheck::ops::channels_last::ChannelsLast::new("conv", &hp).unwrap();
    let arrays: Arrays = [("A_prev", &a), ("W", &w), ("b", &b)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    // Channels last is cs231n's conv seen through transposes.
    let first = |x: &ArrayD<f64>, axes: &[usize]| {
        x.clone()
            .permuted_axes(IxDyn(axes))
            .as_standard_layout()
            .into_owned()
    };
    let inner: Arrays = [
        ("x".to_string(), first(&a, &[0, 3, 1, 2])),
        ("w".to_string(), first(&w, &[3, 2, 0, 1])),
        (
            "b".to_string(),
            b.clone().into_shape_with_order(IxDyn(&[4])).unwrap(),
        ),
    ]
    .into();
    let want = first(
        &ops::op("conv", &hp).unwrap().forward(&inner),
        &[0, 2, 3, 1],
    );
    assert_eq!(op.forward(&arrays), want);
    let dz = random(&mut rng, want.shape(), 1.0, 0.0);
    let grads = op.backward(&arrays, &dz);
    let mut named: gradcheck::io::NamedArrays = arrays
        .iter()
        .map(|(k, v)| (k.clone(), (v.clone(), Precision::F64)))
        .collect();
    named.insert("dZ".into(), (dz, Precision::F64));
    for (name, g) in ["dA_prev", "dW", "db"].iter().zip(grads) {
        named.insert(name.to_string(), (g, Precision::F64));
    }
    let settings = LayerSettings::parse_line("op=conv stride=2 pad=1").unwrap();
    let input = layer_input(named.clone(), &settings, "t").unwrap();
    let report = check_layer("t", &input, &LayerOptions::default()).unwrap();
    assert_eq!(report.verdict, Verdict::Pass);
    named.get_mut("dW").unwrap().0[[0, 1, 2, 3]] += 1e-3;
    let input = layer_input(named, &settings, "t").unwrap();
    let report = check_layer("t", &input, &LayerOptions::default()).unwrap();
    assert_eq!(report.failing_tensors(), vec!["dW"]);
}
