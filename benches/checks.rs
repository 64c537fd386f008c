//! Wall time of a whole check (evaluation + comparison) per method, device and precision,
//! over the parameter-count ladder. Prints a Markdown table for benches/RESULTS.md.
//!
//!     cargo bench --bench checks                  # the ladder up to 108,801 parameters
//!     GRADCHECK_BENCH_QUICK=1 cargo bench --bench checks   # the two smallest sizes only
//!
//! Each figure is the best of a few runs (fewer for slow ones); the GPU context and its
//! pipelines are created outside the timed region, as in a session that checks many nets.

use std::time::Instant;

use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::generate::NetworkSpec;
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision};

struct Case {
    device: DeviceChoice,
    method: Method,
    precision: Precision,
    /// Largest parameter count this combination is run at (the full method is O(P²m)).
    max_params: usize,
}

fn main() {
    let quick = std::env::var_os("GRADCHECK_BENCH_QUICK").is_some();
    let ladder: &[(&[usize], usize)] = &[
        (&[4, 5, 3, 1], 3),
        (&[64, 32, 16, 1], 64),
        (&[256, 64, 32, 1], 64),
        (&[784, 128, 64, 1], 64),
    ];
    let ladder = if quick { &ladder[..2] } else { ladder };
    let cases = [
        Case {
            device: DeviceChoice::Cpu,
            method: Method::Full,
            precision: Precision::F64,
            max_params: 20_000,
        },
        Case {
            device: DeviceChoice::Gpu,
            method: Method::Full,
            precision: Precision::F32,
            max_params: 20_000,
        },
        Case {
            device: DeviceChoice::Gpu,
            method: Method::Full,
            precision: Precision::F64,
            max_params: 20_000,
        },
        Case {
            device: DeviceChoice::Cpu,
            method: Method::Delta,
            precision: Precision::F64,
            max_params: usize::MAX,
        },
        Case {
            device: DeviceChoice::Gpu,
            method: Method::Delta,
            precision: Precision::F32,
            max_params: usize::MAX,
        },
        Case {
            device: DeviceChoice::Gpu,
            method: Method::Delta,
            precision: Precision::F64,
            max_params: usize::MAX,
        },
    ];
    println!("| params | device | method | precision | wall s | GPU s | difference |");
    println!("|---:|---|---|---|---:|---:|---:|");
    for case in &cases {
        let opts = CheckOptions {
            device: case.device,
            method: case.method,
            precision: case.precision,
            ..Default::default()
        };
        let engine = match Engine::new(&opts) {
            Ok(engine) => engine,
            Err(e) => {
                eprintln!(
                    "skipping {:?} {:?} {:?}: {e}",
                    case.device, case.method, case.precision
                );
                continue;
            }
        };
        for (widths, examples) in ladder {
            let problem = NetworkSpec::new(widths.to_vec(), *examples, 7)
                .unwrap()
                .generate();
            let params = problem.net().num_params();
            if params > case.max_params {
                continue;
            }
            let mut best: Option<(f64, Option<f64>, f64)> = None;
            let repeats = if params > 10_000 { 1 } else { 3 };
            for _ in 0..repeats {
                let start = Instant::now();
                let eval = engine.evaluate(&problem, &opts).expect("evaluation");
                let report =
                    judge("bench", &eval, &Gradients::Backprop(None), &opts).expect("judge");
                let wall = start.elapsed().as_secs_f64();
                if best.is_none_or(|b| wall < b.0) {
                    best = Some((wall, report.timing.gpu_seconds, report.difference));
                }
            }
            let (wall, gpu, difference) = best.unwrap();
            let device = match engine.gpu() {
                Some(ctx) => format!("gpu: {}", ctx.summary().name),
                None => "cpu".to_string(),
            };
            println!(
                "| {params} | {device} | {} | {} | {wall:.3} | {} | {difference:.2e} |",
                case.method.as_str(),
                case.precision.as_str(),
                gpu.map(|s| format!("{s:.3}")).unwrap_or_else(|| "–".into())
            );
        }
    }
}
