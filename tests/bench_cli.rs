//! `gradcheck bench`: the sweep's table, JSON, plot and re-plot, and its bad input.

mod common;

use common::gradcheck;

use predicates::prelude::*;
use tempfile::TempDir;

#[test]
fn bench_prints_the_table_writes_json_and_a_plot_and_replots_from_json() {
    let dir = TempDir::new().unwrap();
    let (json, svg, again) = (
        dir.path().join("rows.json"),
        dir.path().join("plot.svg"),
        dir.path().join("again.svg"),
    );
    let gpu = common::gpu();
    let devices = if gpu.is_some() { "cpu,gpu" } else { "cpu" };
    let out = gradcheck()
        .args(["bench", "--layers", "4,5,3,1", "--layers", "12,8,1", "--examples", "5"])
        .args(["--devices", devices, "--quiet", "--json"])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "| params | network | device | method | precision | wall s | GPU s | × fwd+bwd | peak MB | perturbations/s | GFLOP/s | difference |",
        ))
        .get_output()
        .stdout
        .clone();
    let table = String::from_utf8(out).unwrap();

    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows["rows"].as_array().unwrap();
    // cpu: full and delta in f64 (f32 is GPU only); gpu: both methods in each precision it
    // has (f64 only where it has f64 shaders).
    let cases = 2 + gpu.map_or(0, |ctx| 2 * common::gpu_precisions(&ctx).len());
    assert_eq!(rows.len(), 2 * cases, "{table}");
    for row in rows {
        let params = row["params"].as_u64().unwrap();
        assert!(params == 47 || params == 8 * 13 + 9, "{row}");
        assert!(row["wall_seconds"].as_f64().unwrap() > 0.0);
        assert!(row["perturbations_per_second"].as_f64().unwrap() > 0.0);
        assert!(row["gflops"].as_f64().unwrap() > 0.0);
        // Set against one forward and backward pass of the same network, peak memory beside.
        assert!(
            row["forward_backward_seconds"].as_f64().unwrap() > 0.0,
            "{row}"
        );
        if cfg!(target_os = "linux") {
            assert!(row["peak_bytes"].as_u64().unwrap() > 1 << 20, "{row}");
        }
        assert_eq!(row["passed"], true, "{row}");
        let difference = row["difference"].as_f64().unwrap();
        assert!(difference > 0.0 && difference < 1e-2, "{row}");
    }

    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg"));
    for text in [
        "parameters (log scale)",
        "wall time, seconds (log scale)",
        "cpu · delta · f64",
        "cpu · full · f64",
    ] {
        assert!(plot.contains(text), "plot lacks '{text}'");
    }
    // One marker per measured row.
    assert_eq!(plot.matches("<circle").count(), rows.len(), "{plot}");

    gradcheck()
        .args(["bench", "--from"])
        .arg(&json)
        .arg("--plot")
        .arg(&again)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "| 47 | 4-5-3-1, m 5 | cpu | full | f64 |",
        ));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), plot);
}

#[test]
fn bench_refuses_bad_input_with_one_line() {
    let dir = TempDir::new().unwrap();
    for (args, message) in [
        (vec!["--max-seconds", "0"], "--max-seconds must be > 0"),
        (vec!["--layers", "4,x,1"], "'x'"),
        (
            vec!["--devices", "cpu", "--precisions", "f32"],
            "f32 needs --devices gpu",
        ),
        (
            vec!["--layers", "4,0,1", "--devices", "cpu"],
            "invalid network",
        ),
    ] {
        gradcheck()
            .arg("bench")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(message));
    }
    let missing = dir.path().join("absent.json");
    gradcheck()
        .args(["bench", "--from"])
        .arg(&missing)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("absent.json"));
    let not_bench = dir.path().join("other.json");
    std::fs::write(&not_bench, "{\"verdict\": \"pass\"}").unwrap();
    gradcheck()
        .args(["bench", "--from"])
        .arg(&not_bench)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is not a `gradcheck bench --json` file",
        ));
}

/// `--max-seconds` caps the whole run (not each size): once spent, the remaining sizes are
/// skipped and say why; the JSON and the plot carry the machine and the date, and the plot
/// marks what was skipped.
#[test]
fn max_seconds_caps_the_whole_run_and_the_plot_says_where_and_when() {
    let dir = TempDir::new().unwrap();
    let (json, svg) = (dir.path().join("rows.json"), dir.path().join("plot.svg"));
    let start = std::time::Instant::now();
    let out = gradcheck()
        .args([
            "bench",
            "--layers",
            "4,5,1",
            "--layers",
            "64,64,1",
            "--layers",
            "128,128,1",
        ])
        .args([
            "--devices",
            "cpu",
            "--max-seconds",
            "0.05",
            "--quiet",
            "--json",
        ])
        .arg(&json)
        .arg("--plot")
        .arg(&svg)
        .output()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("are spent") || text.contains("left of --max-seconds"),
        "{text}"
    );
    assert!(elapsed < 30.0, "{elapsed} s");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(value["machine"].as_str().unwrap().contains("cores"));
    assert!(value["date"].as_str().unwrap().ends_with("UTC"));
    assert!(!value["skipped"].as_array().unwrap().is_empty());
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.contains("UTC") && plot.contains("skipped"), "{plot}");
}
