//! The accuracy table of the README: median and maximum difference on *correct* backprop
//! over 24 random networks (depth 1–4, widths 1–64, m 1–32), for each method and precision.
//! Runs every configuration on the GPU adapter (lavapipe will do; f64 needs SHADER_F64).
//!
//!     cargo run --release --example accuracy

use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::generate::NetworkSpec;
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision};
use rand::{Rng, SeedableRng};

fn networks() -> Vec<gradcheck::problem::Problem> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    (0..24)
        .map(|seed| {
            let depth = rng.random_range(1..=4);
            let mut widths: Vec<usize> = (0..depth).map(|_| rng.random_range(1..=64)).collect();
            widths.push(rng.random_range(1..=2));
            let examples = rng.random_range(1..=32);
            NetworkSpec::new(widths, examples, seed).unwrap().generate()
        })
        .collect()
}

/// Median and maximum difference, and how many checks failed.
fn measure(
    problems: &[gradcheck::problem::Problem],
    opts: &CheckOptions,
) -> anyhow::Result<(f64, f64, usize)> {
    let engine = Engine::new(opts)?;
    let mut diffs = Vec::new();
    let mut failed = 0;
    for p in problems {
        let eval = engine.evaluate(p, opts)?;
        let report = judge("accuracy", &eval, &Gradients::Backprop(None), opts)?;
        diffs.push(report.difference);
        failed += usize::from(report.verdict == gradcheck::check::Verdict::Fail);
    }
    diffs.sort_by(f64::total_cmp);
    Ok((diffs[diffs.len() / 2], diffs[diffs.len() - 1], failed))
}

fn main() -> anyhow::Result<()> {
    let problems = networks();
    let base = CheckOptions {
        device: DeviceChoice::Auto,
        ..Default::default()
    };
    println!(
        "| method | precision | step | median difference | max difference | false alarms (of 24) |"
    );
    println!("|---|---|---|---:|---:|---:|");
    let mut best: Option<(f64, f64, f64, usize)> = None;
    for eps in [1e-2, 3e-3, 1e-3, 3e-4, 1e-4] {
        let opts = CheckOptions {
            method: Method::Full,
            precision: Precision::F32,
            eps: Some(eps),
            ..base.clone()
        };
        let (median, max, failed) = measure(&problems, &opts)?;
        eprintln!("f32 full at {eps:e}: median {median:.2e}, max {max:.2e}, {failed} false alarms");
        if best.is_none_or(|b| median < b.1) {
            best = Some((eps, median, max, failed));
        }
    }
    let (eps, median, max, failed) = best.expect("steps tried");
    println!("| full | f32 | {eps:e} (best of 1e-2…1e-4) | {median:.2e} | {max:.2e} | {failed} |");
    for (method, precision) in [
        (Method::Delta, Precision::F32),
        (Method::Full, Precision::F64),
        (Method::Delta, Precision::F64),
    ] {
        let opts = CheckOptions {
            method,
            precision,
            ..base.clone()
        };
        let (median, max, failed) = measure(&problems, &opts)?;
        println!(
            "| {} | {} | {:e} (default) | {median:.2e} | {max:.2e} | {failed} |",
            method.as_str(),
            precision.as_str(),
            opts.eps()
        );
    }
    Ok(())
}
