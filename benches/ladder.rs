//! Criterion benchmarks of whole checks (evaluation + comparison) over the parameter
//! ladder: CPU full, GPU full, CPU delta, GPU delta, in f32 and f64 where they apply, each
//! only up to the size where it still finishes in reasonable time.
//!
//!     cargo bench --bench ladder                              # the whole ladder
//!     GRADCHECK_BENCH_QUICK=1 cargo bench --bench ladder      # the two smallest sizes
//!
//! `cargo test` runs each benchmark once (criterion's test mode), on the two smallest
//! sizes, so the default test run stays short; `GRADCHECK_BENCH_FULL=1 cargo test` runs
//! the whole ladder there too.
//!
//! Each delta case also runs the ladder's networks with tanh hidden layers and, with ten
//! outputs, with a softmax output (the series delta method); the group names say which.
//!
//! The engine (and the GPU device) is opened outside the timed region. A case whose device
//! is missing is skipped with a message. `gradcheck bench` gives the same sweep as a table,
//! JSON and a plot.

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use gradcheck::bench::{ladder, Case};
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::generate::NetworkSpec;
use gradcheck::model::ModelOptions;
use gradcheck::options::{DeviceChoice, Method, Precision};

/// Each case and the largest parameter count it runs at: the full method is O(P²m), and
/// on lavapipe its 18,561-parameter check already takes over a minute.
const CASES: [(DeviceChoice, Method, Precision, usize); 6] = [
    (DeviceChoice::Cpu, Method::Full, Precision::F64, 20_000),
    (DeviceChoice::Gpu, Method::Full, Precision::F32, 3_000),
    (DeviceChoice::Gpu, Method::Full, Precision::F64, 3_000),
    (DeviceChoice::Cpu, Method::Delta, Precision::F64, usize::MAX),
    (DeviceChoice::Gpu, Method::Delta, Precision::F32, usize::MAX),
    (DeviceChoice::Gpu, Method::Delta, Precision::F64, usize::MAX),
];

fn checks(c: &mut Criterion) {
    // `cargo bench` passes --bench; `cargo test` does not, and gets the quick sizes.
    let benching = std::env::args().any(|a| a == "--bench");
    let quick = std::env::var_os("GRADCHECK_BENCH_QUICK").is_some()
        || (!benching && std::env::var_os("GRADCHECK_BENCH_FULL").is_none());
    let mut rungs = ladder();
    if quick {
        rungs.truncate(2);
    }
    // The models of each delta case: the exercise's, tanh, and softmax over ten classes.
    let models: [(&str, &str, usize); 3] = [
        ("", "", 0),
        ("/tanh", "hidden=tanh", 0),
        ("/softmax", "loss=softmax", 10),
    ];
    for (device, method, precision, max_params) in CASES {
        let case = Case {
            device,
            method,
            precision,
        };
        let opts = case.options(None);
        let engine = match Engine::new(&opts) {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!("skipping {device:?} {method:?} {precision:?}: {e}");
                continue;
            }
        };
        for &(suffix, settings, outputs) in &models {
            if method == Method::Full && !settings.is_empty() {
                continue;
            }
            let name = format!(
                "{}/{}/{}{suffix}",
                format!("{device:?}").to_lowercase(),
                method.as_str(),
                precision.as_str()
            );
            let mut group = c.benchmark_group(name);
            group.sampling_mode(SamplingMode::Flat).sample_size(10);
            if quick {
                group
                    .warm_up_time(Duration::from_millis(100))
                    .measurement_time(Duration::from_millis(500));
            }
            for rung in rungs.iter().filter(|r| r.params() <= max_params) {
                let mut widths = rung.widths.clone();
                if outputs > 0 {
                    *widths.last_mut().expect("widths") = outputs;
                }
                let problem = NetworkSpec::new(widths, rung.examples, 7)
                    .and_then(|spec| spec.with_model(ModelOptions::parse_line(settings)?))
                    .expect("ladder networks are valid")
                    .generate();
                group.throughput(Throughput::Elements(2 * problem.net().num_params() as u64));
                group.bench_with_input(
                    BenchmarkId::from_parameter(rung.params()),
                    &problem,
                    |b, problem| {
                        b.iter(|| {
                            let eval = engine.evaluate(problem, &opts).expect("evaluation");
                            judge("bench", &eval, &Gradients::Backprop(None), &opts).expect("judge")
                        })
                    },
                );
            }
            group.finish();
        }
    }
}

criterion_group!(benches, checks);
criterion_main!(benches);
