//! The delta method's sums as matrix products against the same sums taken parameter by
//! parameter, over every model: five activations, three losses, with and without L2 and
//! dropout — coordinate by coordinate, within the round-off both bound; and for the
//! exercise's model against the closed form the GPU's gain kernel evaluates.

mod common;

use common::network_of;
use gradcheck::cpu::delta;
use gradcheck::cpu::products;
use gradcheck::cpu::sensitivity::Sensitivity;
use gradcheck::cpu::series::Series;
use gradcheck::estimate::{DeltaCost, F64_UNIT_ROUNDOFF};
use gradcheck::monitor::Silent;
use gradcheck::problem::Problem;

const U: f64 = F64_UNIT_ROUNDOFF;

/// Every activation, loss, L2 and dropout, as settings lines.
fn model_matrix() -> Vec<String> {
    let mut models = Vec::new();
    for hidden in ["relu", "leaky_relu", "tanh", "sigmoid", "identity"] {
        for loss in ["bce", "softmax", "mse"] {
            for l2 in ["", " l2=0.7"] {
                for dropout in ["", " keep_prob=0.8"] {
                    models.push(format!("hidden={hidden} loss={loss}{l2}{dropout}"));
                }
            }
        }
    }
    models
}

fn problem(settings: &str, seed: u64) -> Problem {
    let outputs = if settings.contains("softmax") { 3 } else { 1 };
    network_of(settings, &[5, 7, 4, outputs], 9, seed)
}

fn estimate(d: &DeltaCost, eps: f64) -> f64 {
    (d.plus - d.minus) / (2.0 * eps)
}

#[test]
fn products_and_per_parameter_sums_agree_coordinate_by_coordinate_over_every_model() {
    let mut compared = 0;
    for (seed, settings) in model_matrix().iter().enumerate() {
        let p = problem(settings, 40 + seed as u64);
        let series = Series::new(&p);
        let all: Vec<usize> = (0..p.net().num_params()).collect();
        for eps in [1e-6, 1e-3] {
            let fast = products::delta_costs(&p, &series, eps, &all, &Silent).unwrap();
            for (&i, d) in all.iter().zip(&fast) {
                let at = p.locate(i).unwrap();
                let each = series.delta_cost(at, eps);
                let noise = (d.roundoff(U) + each.roundoff(U)) / (2.0 * eps);
                let gap = (estimate(d, eps) - estimate(&each, eps)).abs();
                assert!(
                    gap <= noise,
                    "{settings}, eps {eps}, coordinate {i}: {gap:e} beyond the round-off {noise:e}"
                );
                assert!((d.plus - each.plus).abs() <= d.roundoff(U) + each.roundoff(U));
                if at.2.is_some() {
                    // The odd orders' sum, known, within the per-term bound.
                    let known = d.truncation.expect("the products know the truncation");
                    let bound = series.truncation_bound(at, eps);
                    assert!(known <= bound * (1.0 + 1e-9) + 1e-20, "{settings} {i}");
                    compared += 1;
                }
            }
        }
    }
    assert!(compared > 60 * 2 * 60, "{compared}");
}

#[test]
fn the_series_of_the_exercise_s_model_matches_the_gain_kernel_s_closed_form() {
    for seed in 0..4 {
        let p = problem("hidden=relu loss=bce", 70 + seed);
        let series = Series::new(&p);
        let sens = Sensitivity::new(&p);
        let all: Vec<usize> = (0..p.net().num_params()).collect();
        for eps in [1e-7, 1e-4] {
            let fast = products::delta_costs(&p, &series, eps, &all, &Silent).unwrap();
            let closed = delta::delta_costs(&p, &sens, eps, &all, &Silent).unwrap();
            for ((&i, d), c) in all.iter().zip(&fast).zip(&closed) {
                let at = p.locate(i).unwrap();
                // The closed form's central difference is within its Taylor bound of the
                // derivative, the series' within its known odd terms.
                let truncation = d
                    .truncation
                    .unwrap_or_else(|| series.truncation_bound(at, eps))
                    + sens.truncation_bound(at, eps);
                let noise = (d.roundoff(U) + c.roundoff(U)) / (2.0 * eps);
                let gap = (estimate(d, eps) - estimate(c, eps)).abs();
                assert!(
                    gap <= noise + truncation,
                    "seed {seed} eps {eps} {i}: {gap:e}"
                );
            }
        }
    }
}

#[test]
fn the_products_give_the_same_bits_on_one_thread_as_on_many() {
    let p = network_of("hidden=tanh loss=softmax", &[40, 30, 20, 4], 33, 5);
    let series = Series::new(&p);
    let all: Vec<usize> = (0..p.net().num_params()).collect();
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| products::delta_costs(&p, &series, 1e-5, &all, &Silent).unwrap())
    };
    let (one, many) = (run(1), run(4));
    assert_eq!(one, many);
    assert!(one.iter().any(|d| d.plus != 0.0));
}

#[test]
fn a_sample_is_summed_parameter_by_parameter_and_agrees_with_the_whole() {
    let p = network_of("hidden=relu loss=bce", &[60, 50, 1], 20, 8);
    let series = Series::new(&p);
    let all: Vec<usize> = (0..p.net().num_params()).collect();
    let whole = products::delta_costs(&p, &series, 1e-6, &all, &Silent).unwrap();
    let sample: Vec<usize> = (0..all.len()).step_by(97).collect();
    let part = products::delta_costs(&p, &series, 1e-6, &sample, &Silent).unwrap();
    for (&i, d) in sample.iter().zip(&part) {
        // Too few per block for the products: evaluated one by one (no known truncation).
        assert!(d.truncation.is_none());
        let w = &whole[i];
        assert!((d.plus - w.plus).abs() <= d.roundoff(U) + w.roundoff(U));
    }
}

/// The GPU's products (shaders/products.wgsl) against the GPU's per-coordinate series
/// kernel on the same device values, and in f64 against the CPU's products: every model,
/// networks with partial tiles, rows in several blocks (a small memory budget), several
/// dispatches (a small chunk, bit for bit the same), and examples in several blocks.
#[test]
fn gpu_products_agree_with_the_per_coordinate_kernel_and_the_cpu() {
    use gradcheck::backend::{Backend, Rows, Settings};
    use gradcheck::gpu::delta::Prepared;
    let Some(ctx) = common::gpu() else { return };
    let mut cases: Vec<(String, Problem)> = model_matrix()
        .iter()
        .step_by(3)
        .enumerate()
        .map(|(seed, s)| (s.clone(), problem(s, 70 + seed as u64)))
        .collect();
    cases.push((
        "37-21-19-3".into(),
        network_of("loss=softmax", &[37, 21, 19, 3], 50, 7),
    ));
    cases.push((
        "3-4-1, 30000 examples".into(),
        network_of("hidden=tanh", &[3, 4, 1], 30_000, 8),
    ));
    let eps = 1e-3;
    let mut compared = 0;
    for precision in common::gpu_precisions(&ctx) {
        let u = precision.unit_roundoff();
        for (name, p) in &cases {
            let series = Series::new(p);
            let all: Vec<usize> = (0..p.net().num_params()).collect();
            let settings = |budget: u64, chunk: Option<usize>| Settings {
                precision,
                chunk,
                budget,
            };
            let run = |s: Settings| {
                ctx.delta_session(p, Rows::Series(&series), s)
                    .unwrap()
                    .run(eps, &all, &Silent)
                    .unwrap()
                    .values
            };
            let fast = run(settings(1 << 34, None));
            let blocked = run(settings(1 << 16, Some(256)));
            let bits = |v: &[DeltaCost]| -> Vec<u64> {
                v.iter()
                    .flat_map(|d| [d.plus.to_bits(), d.minus.to_bits()])
                    .collect()
            };
            assert_eq!(bits(&fast), bits(&blocked), "{name} {precision:?}: blocks");
            let each = Prepared::series(&ctx, (p, &series), precision)
                .unwrap()
                .evaluate(eps, &all, None, &Silent)
                .unwrap()
                .deltas;
            let cpu = products::delta_costs(p, &series, eps, &all, &Silent).unwrap();
            for (k, (d, e)) in fast.iter().zip(&each).enumerate() {
                let noise = (d.roundoff(u) + e.roundoff(u)) / (2.0 * eps);
                let gap = (estimate(d, eps) - estimate(e, eps)).abs();
                assert!(
                    gap <= noise,
                    "{name} {precision:?} coordinate {k}: {gap:e} beyond {noise:e}"
                );
                if precision == gradcheck::options::Precision::F64 {
                    let c = &cpu[k];
                    let noise = (d.roundoff(u) + c.roundoff(U)) / (2.0 * eps);
                    let gap = (estimate(d, eps) - estimate(c, eps)).abs();
                    assert!(gap <= noise, "{name} vs the CPU, coordinate {k}");
                    if let (Some(a), Some(b)) = (d.truncation, c.truncation) {
                        assert!((a - b).abs() <= 1e-6 * b.max(1e-300) + noise, "{name} {k}");
                    }
                }
                compared += 1;
            }
            // Every weight's truncation is known from its products.
            let weights = fast
                .iter()
                .zip(&all)
                .filter(|(_, &i)| p.locate(i).unwrap().2.is_some());
            for (d, i) in weights {
                assert!(
                    d.truncation.is_some(),
                    "{name}: weight {i} went per coordinate"
                );
            }
        }
    }
    assert!(compared > 1000, "{compared}");
}
