//! `gradcheck bench`: the sweep with a progress bar, the table, JSON and the plot.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use gradcheck::bench::{self, markdown_table, predicted_seconds, time_check, BenchRow, Case, Rung};
use gradcheck::checker::Engine;
use gradcheck::options::{DeviceChoice, Precision};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::cli::{write_atomically, BenchArgs};

/// A measurement left out, and why.
#[derive(Serialize, Deserialize)]
struct Skipped {
    network: String,
    params: usize,
    case: String,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct BenchJson {
    /// Where and when: cores and CPU model; UTC date and time.
    #[serde(default)]
    machine: String,
    #[serde(default)]
    date: String,
    rows: Vec<BenchRow>,
    skipped: Vec<Skipped>,
}

/// "2 cores, AMD EPYC 7B13" from the host.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    format!("{cores} cores, {model}")
}

/// The UTC date and time, `2026-12-01 22:40 UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60
    )
}

fn case_label(case: &Case) -> String {
    format!(
        "{:?} {} {}",
        case.device,
        case.method.as_str(),
        case.precision.as_str()
    )
    .to_lowercase()
}

/// Fails now, before any measuring, if `path` cannot be written: a typo in a directory
/// should not cost the whole sweep.
fn ensure_writable(path: &std::path::Path) -> Result<()> {
    let existed = path.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

pub fn run_bench(args: &BenchArgs) -> Result<ExitCode> {
    if let Some(path) = &args.plot {
        bench::plot::ensure_svg(path)?;
        ensure_writable(path)?;
    }
    if let Some(path) = &args.json {
        ensure_writable(path)?;
    }
    let results = match &args.from {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!("{} is not a `gradcheck bench --json` file", path.display())
            })?
        }
        None => measure(args)?,
    };
    print!("{}", markdown_table(&results.rows));
    for s in &results.skipped {
        println!("skipped: {} · {}: {}", s.network, s.case, s.reason);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&results)?;
        write_atomically(path, json.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.plot {
        let notes = bench::plot::PlotNotes {
            machine: results.machine.clone(),
            date: results.date.clone(),
            skipped: results
                .skipped
                .iter()
                .filter_map(|s| {
                    let mut words = s.case.split(' ');
                    Some(bench::plot::SkippedSize {
                        params: s.params,
                        device: words.next()?.to_string(),
                        method: words.next()?.to_string(),
                        precision: words.next()?.to_string(),
                    })
                })
                .filter(|s| s.params > 0)
                .collect(),
        };
        bench::plot::write_svg(&results.rows, path, &notes)?;
    }
    Ok(if results.rows.iter().all(|r| r.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the sweep: every case over the rungs, skipping sizes predicted too slow.
fn measure(args: &BenchArgs) -> Result<BenchJson> {
    if args.max_seconds.is_nan() || args.max_seconds <= 0.0 {
        bail!("--max-seconds must be > 0");
    }
    let rungs: Vec<Rung> = if args.layers.is_empty() {
        bench::ladder()
    } else {
        args.layers
            .iter()
            .map(|w| Rung::new(&w.0, args.examples))
            .collect()
    };
    let model = args.model.to_options();
    // Refused before anything is measured: a model that does not fit a size.
    for rung in &rungs {
        gradcheck::generate::NetworkSpec::new(rung.widths.clone(), 1, 7)
            .and_then(|spec| spec.with_model(model.clone()))
            .with_context(|| format!("the model on {}", rung.label()))?;
    }
    let mut rungs: Vec<Rung> = rungs.into_iter().map(|r| r.with_model(&model)).collect();
    rungs.sort_by_key(Rung::params);
    let mut cases = Vec::new();
    for &device in &args.devices {
        for &method in &args.methods {
            for &precision in &args.precisions {
                if device != DeviceChoice::Gpu && precision == Precision::F32 {
                    continue; // the CPU path computes in f64 only
                }
                cases.push(Case {
                    device,
                    method,
                    precision,
                });
            }
        }
    }
    if cases.is_empty() {
        bail!("no case to run: f32 needs --devices gpu");
    }

    let progress = ProgressBar::new((cases.len() * rungs.len()) as u64);
    if args.quiet || !std::io::stderr().is_terminal() {
        progress.set_draw_target(ProgressDrawTarget::hidden());
    }
    progress.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .context("progress template")?
            .progress_chars("=> "),
    );
    // The clock keeps running while one case is measured.
    progress.enable_steady_tick(std::time::Duration::from_millis(250));

    let (mut rows, mut skipped) = (Vec::new(), Vec::new());
    let start = std::time::Instant::now();
    for case in &cases {
        let opts = case.options(args.adapter.as_deref());
        let engine = match Engine::new(&opts) {
            Ok(engine) => engine,
            // An adapter asked for by name and absent is a mistake, not a case to skip.
            Err(e @ gradcheck::Error::NoAdapter(_)) if args.adapter.is_some() => {
                return Err(e.into());
            }
            Err(e) => {
                progress.inc(rungs.len() as u64);
                skipped.push(Skipped {
                    network: "all".into(),
                    params: 0,
                    case: case_label(case),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        // One untimed check of the smallest size first: it compiles the case's kernels,
        // which would otherwise be the smallest row's time and inflate every prediction.
        if let Some(first) = rungs
            .first()
            .filter(|_| start.elapsed().as_secs_f64() < args.max_seconds)
        {
            time_check(&engine, case, first, 1, args.adapter.as_deref())
                .with_context(|| format!("{} · {} (warm-up)", first.label(), case_label(case)))?;
        }
        let mut previous: Option<BenchRow> = None;
        for rung in &rungs {
            progress.set_message(format!("{} · {}", rung.label(), case_label(case)));
            // --max-seconds caps the whole run: a size is skipped once the budget is spent
            // or when its predicted time (its repeats included) does not fit what is left.
            let left = args.max_seconds - start.elapsed().as_secs_f64();
            let predicted = previous
                .as_ref()
                .and_then(|p| predicted_seconds(p, rung))
                .map(|s| s * args.repeat as f64);
            let reason = if left <= 0.0 {
                Some(format!(
                    "the run's --max-seconds {} s are spent",
                    args.max_seconds
                ))
            } else {
                predicted.filter(|&s| s > left).map(|s| {
                    format!(
                        "predicted {s:.1} s, more than the {left:.1} s left of --max-seconds {}",
                        args.max_seconds
                    )
                })
            };
            if let Some(reason) = reason {
                skipped.push(Skipped {
                    network: rung.label(),
                    params: rung.params(),
                    case: case_label(case),
                    reason,
                });
                progress.inc(1);
                continue;
            }
            let row = time_check(&engine, case, rung, args.repeat, args.adapter.as_deref())
                .with_context(|| format!("{} · {}", rung.label(), case_label(case)))?;
            progress.println(format!(
                "{:>9} params  {:<28} {:>10.3} s",
                row.params,
                case_label(case),
                row.wall_seconds
            ));
            rows.push(row.clone());
            previous = Some(row);
            progress.inc(1);
        }
    }
    progress.finish_and_clear();
    if rows.is_empty() {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.case, s.reason))
            .collect();
        bail!("nothing was measured ({})", reasons.join("; "));
    }
    Ok(BenchJson {
        machine: machine(),
        date: utc_now(),
        rows,
        skipped,
    })
}
