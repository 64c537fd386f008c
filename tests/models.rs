//! Every activation, loss, reduction, L2 and dropout: the built-in backprop against an
//! independent formulation (central differences of the CPU forward), the GPU's whole
//! passes against the CPU in both precisions, planted bugs failing on the right tensor,
//! the course's Regularization exercise, cs231n's layout, and rows against columns.

mod common;

use common::{gpu, gpu_precisions, gradcheck};
use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::cpu::{backprop, finite_diff::central_differences};
use gradcheck::estimate::perturbed_pair;
use gradcheck::generate::BugSpec;
use gradcheck::monitor::Silent;
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision, PrecisionChoice};
use gradcheck::problem::Problem;

/// Models that between them use every op: `(settings line, widths)`.
const MODELS: [(&str, &[usize]); 7] = [
    ("hidden=tanh loss=softmax l2=0.7", &[9, 7, 5, 4]),
    ("hidden=sigmoid loss=mse", &[6, 8, 3]),
    (
        "hidden=leaky_relu:0.2,tanh loss=bce reduction=sum",
        &[5, 6, 4, 2],
    ),
    ("hidden=identity loss=softmax reduction=sum", &[4, 5, 3]),
    ("hidden=relu loss=softmax l2=0.3 layout=rows", &[10, 12, 4]),
    (
        "hidden=tanh,relu loss=bce keep_prob=0.8 l2=0.1",
        &[6, 9, 7, 1],
    ),
    ("hidden=relu loss=bce l2=0.5", &[6, 9, 7, 1]),
];

fn problem(settings: &str, widths: &[usize], seed: u64) -> Problem {
    common::network_of(settings, widths, 11, seed)
}

/// `gradcheck check --device cpu ARGS FILE`, asserting its exit code.
fn check_cpu(args: &[&str], file: &std::path::Path, code: i32) -> std::process::Output {
    gradcheck()
        .args(["check", "--device", "cpu"])
        .args(args)
        .arg(file)
        .assert()
        .code(code)
        .get_output()
        .clone()
}

/// The tensors a report fails.
fn failing_tensors(report: &gradcheck::report::Report) -> Vec<String> {
    report
        .tensors
        .iter()
        .filter(|t| t.verdict == Verdict::Fail)
        .map(|t| t.name.clone())
        .collect()
}

fn cpu_opts() -> CheckOptions {
    CheckOptions {
        device: DeviceChoice::Cpu,
        ..Default::default()
    }
}

#[test]
fn backprop_matches_central_differences_of_the_forward_for_every_model() {
    for (settings, widths) in MODELS {
        for seed in 0..3 {
            let p = problem(settings, widths, seed);
            let grad = backprop::gradients(&p);
            // An independent formulation: central differences of the whole cost, L2
            // included, coordinate by coordinate.
            let mut net = p.net().clone();
            for (i, &g) in grad.iter().enumerate() {
                let original = *net.param_mut(i);
                let h = 1e-6;
                *net.param_mut(i) = original + h;
                let plus = p.cost_of(&net);
                *net.param_mut(i) = original - h;
                let minus = p.cost_of(&net);
                *net.param_mut(i) = original;
                let approx = (plus - minus) / (2.0 * h);
                let err = (g - approx).abs() / (g.abs() + approx.abs()).max(1e-8);
                assert!(
                    err < 1e-6,
                    "{settings} seed {seed} {}: backprop {g}, differences {approx}",
                    p.net().layout().coordinate_name(i)
                );
            }
            // The check itself passes it, with a difference at cs231n's bar or better.
            let opts = cpu_opts();
            let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
            let report = judge("t", &eval, &Gradients::Backprop(None), &opts).unwrap();
            assert_eq!(
                report.verdict,
                Verdict::Pass,
                "{settings} seed {seed}: {}",
                report.render(false)
            );
            assert!(
                report.difference < 1e-8,
                "{settings}: {}",
                report.difference
            );
        }
    }
}

#[test]
fn gpu_whole_passes_match_the_cpu_for_every_model_in_both_precisions() {
    let Some(ctx) = gpu() else { return };
    for (settings, widths) in MODELS {
        let p = problem(settings, widths, 5);
        for precision in gpu_precisions(&ctx) {
            let seen = match precision {
                Precision::F32 => p.rounded_to_f32(),
                Precision::F64 => p.clone(),
            };
            let eps = 1e-3;
            let run =
                gradcheck::gpu::full::evaluate(&ctx, &seen, eps, precision, None, &Silent).unwrap();
            let reference = central_differences(&seen, eps, precision, &Silent).unwrap();
            let u = precision.unit_roundoff();
            for i in 0..seen.net().num_params() {
                for (got, want) in [
                    (run.estimates.j_plus[i], reference.j_plus[i]),
                    (run.estimates.j_minus[i], reference.j_minus[i]),
                ] {
                    // A cost is a sum over m·n terms, each within a few roundings.
                    let tolerance = 2000.0 * u * want.abs().max(1.0);
                    assert!(
                        (got - want).abs() <= tolerance,
                        "{settings} {precision:?} {}: gpu {got}, cpu {want}",
                        seen.net().layout().coordinate_name(i)
                    );
                }
                let (plus, minus) = perturbed_pair(seen.net().flatten()[i], eps, precision);
                assert!(plus > minus);
            }
        }
    }
}

#[test]
fn every_model_checks_on_the_gpu_and_planted_bugs_fail_on_their_tensor() {
    let Some(ctx) = gpu() else { return };
    if !common::gpu_has_f64(&ctx) {
        return; // f32 whole passes resolve ~1e-3; the f32 ops are compared above
    }
    for (settings, widths) in MODELS {
        let p = problem(settings, widths, 9);
        for bug in ["dW1=1.01", "db2=1.5"] {
            let opts = CheckOptions {
                device: DeviceChoice::Gpu,
                precision: PrecisionChoice::F64,
                method: Method::Full,
                ..Default::default()
            };
            let engine = Engine::new(&opts).unwrap();
            let eval = engine.evaluate(&p, &opts).unwrap();
            let clean = judge("t", &eval, &Gradients::Backprop(None), &opts).unwrap();
            assert_eq!(
                clean.verdict,
                Verdict::Pass,
                "{settings}: {}",
                clean.render(false)
            );
            let spec: BugSpec = bug.parse().unwrap();
            let buggy = judge("t", &eval, &Gradients::Backprop(Some(spec)), &opts).unwrap();
            let failing = failing_tensors(&buggy);
            let tensor = &bug[1..bug.find('=').unwrap()];
            assert_eq!(
                failing,
                [tensor],
                "{settings} {bug}: {}",
                buggy.render(false)
            );
        }
    }
}

/// The GPU's series kernel against the CPU's evaluation of the same series, every model,
/// both precisions: the same cost changes within a few roundings of their terms.
#[test]
fn gpu_series_match_the_cpu_for_every_model_in_both_precisions() {
    use gradcheck::cpu::series::{delta_costs, Series};
    let Some(ctx) = gpu() else { return };
    for (settings, widths) in MODELS {
        let p = problem(settings, widths, 7);
        for precision in gpu_precisions(&ctx) {
            let seen = match precision {
                Precision::F32 => p.rounded_to_f32(),
                Precision::F64 => p.clone(),
            };
            let series = Series::new(&seen);
            let all: Vec<usize> = (0..seen.net().num_params()).collect();
            let eps = 1e-4;
            let gpu = gradcheck::gpu::delta::evaluate_series(
                &ctx,
                (&seen, &series),
                eps,
                precision,
                &all,
                Some(64),
                &Silent,
            )
            .unwrap();
            let cpu = delta_costs(&seen, &series, eps, &all, &Silent).unwrap();
            let u = precision.unit_roundoff();
            for (i, (g, c)) in gpu.deltas.iter().zip(&cpu).enumerate() {
                // Both round-off bounds, and what either sum may absorb of the terms beyond
                // the first (the truncation, bounded term by term).
                let tolerance = (g.roundoff(u) + c.roundoff(Precision::F64.unit_roundoff()))
                    / (2.0 * eps)
                    + series.truncation_bound(seen.locate(i).unwrap(), eps);
                let estimate =
                    |d: &gradcheck::estimate::DeltaCost| (d.plus - d.minus) / (2.0 * eps);
                let (got, want) = (estimate(g), estimate(c));
                assert!(
                    (got - want).abs() <= tolerance,
                    "{settings} {precision:?} {}: gpu {got}, cpu {want}",
                    seen.net().layout().coordinate_name(i)
                );
            }
        }
    }
}

/// Asserts that the delta method's estimates of `p` agree with the full method's,
/// coordinate by coordinate: within 1e-9 relative, plus the full method's own round-off and
/// truncation bounds (its steps are 10× longer and its costs cancel). Coordinates whose step
/// may cross a kink are undecided by either method and not compared; at least
/// `min_share` of them must be.
fn assert_delta_matches_full(p: &Problem, what: &str, min_share: f64) {
    let opts = cpu_opts();
    let engine = Engine::new(&opts).unwrap();
    let delta = engine.evaluate(p, &opts).unwrap();
    assert_eq!(delta.method, Method::Delta);
    let full_opts = CheckOptions {
        method: Method::Full,
        ..cpu_opts()
    };
    let full = engine.evaluate(p, &full_opts).unwrap();
    let (d, f) = (&delta.estimates, &full.estimates);
    let mut compared = 0;
    for i in 0..d.len() {
        if d.truncation(i) > 1.0 || f.truncation(i) > 1.0 {
            continue;
        }
        let bound = 1e-9 * f.gradapprox[i].abs() + f.noise[i] + f.truncation(i) + d.noise[i];
        assert!(
            (d.gradapprox[i] - f.gradapprox[i]).abs() <= bound,
            "{what} {}: delta {}, full {} (bound {bound:e})",
            p.net().layout().coordinate_name(i),
            d.gradapprox[i],
            f.gradapprox[i]
        );
        compared += 1;
    }
    assert!(
        compared as f64 >= min_share * d.len() as f64,
        "{what}: {compared} of {}",
        d.len()
    );
}

/// The delta method against the full method for every model of [`MODELS`].
#[test]
fn delta_agrees_with_the_full_method_for_every_model() {
    for (settings, widths) in MODELS {
        for seed in 0..2 {
            let p = problem(settings, widths, 20 + seed);
            assert_delta_matches_full(&p, &format!("{settings} seed {seed}"), 0.9);
        }
    }
}

/// The whole test matrix — every activation × loss × L2 × dropout, on a small net.
#[test]
fn delta_agrees_with_the_full_method_over_the_whole_matrix() {
    let mut combinations = 0;
    for hidden in ["relu", "leaky_relu:0.2", "tanh", "sigmoid", "identity"] {
        for loss in ["bce", "softmax", "mse", "mse_mean", "sse"] {
            for l2 in ["", " l2=0.4"] {
                for dropout in ["", " keep_prob=0.75"] {
                    let settings = format!("hidden={hidden} loss={loss}{l2}{dropout}");
                    let p = problem(&settings, &[5, 6, 4, 3], 30 + combinations);
                    assert_delta_matches_full(&p, &settings, 0.8);
                    combinations += 1;
                }
            }
        }
    }
    assert_eq!(combinations, 100);
}

/// The course's Regularization exercise: a 3-layer ReLU/sigmoid net with L2 and with
/// dropout, each backprop with the bug people make — the L2 term left out of dW, and the
/// dropout mask applied in backprop without the 1/keep_prob.
#[test]
fn the_regularization_exercise_catches_its_bugs() {
    let opts = cpu_opts();
    let engine = Engine::new(&opts).unwrap();
    // L2 (lambd = 0.7, as in the exercise) with the regulariser's gradient forgotten.
    let l2 = problem("l2=0.7", &[3, 20, 3, 1], 3);
    let eval = engine.evaluate(&l2, &opts).unwrap();
    let pass = judge("t", &eval, &Gradients::Backprop(None), &opts).unwrap();
    assert_eq!(pass.verdict, Verdict::Pass, "{}", pass.render(false));
    let without_l2 = common::without_penalties(&l2);
    let forgot = backprop::gradients(&without_l2);
    let report = judge("t", &eval, &Gradients::given(forgot, "forgot L2"), &opts).unwrap();
    let failing = failing_tensors(&report);
    assert_eq!(failing, ["W1", "W2", "W3"], "{}", report.render(false));

    // Dropout (keep_prob = 0.86) whose backprop masks but does not rescale.
    let dropout = problem("keep_prob=0.86", &[3, 20, 3, 1], 4);
    let eval = engine.evaluate(&dropout, &opts).unwrap();
    let pass = judge("t", &eval, &Gradients::Backprop(None), &opts).unwrap();
    assert_eq!(pass.verdict, Verdict::Pass, "{}", pass.render(false));
    assert!(pass.difference < 1e-6, "cs231n's bar for a dropout net");
    let keep = dropout.model().dropout.as_ref().unwrap().keep_prob;
    // Backprop with `dA = dA·D` (no `/ keep_prob`): the forward pass (and so dW3) is
    // right; layer 2's gradients are off by keep_prob, layer 1's by keep_prob².
    let mut grad = backprop::gradients(&dropout);
    let layout = dropout.net().layout();
    for (t, factor) in layout.tensors()[..4]
        .iter()
        .zip([keep * keep, keep * keep, keep, keep])
    {
        for g in &mut grad[t.range()] {
            *g *= factor;
        }
    }
    let report = judge("t", &eval, &Gradients::given(grad, "dropout bug"), &opts).unwrap();
    assert_eq!(report.verdict, Verdict::Fail);
    let failing = failing_tensors(&report);
    assert_eq!(
        failing,
        ["W1", "b1", "W2", "b2"],
        "{}",
        report.render(false)
    );
}

/// The same network exported in both layouts gives the same verdict and difference, with
/// coordinates named in each file's own indices.
#[test]
fn rows_and_columns_give_the_same_verdicts() {
    let dir = tempfile::TempDir::new().unwrap();
    let mut reports = Vec::new();
    for layout in ["columns", "rows"] {
        let path = dir.path().join(format!("{layout}.npz"));
        gradcheck()
            .args([
                "export", "--layers", "7,6,4", "--loss", "softmax", "--hidden", "tanh",
            ])
            .args(["--l2", "0.2", "--layout", layout, "--bug", "dW1=1.01", "-o"])
            .arg(&path)
            .assert()
            .success();
        let out = check_cpu(&["--json", "-"], &path, 1).stdout;
        let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(json["layout"], layout);
        reports.push(json);
    }
    assert_eq!(reports[0]["difference"], reports[1]["difference"]);
    assert_eq!(reports[0]["verdict"], reports[1]["verdict"]);
    // The worst coordinate is the same entry, named by each layout's indices.
    let name = |r: &serde_json::Value| r["worst"][0]["name"].as_str().unwrap().to_string();
    let (c, r) = (name(&reports[0]), name(&reports[1]));
    let indices = |s: &str| -> Vec<String> {
        s[s.find('[').unwrap() + 1..s.len() - 1]
            .split(',')
            .map(String::from)
            .collect()
    };
    let (ci, ri) = (indices(&c), indices(&r));
    assert_eq!(ci, [ri[1].clone(), ri[0].clone()], "{c} vs {r}");
}

/// cs231n's two-layer net: X (N, D), W1 (D, H), b1 (H,), W2 (H, C), b2 (C,), integer
/// labels y (N,), softmax loss with `reg`, gradients in a dict keyed like the parameters.
#[test]
fn a_cs231n_two_layer_net_in_rows_with_softmax_and_reg() {
    use ndarray::{Array1, Array2};
    let dir = tempfile::TempDir::new().unwrap();
    let p = problem(
        "hidden=relu loss=softmax l2=0.5 layout=rows",
        &[4, 10, 3],
        2,
    );
    let grad = backprop::gradients(&p);
    let layout = p.net().layout();
    let mut params: Vec<(String, Array2<f64>)> = vec![("X".into(), p.x().t().to_owned())];
    let mut grads: Vec<(String, Array2<f64>)> = Vec::new();
    for (l, layer) in p.net().layers().iter().enumerate() {
        let n = l + 1;
        params.push((format!("W{n}"), layer.w.t().to_owned()));
        params.push((
            format!("b{n}"),
            layer.b.clone().insert_axis(ndarray::Axis(0)),
        ));
        let w = &layout.tensors()[2 * l];
        let b = &layout.tensors()[2 * l + 1];
        let dw = Array2::from_shape_vec(layer.w.dim(), grad[w.range()].to_vec()).unwrap();
        grads.push((format!("W{n}"), dw.t().to_owned()));
        grads.push((
            format!("b{n}"),
            Array1::from(grad[b.range()].to_vec()).insert_axis(ndarray::Axis(0)),
        ));
    }
    // Integer class labels, (N,) as cs231n's y, stored here as a 1×N row then read as (N,)
    // by a second archive below.
    let classes: Vec<f64> = p
        .y()
        .columns()
        .into_iter()
        .map(|c| c.iter().position(|&v| v == 1.0).unwrap() as f64)
        .collect();
    let data = common::write_npz(&dir, "net.npz", &params, false);
    {
        // Add y as a 1-D int64 array, as np.savez writes np.array([...]).
        let file = std::fs::File::options()
            .read(true)
            .write(true)
            .open(&data)
            .unwrap();
        let mut zip = zip::ZipWriter::new_append(file).unwrap();
        let mut bytes = Vec::new();
        ndarray_npy::WriteNpyExt::write_npy(
            &Array1::from_iter(classes.iter().map(|&c| c as i64)),
            &mut bytes,
        )
        .unwrap();
        zip.start_file("Y.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut zip, &bytes).unwrap();
        zip.finish().unwrap();
    }
    let grads_path = common::write_npz(&dir, "grads.npz", &grads, false);
    // λ/(2m) = reg/2 (cs231n's 0.5·reg·ΣW²) → λ = reg·m; here m = 11, reg = 0.5/11.
    let run = |grads: &std::path::Path| {
        gradcheck()
            .args([
                "check", "--device", "cpu", "--loss", "softmax", "--l2", "0.5", "--grads",
            ])
            .arg(grads)
            .arg(&data)
            .output()
            .unwrap()
    };
    let ok = run(&grads_path);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(text.contains("layout rows"), "{text}");
    // A buggy dW1 (the ReLU mask forgotten would do; a scaled entry is enough here).
    let mut bad = grads.clone();
    bad[0].1[[2, 3]] *= 1.5;
    let bad_path = common::write_npz(&dir, "bad.npz", &bad, false);
    let out = run(&bad_path);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("W1[2,3]"),
        "named in the user's own indices: {text}"
    );
}

#[test]
fn labels_and_settings_are_checked_per_loss() {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("net.npz");
    gradcheck()
        .args(["export", "--layers", "4,5,3", "--loss", "mse", "-o"])
        .arg(&path)
        .assert()
        .success();
    // mse targets are not one-hot: the file's own setting says mse; softmax refuses them.
    check_cpu(&[], &path, 0);
    let out = check_cpu(&["--loss", "softmax"], &path, 2).stderr;
    let err = String::from_utf8_lossy(&out);
    assert!(err.contains("labels"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    gradcheck()
        .args(["check", "--layers", "4,5,3", "--hidden", "tanh,relu"])
        .assert()
        .code(2);
    gradcheck()
        .args(["check", "--layers", "4,5,3", "--hidden", "swish"])
        .assert()
        .code(2);
    gradcheck()
        .args(["check", "--layers", "4,5,3", "--keep-prob", "1.5"])
        .assert()
        .code(2);
}
