//! A new user's rough edges, through the binary: no crash or runaway allocation, no option
//! silently ignored, messages that say what is wrong and what was expected.

mod common;

use common::{gradcheck, write_npz};

use std::io::Write;

use ndarray::{array, Array2};
use ndarray_npy::{NpzWriter, WriteNpyExt};
use predicates::prelude::*;
use tempfile::TempDir;

/// Runs `gradcheck ARGS` and expects exit 2 with `message` on the first line of stderr,
/// and nothing else but clap's usage lines.
fn refused(args: &[&str], message: &str) {
    let out = gradcheck().args(args).assert().code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    let first = stderr.lines().next().unwrap_or_default();
    assert!(
        first.contains(message),
        "{args:?}: expected '{message}' in {stderr}"
    );
    let rest: Vec<&str> = stderr
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        rest.iter()
            .all(|l| l.starts_with("Usage:") || l.starts_with("For more information")),
        "{args:?}: {stderr}"
    );
}

fn exercise_arrays() -> Vec<(String, Array2<f64>)> {
    vec![
        (
            "X".into(),
            array![[0.5, -1.0, 2.0, 0.3], [1.5, 0.2, -0.7, 0.9]],
        ),
        ("Y".into(), array![[1.0, 0.0, 1.0, 0.0]]),
        ("W1".into(), array![[0.3, -0.2], [0.7, 0.1]]),
        ("b1".into(), array![[0.1], [-0.2]]),
        ("W2".into(), array![[0.9, -0.4]]),
        ("b2".into(), array![[0.05]]),
    ]
}

#[test]
fn huge_networks_are_refused_from_their_widths_before_anything_is_allocated() {
    for command in ["check", "export"] {
        let mut args = vec![command, "--layers", "100000,100000,1", "--examples", "2"];
        if command == "export" {
            args.extend(["-o", "/tmp/never-written.npz"]);
        }
        let start = std::time::Instant::now();
        refused(&args, "too large for the memory budget");
        assert!(start.elapsed().as_secs() < 10);
    }
}

#[test]
fn flags_that_would_be_ignored_or_joined_are_refused() {
    refused(
        &["check", "--layers", "784,128,64,1", "--layers", "4,3,1"],
        "cannot be used multiple times",
    );
    refused(&["check", "--examples", "0"], "give --layers too");
    refused(&["check", "--seed", "3"], "give --layers too");
    refused(
        &["check", "--layers", "4,3,1", "--examples", "0"],
        "no examples",
    );
    refused(
        &["check", "--directions", "6", "--method", "delta"],
        "not the delta method: leave the method to it",
    );
    refused(
        &["check", "--adapter", "no-such-gpu"],
        "no GPU adapter found whose name contains 'no-such-gpu'",
    );
    refused(
        &[
            "bench",
            "--devices",
            "gpu",
            "--adapter",
            "no-such-gpu",
            "--layers",
            "4,3,1",
        ],
        "no GPU adapter found whose name contains 'no-such-gpu'",
    );
    for (flag, value) in [("--sample", "-3"), ("--seed", "-1"), ("--top", "-1")] {
        let mut args = vec!["check", flag, value];
        if flag == "--seed" {
            args.extend(["--layers", "4,3,1"]);
        }
        refused(&args, "must be a non-negative whole number, got");
    }
    // A sample as large as the network checks everything, and says so.
    gradcheck()
        .args(["check", "--device", "cpu", "--sample", "100000"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("every coordinate was checked"));
}

#[test]
fn bench_checks_its_output_paths_before_measuring() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no/such/dir/plot.svg");
    let out = gradcheck()
        .args([
            "bench",
            "--layers",
            "4,3,1",
            "--devices",
            "cpu",
            "-q",
            "--plot",
        ])
        .arg(&missing)
        .assert()
        .code(2);
    assert!(
        out.get_output().stdout.is_empty(),
        "measured before refusing"
    );
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(stderr.matches("No such file").count(), 1, "{stderr}");
    refused(
        &["bench", "--layers", "4,3,1", "--plot", "out.png"],
        "give a path ending in .svg",
    );
    gradcheck()
        .args([
            "bench",
            "--layers",
            "4,3,1",
            "--devices",
            "cpu",
            "-q",
            "--json",
        ])
        .arg(dir.path().join("no/such.json"))
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty());
}

#[test]
fn a_single_size_plot_labels_every_case() {
    let dir = TempDir::new().unwrap();
    let svg = dir.path().join("one.svg");
    gradcheck()
        .args([
            "bench",
            "--layers",
            "12,8,1",
            "--examples",
            "5",
            "--devices",
            "cpu",
            "-q",
        ])
        .arg("--plot")
        .arg(&svg)
        .assert()
        .code(0);
    let plot = std::fs::read_to_string(&svg).unwrap();
    for case in ["cpu · full · f64", "cpu · delta · f64", "12-8-1"] {
        assert!(plot.contains(case), "{case} missing from the plot");
    }
    assert_eq!(plot.matches("<circle").count(), 2);
}

#[test]
fn files_that_are_not_npz_archives_are_named_for_what_they_are() {
    let dir = TempDir::new().unwrap();
    let out = gradcheck()
        .args(["check", "/nonexistent/x.npz"])
        .assert()
        .code(2);
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    refused(
        &["check", dir.path().to_str().unwrap()],
        "is a directory, not an npz file",
    );
    let npy = dir.path().join("X.npy");
    array![[1.0f64, 2.0]]
        .write_npy(std::fs::File::create(&npy).unwrap())
        .unwrap();
    refused(
        &["check", npy.to_str().unwrap()],
        "is a single .npy array (np.save)",
    );
}

#[test]
fn label_shapes_say_what_was_expected() {
    let dir = TempDir::new().unwrap();
    let mut arrays = exercise_arrays();
    arrays[1].1 = array![[1.0, 0.0, 1.0]];
    let path = write_npz(&dir, "y.npz", &arrays, false);
    refused(
        &["check", path.to_str().unwrap(), "--builtin-backprop"],
        "Y has shape (1, 3) but the network expects (1, 4)",
    );
    // A 1-D Y for a network of two outputs.
    let mut arrays = exercise_arrays();
    arrays.retain(|(n, _)| n != "Y" && n != "W2" && n != "b2");
    arrays.push(("W2".into(), array![[0.9, -0.4], [0.2, 0.3]]));
    arrays.push(("b2".into(), array![[0.05], [0.0]]));
    let path = dir.path().join("y1d.npz");
    let mut npz = NpzWriter::new(std::fs::File::create(&path).unwrap());
    for (n, a) in &arrays {
        npz.add_array(n.as_str(), a).unwrap();
    }
    npz.add_array("Y", &array![1.0, 0.0, 1.0, 0.0]).unwrap();
    npz.finish().unwrap();
    refused(
        &["check", path.to_str().unwrap(), "--builtin-backprop"],
        "Y has shape (4,), one label per example, but the output layer has 2 units",
    );
    let mut arrays = exercise_arrays();
    arrays[0].1[[1, 3]] = f64::NAN;
    let path = write_npz(&dir, "nan.npz", &arrays, false);
    refused(&["check", path.to_str().unwrap()], "at X[1,3]");
}

#[test]
fn arrays_the_check_does_not_use_are_listed_whatever_their_dtype() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("extra.npz");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let options = zip::write::SimpleFileOptions::default();
    for (n, a) in exercise_arrays() {
        zip.start_file(format!("{n}.npy"), options).unwrap();
        let mut bytes = Vec::new();
        a.write_npy(&mut bytes).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    // An object array (np.savez of a list of strings with allow_pickle), never read.
    let header = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
    let mut object = b"\x93NUMPY\x01\x00".to_vec();
    let padded = format!("{header:<117}\n");
    object.extend((padded.len() as u16).to_le_bytes());
    object.extend(padded.as_bytes());
    object.extend(b"\x80\x04pickled bytes that nothing reads");
    zip.start_file("notes.npy", options).unwrap();
    zip.write_all(&object).unwrap();
    zip.finish().unwrap();
    gradcheck()
        .arg("check")
        .arg(&path)
        .args(["--device", "cpu", "--builtin-backprop"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("note: not used: notes"));
}

#[test]
fn help_lists_the_exit_codes_and_auto_as_it_behaves() {
    for args in [&["--help"][..], &["check", "--help"]] {
        gradcheck()
            .args(args)
            .assert()
            .code(0)
            .stdout(predicate::str::contains("3    inconclusive"))
            .stdout(predicate::str::contains("130  interrupted"));
    }
    gradcheck()
        .args(["check", "--help"])
        .assert()
        .stdout(predicate::str::contains("software adapter"));
}

#[test]
fn export_writes_the_exercise_by_default_and_plants_bugs() {
    let dir = TempDir::new().unwrap();
    let out = dir.path().join("exercise.npz");
    gradcheck()
        .args(["export", "--bug", "dW2=2", "-o"])
        .arg(&out)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("47 parameters"));
    gradcheck()
        .arg("check")
        .arg(&out)
        .args(["--device", "cpu"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("failing: W2"));
}

#[test]
fn the_header_comes_first_and_mesa_says_nothing() {
    let out = gradcheck()
        .env_remove("NODEVICE_SELECT")
        .args(["check", "--layers", "12,8,1", "--examples", "5"])
        .assert()
        .code(0);
    let stdout = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        stdout.starts_with("gradcheck generated network"),
        "{stdout}"
    );
    assert_eq!(stdout.matches("network 12-8-1").count(), 1, "{stdout}");
    let stderr = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
}
