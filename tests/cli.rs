//! The binary end to end: the exercise run, reports, exit codes and every bad input.

mod common;

use common::{gradcheck, write_npz};

use std::path::Path;

use ndarray::{array, Array2};
use ndarray_npy::NpzWriter;
use predicates::prelude::*;
use tempfile::TempDir;

/// A valid 2-layer problem (3-2-1, m = 4) as named arrays, to be broken one way at a time.
fn valid_arrays() -> Vec<(String, Array2<f64>)> {
    vec![
        (
            "X".into(),
            array![
                [0.5, -1.0, 2.0, 0.3],
                [1.5, 0.2, -0.7, 0.9],
                [-0.4, 0.8, 0.1, -1.2]
            ],
        ),
        ("Y".into(), array![[1.0, 0.0, 1.0, 0.0]]),
        ("W1".into(), array![[0.3, -0.2, 0.5], [0.7, 0.1, -0.6]]),
        ("b1".into(), array![[0.1], [-0.2]]),
        ("W2".into(), array![[0.9, -0.4]]),
        ("b2".into(), array![[0.05]]),
    ]
}

fn without(name: &str) -> Vec<(String, Array2<f64>)> {
    valid_arrays()
        .into_iter()
        .filter(|(n, _)| n != name)
        .collect()
}

fn replaced(name: &str, value: Array2<f64>) -> Vec<(String, Array2<f64>)> {
    valid_arrays()
        .into_iter()
        .map(|(n, a)| {
            if n == name {
                (n, value.clone())
            } else {
                (n, a)
            }
        })
        .collect()
}

/// Runs `check FILE --device cpu` and expects exit 2 with one line naming the problem.
fn refuses(path: &Path, extra: &[&str], message: &str) {
    let out = gradcheck()
        .arg("check")
        .arg(path)
        .args(["--device", "cpu"])
        .args(extra)
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains(message),
        "expected '{message}' in: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn no_arguments_runs_the_exercise_pass_then_fail() {
    gradcheck()
        .assert()
        .code(0)
        .stdout(predicate::str::contains("PASS"))
        .stdout(predicate::str::contains("FAIL"))
        .stdout(predicate::str::contains("failing: b1, W2"))
        .stdout(predicate::str::contains("As expected"));
}

#[test]
fn a_valid_file_passes_and_planted_bugs_fail_with_exit_1() {
    let dir = TempDir::new().unwrap();
    let path = write_npz(&dir, "ok.npz", &valid_arrays(), false);
    gradcheck()
        .arg("check")
        .arg(&path)
        .args(["--device", "cpu", "--builtin-backprop"])
        .assert()
        .code(0);
    gradcheck()
        .arg("check")
        .arg(&path)
        .args(["--device", "cpu", "--builtin-backprop", "--bug", "dW2=2"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("failing: W2"));
}

#[test]
fn json_report_has_the_documented_fields() {
    let out = gradcheck()
        .args([
            "check",
            "--device",
            "cpu",
            "--bug",
            "dW2=2,db1=4",
            "--json",
            "-",
        ])
        .assert()
        .code(1);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["params"], 47);
    assert_eq!(json["precision"], "f64");
    assert_eq!(json["method"], "delta");
    assert_eq!(json["device"], "cpu");
    assert!(json["eps"].as_f64().unwrap() > 0.0);
    assert!((json["difference"].as_f64().unwrap() - 0.2850931).abs() < 1e-6);
    let tensors = json["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 6);
    for t in tensors {
        let expected = if t["name"] == "b1" || t["name"] == "W2" {
            "fail"
        } else {
            "pass"
        };
        assert_eq!(t["verdict"], expected, "{t}");
        assert!(t["difference"].is_number());
        assert!(t["rel_error"].is_number());
        assert!(t["resolution"].is_number());
        // The least-squares scale names the exercise's bugs; failing tensors are diagnosed.
        let (ratio, diagnosed) = match t["name"].as_str().unwrap() {
            "W2" => (2.0, true),
            "b1" => (4.0, true),
            _ => (1.0, false),
        };
        assert!((t["ratio"].as_f64().unwrap() - ratio).abs() < 1e-6, "{t}");
        assert_eq!(t["diagnosis"].is_string(), diagnosed, "{t}");
    }
    assert!(json["tensors"][2]["diagnosis"]
        .as_str()
        .unwrap()
        .contains("constant factor"));
    assert_eq!(json["grad_precision"], "f64");
    assert!(json["resolution"].is_number());
    let worst = &json["worst"][0];
    for key in [
        "name",
        "index",
        "grad",
        "gradapprox",
        "rel_error",
        "verdict",
    ] {
        assert!(!worst[key].is_null(), "worst lacks {key}");
    }
    assert!(json["timing"]["seconds"].as_f64().unwrap() >= 0.0);
}

#[test]
fn json_to_a_file_and_export_round_trip() {
    let dir = TempDir::new().unwrap();
    let net = dir.path().join("net.npz");
    gradcheck()
        .args([
            "export",
            "--layers",
            "6,5,3,2",
            "--examples",
            "9",
            "--seed",
            "3",
            "-o",
        ])
        .arg(&net)
        .assert()
        .code(0);
    let json = dir.path().join("r.json");
    gradcheck()
        .arg("check")
        .arg(&net)
        .args(["--device", "cpu", "--json"])
        .arg(&json)
        .assert()
        .code(0);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["verdict"], "pass");
    assert_eq!(report["params"], 6 * 5 + 5 + 5 * 3 + 3 + 3 * 2 + 2);
    assert!(report["gradients"].as_str().unwrap().contains("net.npz"));
}

#[test]
fn missing_arrays_are_named() {
    let dir = TempDir::new().unwrap();
    for name in ["X", "Y", "W1", "b1", "b2"] {
        refuses(
            &write_npz(&dir, &format!("no_{name}.npz"), &without(name), false),
            &[],
            &format!("missing array '{name}'"),
        );
    }
}

#[test]
fn a_gap_in_the_layer_numbering_is_named() {
    let dir = TempDir::new().unwrap();
    let mut arrays = without("W2");
    arrays.retain(|(n, _)| n != "b2");
    arrays.push(("W3".into(), array![[0.9, -0.4]]));
    arrays.push(("b3".into(), array![[0.05]]));
    refuses(
        &write_npz(&dir, "gap.npz", &arrays, false),
        &[],
        "W3 is present but W2 and b2 are missing",
    );
}

#[test]
fn shapes_that_do_not_chain_are_named() {
    let dir = TempDir::new().unwrap();
    let cases = [
        (
            "W2",
            array![[0.9, -0.4, 0.2]],
            "W2 has 3 columns but layer 1 has 2 units",
        ),
        (
            "X",
            array![[0.5, -1.0, 2.0, 0.3], [1.5, 0.2, -0.7, 0.9]],
            "X has 2 rows but W1 has 3 columns",
        ),
        (
            "Y",
            array![[1.0, 0.0, 1.0]],
            "Y has shape (1, 3) but the network expects (1, 4)",
        ),
        (
            "Y",
            array![[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]],
            "Y has shape (2, 4) but the network expects (1, 4): one row per output unit (1)",
        ),
        (
            "b1",
            array![[0.1], [-0.2], [0.3]],
            "b1 has 3 entries but W1 has 2 rows",
        ),
    ];
    for (k, (name, value, message)) in cases.into_iter().enumerate() {
        refuses(
            &write_npz(
                &dir,
                &format!("shape{k}.npz"),
                &replaced(name, value),
                false,
            ),
            &[],
            message,
        );
    }
}

#[test]
fn gradients_shaped_unlike_their_parameters_are_named() {
    let dir = TempDir::new().unwrap();
    let mut arrays = valid_arrays();
    arrays.push(("dW1".into(), array![[0.3, -0.2], [0.7, 0.1]]));
    arrays.push(("db1".into(), array![[0.1], [-0.2]]));
    arrays.push(("dW2".into(), array![[0.9, -0.4]]));
    arrays.push(("db2".into(), array![[0.05]]));
    refuses(
        &write_npz(&dir, "dshape.npz", &arrays, false),
        &[],
        "dW1 has shape [2, 2] but W1 has [2, 3]",
    );
    let mut partial = valid_arrays();
    partial.push(("dW1".into(), array![[0.3, -0.2, 0.1], [0.7, 0.1, 0.2]]));
    refuses(
        &write_npz(&dir, "dpartial.npz", &partial, false),
        &[],
        "gradients missing for db1, dW2, db2",
    );
}

#[test]
fn non_finite_values_and_bad_labels_are_named() {
    let dir = TempDir::new().unwrap();
    refuses(
        &write_npz(
            &dir,
            "nan.npz",
            &replaced("W1", array![[0.3, f64::NAN, 0.5], [0.7, 0.1, -0.6]]),
            false,
        ),
        &[],
        "array 'W1' holds a non-finite value (NaN) at W1[0,1]",
    );
    refuses(
        &write_npz(
            &dir,
            "inf.npz",
            &replaced(
                "X",
                array![
                    [0.5, -1.0, 2.0, 0.3],
                    [1.5, 0.2, -0.7, 0.9],
                    [-0.4, 0.8, f64::INFINITY, -1.2]
                ],
            ),
            false,
        ),
        &[],
        "array 'X' holds a non-finite value (inf)",
    );
    refuses(
        &write_npz(
            &dir,
            "label.npz",
            &replaced("Y", array![[1.0, 0.0, 1.5, 0.0]]),
            false,
        ),
        &[],
        "labels must lie in [0, 1]: Y has 1.5",
    );
}

#[test]
fn zero_examples_and_zero_width_layers_are_refused() {
    let dir = TempDir::new().unwrap();
    let mut arrays = replaced("X", Array2::zeros((3, 0)));
    arrays = arrays
        .into_iter()
        .map(|(n, a)| {
            if n == "Y" {
                (n, Array2::zeros((1, 0)))
            } else {
                (n, a)
            }
        })
        .collect();
    refuses(
        &write_npz(&dir, "m0.npz", &arrays, false),
        &[],
        "no examples",
    );
    let zero_width = replaced("W1", Array2::zeros((0, 3)));
    refuses(
        &write_npz(&dir, "w0.npz", &zero_width, false),
        &[],
        "W1 has a zero dimension",
    );
    for (layers, examples, message) in [
        ("4,0,1", "8", "zero width"),
        ("4,3,1", "0", "no examples"),
        ("4", "8", "at least an input and an output"),
    ] {
        let out = gradcheck()
            .args([
                "check",
                "--device",
                "cpu",
                "--layers",
                layers,
                "--examples",
                examples,
            ])
            .assert()
            .code(2);
        let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert!(stderr.contains(message), "{layers}/{examples}: {stderr}");
    }
}

#[test]
fn steps_and_thresholds_outside_their_domain_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = write_npz(&dir, "ok.npz", &valid_arrays(), false);
    for eps in ["0", "-1e-7", "nan", "inf"] {
        refuses(
            &path,
            &["--eps", eps],
            "the step must be a finite number > 0",
        );
    }
    refuses(
        &path,
        &["--threshold", "0"],
        "'--threshold <THRESHOLD>': must be a finite number > 0",
    );
    refuses(
        &path,
        &["--builtin-backprop", "--bug", "dW9=2"],
        "--bug: invalid option: 'dW9' is not a gradient tensor",
    );
}

#[test]
fn files_that_are_not_npz_or_are_damaged_are_refused() {
    let dir = TempDir::new().unwrap();
    let text = dir.path().join("text.npz");
    std::fs::write(&text, "this is not a zip archive").unwrap();
    refuses(&text, &[], "not an npz (zip) archive");

    let good = std::fs::read(write_npz(&dir, "good.npz", &valid_arrays(), false)).unwrap();
    let truncated = dir.path().join("truncated.npz");
    std::fs::write(&truncated, &good[..good.len() / 2]).unwrap();
    refuses(&truncated, &[], "cannot read");

    // A damaged array header inside an intact archive.
    let mut damaged = good.clone();
    let at = find(&damaged, b"\x93NUMPY").unwrap();
    damaged[at + 10..at + 40].fill(b'#');
    let damaged_path = dir.path().join("damaged.npz");
    std::fs::write(&damaged_path, &damaged).unwrap();
    refuses(&damaged_path, &[], "cannot read");

    refuses(&dir.path().join("absent.npz"), &[], "absent.npz");
}

#[test]
fn integer_arrays_are_converted_and_other_dtypes_refused() {
    let dir = TempDir::new().unwrap();
    // Labels as int64, as numpy saves np.array([1, 0, 1, 0]).
    let path = dir.path().join("int.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&path).unwrap());
    for (n, a) in valid_arrays() {
        if n == "Y" {
            npz.add_array("Y", &array![1i64, 0, 1, 0]).unwrap();
        } else {
            npz.add_array(n.as_str(), &a).unwrap();
        }
    }
    npz.finish().unwrap();
    gradcheck()
        .arg("check")
        .arg(&path)
        .args(["--device", "cpu", "--builtin-backprop"])
        .assert()
        .code(0);

    // The first array's descriptor rewritten to complex64 (same length, archive intact).
    let mut bytes = std::fs::read(write_npz(&dir, "c.npz", &valid_arrays(), false)).unwrap();
    let at = find(&bytes, b"'<f8'").unwrap();
    bytes[at..at + 5].copy_from_slice(b"'<c8'");
    let complex = dir.path().join("complex.npz");
    std::fs::write(&complex, &bytes).unwrap();
    refuses(&complex, &[], "unsupported dtype");
}

#[test]
fn unknown_adapters_and_missing_f64_are_clear_errors() {
    let out = gradcheck()
        .args(["check", "--device", "gpu", "--adapter", "no-such-gpu-xyz"])
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("no GPU adapter found whose name contains 'no-such-gpu-xyz'"),
        "{stderr}"
    );

    // Mesa's GL driver has no f64 shaders: asking for them there must be refused.
    let gl = gradcheck()
        .env("WGPU_BACKEND", "gl")
        .arg("devices")
        .output()
        .unwrap();
    if !String::from_utf8_lossy(&gl.stdout).contains(" gl ") {
        eprintln!("SKIPPED: no GL adapter to test the missing-f64 error on");
        return;
    }
    let out = gradcheck()
        .env("WGPU_BACKEND", "gl")
        .args(["check", "--device", "gpu", "--precision", "f64"])
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("does not support f64"), "{stderr}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn gpu_reports_name_the_adapter_and_gpu_time_and_only_full_refuses_oversized_layers() {
    if common::gpu().is_none() {
        return;
    }
    let out = gradcheck()
        .args([
            "check",
            "--device",
            "gpu",
            "--precision",
            "f32",
            "--json",
            "-",
        ])
        .assert()
        .code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["device"], "gpu");
    assert!(!json["adapter"]["name"].as_str().unwrap().is_empty());
    assert!(json["timing"]["gpu_seconds"].as_f64().unwrap() > 0.0);

    // A hidden layer whose activations cannot fit in workgroup memory: the full method
    // refuses it; the delta method keeps no activations in workgroup memory and runs it.
    let wide = ["--layers", "2,50000,1", "--examples", "2"];
    let gpu_f32 = ["check", "--device", "gpu", "--precision", "f32"];
    let out = gradcheck()
        .args(gpu_f32)
        .args(["--method", "full"])
        .args(wide)
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.contains("too large for the GPU") && stderr.contains("workgroup memory"),
        "{stderr}"
    );
    gradcheck()
        .args(gpu_f32)
        .args(["--method", "delta"])
        .args(wide)
        .assert()
        .code(0);
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_a_long_check_with_130_and_writes_no_report() {
    let dir = TempDir::new().unwrap();
    let json = dir.path().join("report.json");
    // The full method on 108,801 parameters: over half a minute of work on two cores.
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("gradcheck"))
        .args(["check", "--layers", "784,128,64,1", "--examples", "64"])
        .args(["--device", "cpu", "--method", "full", "--quiet", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let started = std::time::Instant::now();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    assert!(
        started.elapsed().as_secs_f64() < 10.0,
        "stopping took {:?}",
        started.elapsed()
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("interrupted"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_check_over_the_memory_budget_is_refused_before_it_starts() {
    let started = std::time::Instant::now();
    gradcheck()
        .args(["check", "--layers", "3072,1024,512,1", "--examples", "128"])
        .args(["--device", "cpu", "--max-memory", "300M"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "too large for the memory budget: checking 3672065 of 3672065 parameters needs about",
        ))
        .stderr(predicate::str::contains("300.0 MiB"));
    // Refused after generating the network, before any per-coordinate work.
    assert!(
        started.elapsed().as_secs_f64() < 5.0,
        "{:?}",
        started.elapsed()
    );
    for bad in ["12X", "0", "-5M"] {
        gradcheck()
            .args(["check", "--max-memory", bad])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--max-memory"));
    }
}

/// Runs the binary with `args` under a pseudo-terminal (util-linux `script`) and returns
/// what it wrote; `None` where `script` is missing.
#[cfg(unix)]
fn on_a_terminal(args: &str) -> Option<String> {
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: no /usr/bin/script to make a terminal");
        return None;
    }
    let binary = assert_cmd::cargo::cargo_bin("gradcheck");
    let out = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &format!("{} {args}", binary.display()), "/dev/null"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(unix)]
#[test]
fn a_long_check_on_a_terminal_shows_progress_unless_quiet() {
    // About two seconds of work: the bar appears after one.
    let check = "check --layers 400,64,32,1 --examples 64 --device cpu --method full";
    let Some(shown) = on_a_terminal(check) else {
        return;
    };
    assert!(shown.contains("ETA"), "{shown}");
    assert!(shown.contains("PASS"), "{shown}");
    let quiet = on_a_terminal(&format!("{check} --quiet")).unwrap();
    assert!(!quiet.contains("ETA") && quiet.contains("PASS"), "{quiet}");
    // Not a terminal: no bar either.
    let piped = gradcheck().args(check.split(' ')).assert().code(0);
    let stderr = String::from_utf8(piped.get_output().stderr.clone()).unwrap();
    assert!(!stderr.contains("ETA"), "{stderr}");
}

#[test]
fn two_runs_report_the_same_numbers_bit_for_bit() {
    let run = || -> serde_json::Value {
        let out = gradcheck()
            .args([
                "check",
                "--layers",
                "30,20,10,1",
                "--examples",
                "16",
                "--json",
                "-",
            ])
            .assert()
            .code(0);
        let mut json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        json.as_object_mut().unwrap().remove("timing");
        json
    };
    // Every figure, worst coordinate and tensor difference: serialised f64s, exactly equal.
    assert_eq!(run(), run());
}

/// `check --help` groups its options (input, network, model, device, method, scope,
/// output) instead of one flat list of thirty.
#[test]
fn check_help_is_grouped() {
    let out = gradcheck().args(["check", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for heading in [
        "Input:",
        "Generated network (instead of FILE):",
        "Model (over FILE's own settings):",
        "Device:",
        "Method:",
        "Scope:",
        "Output:",
    ] {
        assert!(text.contains(heading), "{heading} missing from:\n{text}");
    }
    assert!(!text.contains("columns of X"), "{text}");
}

/// Under -q a check prints no notes (the header's placement line says where it ran);
/// without it, a note names the arrays it does not use.
#[test]
fn quiet_checks_print_no_notes() {
    let dir = tempfile::TempDir::new().unwrap();
    let p = common::network_of("", &[3, 4, 1], 5, 2);
    let grad = gradcheck::cpu::backprop::gradients(&p);
    let mut arrays = common::course_arrays(&p, Some(&grad));
    arrays.push(("A1".to_string(), ndarray::Array2::ones((4, 5))));
    let path = common::write_npz(&dir, "extra.npz", &arrays, false);
    let out = gradcheck()
        .args(["check", "-q"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("note:"), "{stderr}");
    let out = gradcheck().arg("check").arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("note: not used: A1").count(), 1, "{stderr}");
}
