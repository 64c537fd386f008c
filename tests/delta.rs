//! The delta method: against the full method and backprop, on CPU and GPU, with kinks.

mod common;

use common::{gpu, gpu_precisions, random_problems, FIXTURE};
use gradcheck::check::{compare, Verdict};
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::cpu::delta::delta_costs;
use gradcheck::cpu::sensitivity::Sensitivity;
use gradcheck::cpu::{backprop, finite_diff::central_differences, forward};
use gradcheck::estimate::{Estimates, F64_UNIT_ROUNDOFF};
use gradcheck::generate::NetworkSpec;
use gradcheck::gpu::delta;
use gradcheck::io::read_npz;
use gradcheck::model::{Layer, Mlp};
use gradcheck::monitor::Silent;
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision};
use gradcheck::problem::Problem;

fn cpu_delta(p: &Problem, eps: f64) -> Estimates {
    let all: Vec<usize> = (0..p.net().num_params()).collect();
    let j = p.cost();
    Estimates::from_deltas(
        j,
        &delta_costs(p, &Sensitivity::new(p), eps, &all, &Silent).unwrap(),
        &vec![eps; all.len()],
        F64_UNIT_ROUNDOFF,
    )
}

/// Random networks up to a few hundred units wide, kept small enough for lavapipe in CI.
fn wider_problems() -> Vec<Problem> {
    let mut problems = random_problems();
    problems.push(
        NetworkSpec::new(vec![120, 200, 50, 1], 8, 11)
            .unwrap()
            .generate(),
    );
    problems.push(
        NetworkSpec::new(vec![30, 300, 2], 5, 12)
            .unwrap()
            .generate(),
    );
    problems
}

fn options(device: DeviceChoice, precision: Precision) -> CheckOptions {
    CheckOptions {
        device,
        precision: precision.into(),
        method: Method::Delta,
        ..Default::default()
    }
}

#[test]
fn cpu_delta_agrees_with_the_full_method_coordinate_by_coordinate() {
    for p in random_problems() {
        let full = central_differences(&p, 1e-6, Precision::F64, &Silent).unwrap();
        let delta = cpu_delta(&p, 1e-6);
        for i in 0..full.len() {
            // Both are central differences at the same points; they differ by round-off.
            let allowed = full.noise[i] + delta.noise[i] + 1e-9 * full.gradapprox[i].abs();
            let diff = (full.gradapprox[i] - delta.gradapprox[i]).abs();
            assert!(
                diff <= allowed,
                "{:?} coordinate {i}: {diff:e} > {allowed:e}",
                p.net().widths()
            );
        }
    }
}

#[test]
fn correct_backprop_passes_with_delta_on_the_cpu_at_1e_9() {
    for p in wider_problems() {
        let grad = backprop::gradients(&p);
        let est = cpu_delta(&p, 1e-6);
        let cmp = compare(p.net().layout(), &grad, &est, 2e-7, 3);
        assert_eq!(
            cmp.verdict,
            Verdict::Pass,
            "{:?}: {:?}",
            p.net().widths(),
            cmp.worst
        );
        assert!(
            cmp.difference <= 1e-9,
            "{:?}: {}",
            p.net().widths(),
            cmp.difference
        );
    }
}

#[test]
fn gpu_delta_matches_the_cpu_delta_and_reaches_its_accuracy_targets() {
    let Some(ctx) = gpu() else { return };
    let fixture = read_npz(std::path::Path::new(FIXTURE)).unwrap().problem;
    for precision in gpu_precisions(&ctx) {
        let opts = options(DeviceChoice::Gpu, precision);
        let engine = Engine::new(&opts).unwrap();
        let mut worst = 0.0f64;
        for p in std::iter::once(fixture.clone()).chain(wider_problems()) {
            let eval = engine.evaluate(&p, &opts).unwrap();
            let report = judge("delta", &eval, &Gradients::Backprop(None), &opts).unwrap();
            // In f32, a tensor whose gradient sums terms of both signs over the examples
            // (an output bias) can be below the resolution: undecided, never failed.
            for t in &report.tensors {
                let expected =
                    if precision == Precision::F32 && t.resolution > report.header.threshold {
                        Verdict::Inconclusive
                    } else {
                        Verdict::Pass
                    };
                assert_eq!(
                    t.verdict,
                    expected,
                    "{precision:?} {}",
                    report.render(false)
                );
            }
            assert_ne!(
                report.verdict,
                Verdict::Fail,
                "{precision:?} {:?}: {:?}",
                p.net().widths(),
                report.render(false)
            );
            let target = if precision == Precision::F64 {
                1e-9
            } else {
                1e-6
            };
            assert!(
                report.difference <= target,
                "{precision:?} {:?}: {}",
                p.net().widths(),
                report.difference
            );
            worst = worst.max(report.difference);
            if precision == Precision::F64 {
                // Same algorithm, same points: the GPU's f64 agrees with the CPU's within the
                // round-off bound, plus a floor far below any gradient that matters.
                let reference = cpu_delta(&p, opts.eps_in(opts.method, precision));
                let floor = 1e-14
                    * reference
                        .gradapprox
                        .iter()
                        .fold(0.0f64, |a, g| a.max(g.abs()));
                for i in 0..reference.len() {
                    let gap = (eval.estimates.gradapprox[i] - reference.gradapprox[i]).abs();
                    assert!(
                        gap <= reference.noise[i] + floor,
                        "{:?} coordinate {i}: {gap:e}",
                        p.net().widths()
                    );
                }
            }
        }
        eprintln!("GPU {precision:?} delta: worst difference on correct backprop {worst:.2e}");
    }
}

#[test]
fn planted_bugs_fail_with_delta_in_both_precisions() {
    let Some(ctx) = gpu() else { return };
    let input = read_npz(std::path::Path::new(FIXTURE)).unwrap();
    let buggy = Gradients::Given(input.gradients.unwrap());
    for precision in gpu_precisions(&ctx) {
        let opts = CheckOptions {
            eps: Some(1e-7),
            ..options(DeviceChoice::Gpu, precision)
        };
        let eval = Engine::new(&opts)
            .unwrap()
            .evaluate(&input.problem, &opts)
            .unwrap();
        let report = judge("fixture", &eval, &buggy, &opts).unwrap();
        let failing = report.failing_tensors();
        assert_eq!(failing, ["b1", "W2"], "{precision:?}");
        assert!(
            (report.difference - 0.2850931).abs() < 1e-7,
            "{precision:?}: {}",
            report.difference
        );
    }
}

#[test]
fn one_entry_off_by_1e_3_among_100k_parameters_is_named() {
    let p = NetworkSpec::new(vec![300, 300, 30, 1], 8, 5)
        .unwrap()
        .generate();
    assert!(p.net().num_params() > 99_000);
    let layout = p.net().layout();
    let mut grad = backprop::gradients(&p);
    let est = cpu_delta(&p, 1e-6);
    assert_eq!(
        compare(layout, &grad, &est, 2e-7, 10).verdict,
        Verdict::Pass
    );
    let max = grad.iter().fold(0.0f64, |a, g| a.max(g.abs()));
    let i = (1000..grad.len())
        .find(|&i| grad[i].abs() > 0.05 * max)
        .unwrap();
    grad[i] *= 1.0 + 1e-3;
    let cmp = compare(layout, &grad, &est, 2e-7, 10);
    assert_eq!(cmp.verdict, Verdict::Fail);
    assert!(
        cmp.worst.iter().any(|c| c.index == i),
        "{} not among {:?}",
        layout.coordinate_name(i),
        cmp.worst
    );
}

/// A network where unit 2 of layer 1 sits exactly on its kink for example 0:
/// X[:, 0] = 0 and b1[2] = 0, so Z1[2, 0] = 0 and any step of b1[2] crosses it.
fn kinked_problem() -> Problem {
    let base = NetworkSpec::new(vec![4, 6, 3, 1], 5, 21)
        .unwrap()
        .generate();
    let mut layers: Vec<Layer> = base.net().layers().to_vec();
    layers[0].b[2] = 0.0;
    let mut x = base.x().clone();
    x.column_mut(0).fill(0.0);
    Problem::new(Mlp::new(layers).unwrap(), x, base.y().clone()).unwrap()
}

#[test]
fn a_unit_on_its_kink_is_judged_by_the_conventions_and_a_real_bug_beside_it_still_fails() {
    let mut cases = vec![(DeviceChoice::Cpu, Precision::F64)];
    if let Some(ctx) = gpu() {
        cases.extend(
            gpu_precisions(&ctx)
                .into_iter()
                .map(|p| (DeviceChoice::Gpu, p)),
        );
    }
    let p = kinked_problem();
    let layout = p.net().layout();
    let b1 = layout.tensor_named("b1").unwrap().offset;
    for (device, precision) in cases {
        {
            let opts = options(device, precision);
            let eval = Engine::new(&opts).unwrap().evaluate(&p, &opts).unwrap();
            let report = judge("kink", &eval, &Gradients::Backprop(None), &opts).unwrap();
            let b1_check = report.tensors.iter().find(|t| t.name == "b1").unwrap();
            assert_eq!(b1_check.kink_coordinates, 1, "{device:?} {precision:?}");
            assert_eq!(report.kink_coordinates, 1, "{device:?} {precision:?}");
            // b1 passes at its kink; in f32 another tensor may be below the resolution.
            assert_eq!(b1_check.verdict, Verdict::Pass, "{device:?} {precision:?}");
            if precision == Precision::F64 {
                assert_eq!(report.verdict, Verdict::Pass, "{}", report.render(false));
            } else {
                assert_ne!(report.verdict, Verdict::Fail, "{}", report.render(false));
            }

            let mut grad = backprop::gradients(&eval.problem);
            let other = (b1..b1 + 6)
                .find(|&i| i != b1 + 2 && grad[i].abs() > 1e-3)
                .unwrap();
            grad[other] *= 1.0 + 1e-3;
            let buggy = Gradients::given(grad, "bug beside a kink");
            let report = judge("kink", &eval, &buggy, &opts).unwrap();
            assert_eq!(report.verdict, Verdict::Fail, "{device:?} {precision:?}");
            assert_eq!(report.worst[0].index, other);
            let b1_check = report.tensors.iter().find(|t| t.name == "b1").unwrap();
            assert_eq!(b1_check.verdict, Verdict::Fail);
        }
    }
}

#[test]
fn gpu_delta_is_bit_identical_run_to_run_and_across_chunk_sizes() {
    let Some(ctx) = gpu() else { return };
    let p = &random_problems()[4];
    let all: Vec<usize> = (0..p.net().num_params()).collect();
    for precision in gpu_precisions(&ctx) {
        let runs: Vec<Vec<u64>> = [None, None, Some(7), Some(1)]
            .into_iter()
            .map(|chunk| {
                let sens = Sensitivity::new(p);
                let run = delta::evaluate(&ctx, (p, &sens), 1e-5, precision, &all, chunk, &Silent)
                    .unwrap();
                run.deltas
                    .iter()
                    .flat_map(|d| [d.plus.to_bits(), d.minus.to_bits(), d.sizes.to_bits()])
                    .collect()
            })
            .collect();
        assert!(runs.windows(2).all(|w| w[0] == w[1]), "{precision:?}");
        assert!(runs[0].iter().all(|&b| f64::from_bits(b).is_finite()));
    }
}

/// Which ReLU inputs are positive, layer by layer (the output layer excluded).
fn relu_masks(net: &Mlp, x: &ndarray::Array2<f64>) -> Vec<Vec<bool>> {
    let acts = forward::forward(
        net,
        &gradcheck::model::Model::classic(net.layers().len()),
        x.view(),
    );
    let hidden = acts.z.len() - 1;
    acts.z[..hidden]
        .iter()
        .map(|z| z.iter().map(|&v| v > 0.0).collect())
        .collect()
}

/// The row gains linearise a ReLU network at θ: where a step flips no ReLU the delta
/// method's change is the forward pass's exactly; where it flips one, the forward pass's
/// central difference is no estimate of the derivative any more, but the linearised one
/// still is (no unit sits on its kink here), within its truncation bound.
#[test]
fn the_linearised_change_is_exact_between_kinks_and_estimates_the_derivative_across_them() {
    // Depth 4 so that crossings two and three layers downstream count too; a step large
    // enough that many coordinates cross.
    let p = NetworkSpec::new(vec![6, 8, 7, 5, 1], 9, 31)
        .unwrap()
        .generate();
    let eps = 0.05;
    let n = p.net().num_params();
    let all: Vec<usize> = (0..n).collect();
    let sens = Sensitivity::new(&p);
    let deltas = delta_costs(&p, &sens, eps, &all, &Silent).unwrap();
    let grad = backprop::gradients(&p);
    let base_masks = relu_masks(p.net(), p.x());
    let j = p.cost();
    let (mut crossing, mut misled) = (0, 0);
    for (i, delta) in deltas.iter().enumerate() {
        let mut crossed = false;
        let mut changes = [0.0; 2];
        for (k, sign) in [1.0, -1.0].into_iter().enumerate() {
            let mut net = p.net().clone();
            *net.param_mut(i) += sign * eps;
            crossed |= relu_masks(&net, p.x()) != base_masks;
            changes[k] = p.cost_of(&net) - j;
        }
        let estimate = (delta.plus - delta.minus) / (2.0 * eps);
        let bound = sens.truncation_bound(p.locate(i).unwrap(), eps) + 1e-12;
        assert!(
            (estimate - grad[i]).abs() <= bound,
            "coordinate {i}: {estimate} vs {} (bound {bound:e})",
            grad[i]
        );
        if crossed {
            crossing += 1;
            let forward = (changes[0] - changes[1]) / (2.0 * eps);
            misled += usize::from((forward - grad[i]).abs() > bound);
        } else {
            for (got, want) in [delta.plus, delta.minus].into_iter().zip(changes) {
                assert!(
                    (got - want).abs() <= 1e-12 * j.abs().max(1.0),
                    "coordinate {i}: {got} vs {want}"
                );
            }
        }
    }
    assert!(crossing > n / 20 && crossing < n, "{crossing} of {n} cross");
    assert!(
        misled > 0,
        "no crossing misled the forward pass's difference"
    );
}

#[test]
fn a_small_memory_budget_slices_the_gpu_work_without_changing_a_bit() {
    let Some(ctx) = gpu() else { return };
    let p = NetworkSpec::new(vec![64, 32, 16, 1], 16, 3)
        .unwrap()
        .generate();
    let n = p.net().num_params() as u64;
    // Just over what the host side needs, so that the GPU outputs must be sliced.
    let budget =
        gradcheck::memory::host_bytes(&p.net().widths(), p.examples(), n as usize) + 8 * 1024;
    for precision in gpu_precisions(&ctx) {
        let bytes_per_item = gradcheck::gpu::delta::OUTPUTS as u64 * precision.size() as u64;
        let slice = gradcheck::memory::slice_items(u64::MAX, budget, bytes_per_item) as u64;
        assert!(
            slice < n,
            "{precision:?}: slice {slice} of {n}: the test must slice"
        );
        let whole = options(DeviceChoice::Gpu, precision);
        let sliced = CheckOptions {
            max_memory: Some(budget),
            ..whole.clone()
        };
        let bits = |opts: &CheckOptions| -> Vec<u64> {
            let eval = Engine::new(opts).unwrap().evaluate(&p, opts).unwrap();
            let e = eval.estimates;
            e.j_plus
                .iter()
                .chain(&e.j_minus)
                .chain(&e.noise)
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&whole), bits(&sliced), "{precision:?}");
    }
}

/// The delta method's round-off bound is worst case (`DeltaCost::roundoff`): the GPU's f32
/// sums never leave it, over small and large m; the largest deviation from the CPU's f64
/// ones, as a share of the bound, is printed (how much the worst case overstates).
#[test]
fn the_delta_roundoff_model_bounds_observed_f32_errors() {
    let Some(ctx) = gpu() else { return };
    let mut worst = 0.0f64;
    let large = [
        common::network_of("", &[30, 20, 1], 2000, 3),
        common::network_of("", &[10, 8, 4], 3000, 4),
    ];
    for p in wider_problems().into_iter().chain(large) {
        let seen = p.rounded_to_f32();
        let sens = Sensitivity::new(&seen);
        let all: Vec<usize> = (0..seen.net().num_params()).collect();
        let eps = 1e-5;
        let exact = delta_costs(&seen, &sens, eps, &all, &Silent).unwrap();
        let single = delta::evaluate(
            &ctx,
            (&seen, &sens),
            eps,
            Precision::F32,
            &all,
            None,
            &Silent,
        )
        .unwrap()
        .deltas;
        let est = Estimates::from_deltas(
            0.0,
            &single,
            &vec![eps; all.len()],
            Precision::F32.unit_roundoff(),
        );
        for (k, (e, s)) in exact.iter().zip(&single).enumerate() {
            let err = ((s.plus - s.minus) - (e.plus - e.minus)).abs() / (2.0 * eps);
            if est.noise[k] > 0.0 {
                worst = worst.max(err / est.noise[k]);
            } else {
                assert_eq!(err, 0.0, "coordinate {k}");
            }
        }
    }
    eprintln!("worst observed delta round-off (GPU f32): {worst:.4} of the bound");
    assert!(worst <= 1.0, "observed {worst} of the bound");
}
