//! The npz reader against hostile files: proptest mutations of a valid archive (truncated,
//! bytes overwritten, bytes inserted) and hand-made archives whose npy headers lie. Every
//! input must give `Ok` or a one-line error, never a panic or an abort.

use std::io::Write;

use gradcheck::generate::NetworkSpec;
use gradcheck::io::{read_npz_bytes, write_npz};
use proptest::prelude::*;

/// A small valid archive with gradients, as `gradcheck export` writes it.
fn valid_archive() -> Vec<u8> {
    static ARCHIVE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ARCHIVE.get_or_init(write_valid_archive).clone()
}

fn write_valid_archive() -> Vec<u8> {
    let dir = tempfile::TempDir::new().unwrap();
    let path = dir.path().join("net.npz");
    let problem = NetworkSpec::new(vec![3, 4, 1], 2, 5).unwrap().generate();
    let grads = gradcheck::cpu::backprop::gradients(&problem);
    write_npz(&path, &problem, Some(&grads)).unwrap();
    std::fs::read(path).unwrap()
}

fn check(bytes: &[u8]) {
    if let Err(e) = read_npz_bytes(bytes, "fuzz.npz") {
        let message = e.to_string();
        assert!(!message.contains('\n'), "{message}");
    }
}

/// An uncompressed archive holding `entries` (name, raw .npy bytes).
fn archive(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A version-1.0 .npy file: the header dict, padded, then `data`.
fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

fn f64s(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

proptest! {
    // 400 cases per property in the test suite; a longer campaign:
    // PROPTEST_CASES=200000 cargo test --release --test npz_fuzz
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400)
    ))]

    #[test]
    fn truncated_archives_are_refused_cleanly(cut in 0usize..4096) {
        let bytes = valid_archive();
        check(&bytes[..cut.min(bytes.len())]);
    }

    #[test]
    fn overwritten_bytes_are_refused_or_read(
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..8)
    ) {
        let mut bytes = valid_archive();
        let len = bytes.len();
        for (at, value) in edits {
            bytes[at % len] = value;
        }
        check(&bytes);
    }

    #[test]
    fn inserted_bytes_are_refused_or_read(at in 0usize..4096, junk in proptest::collection::vec(any::<u8>(), 1..64)) {
        let mut bytes = valid_archive();
        let at = at % bytes.len();
        bytes.splice(at..at, junk);
        check(&bytes);
    }
}

#[test]
fn npy_headers_that_lie_about_their_shape_are_refused_without_allocating() {
    let x = npy("<f8", "(3, 2)", &f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
    let y = npy("<f8", "(1, 2)", &f64s(&[0.0, 1.0]));
    let b1 = npy("<f8", "(1,)", &f64s(&[0.1]));
    for (shape, what) in [
        ("(100000000000, 3)", "huge"),
        ("(4611686018427387904, 4)", "overflowing"),
        ("(18446744073709551615,)", "u64::MAX"),
        ("(1, 3)", "fine"),
    ] {
        let w1 = npy("<f8", shape, &f64s(&[0.5, -0.5, 0.25]));
        let bytes = archive(&[
            ("X.npy", x.clone()),
            ("Y.npy", y.clone()),
            ("W1.npy", w1),
            ("b1.npy", b1.clone()),
        ]);
        let result = read_npz_bytes(&bytes, "lying.npz");
        match what {
            "fine" => assert!(result.is_ok(), "{result:?}"),
            _ => {
                let message = result.expect_err(what).to_string();
                assert!(message.contains("W1"), "{what}: {message}");
            }
        }
    }
}

#[test]
fn regression_cases_stay_fixed() {
    // Inputs the fuzzing above once found or that target its weak spots: each must give
    // a clean error.
    let header_only = npy("<f8", "(2, 2)", &[]);
    let bad_descr = npy("<c16", "(1,)", &[0; 16]);
    let unterminated = b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f8', 'shape': (1,".to_vec();
    for (name, bytes) in [
        ("header_only", archive(&[("X.npy", header_only)])),
        ("bad_descr", archive(&[("X.npy", bad_descr)])),
        ("unterminated", archive(&[("X.npy", unterminated)])),
        ("empty zip", archive(&[])),
        ("empty file", Vec::new()),
    ] {
        assert!(read_npz_bytes(&bytes, name).is_err(), "{name}");
        check(&bytes);
    }
}
