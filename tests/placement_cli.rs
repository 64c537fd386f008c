//! The precision policy through the binary: `auto` picks f32 on an adapter without f64
//! shaders (Mesa's GL driver here, standing for Metal, DX12 and Intel), f64 where it has
//! them, and the report says which and why.

mod common;

use common::gradcheck;
use predicates::prelude::*;

/// Whether Mesa's GL adapter is there (it is in CI; elsewhere the test says it skips).
fn gl_adapter() -> bool {
    let out = gradcheck()
        .env("WGPU_BACKEND", "gl")
        .arg("devices")
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&out.stdout).contains(" gl ");
    if !found {
        assert!(
            std::env::var("GRADCHECK_REQUIRE_GPU").as_deref() != Ok("1"),
            "GRADCHECK_REQUIRE_GPU=1 but no GL adapter"
        );
        eprintln!("SKIPPED: no GL adapter");
    }
    found
}

#[test]
fn auto_picks_f32_on_an_adapter_without_f64_and_says_why() {
    if !gl_adapter() {
        return;
    }
    let gl = || {
        let mut cmd = gradcheck();
        cmd.env("WGPU_BACKEND", "gl");
        cmd
    };
    let out = gl()
        .args([
            "check",
            "--device",
            "gpu",
            "--layers",
            "64,32,16,1",
            "--examples",
            "64",
        ])
        .args(["--json", "-"])
        .assert()
        .code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(json["precision"], "f32");
    assert_eq!(json["adapter"]["backend"], "gl");
    assert!(json["placement"]
        .as_str()
        .unwrap()
        .contains("no f64 shaders"));
    // The exercise's bugs are caught there in f32.
    gl().args(["check", "--device", "gpu", "--bug", "dW2=2,db1=4"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("failing: b1, W2"))
        .stdout(predicate::str::contains("· f32 ·"));
    // f64 forced where there is none: refused, naming the adapter.
    gl().args(["check", "--device", "gpu", "--precision", "f64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not support f64 shaders"));
}

#[test]
fn auto_keeps_f64_where_the_device_has_it() {
    if common::gpu().is_none() {
        return;
    }
    let out = gradcheck()
        .env("WGPU_BACKEND", "vulkan")
        .args(["check", "--device", "gpu", "--json", "-"])
        .assert()
        .code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let has_f64 = json["adapter"]["f64"].as_bool().unwrap();
    assert_eq!(json["precision"], if has_f64 { "f64" } else { "f32" });
    // The default on a software adapter: the native CPU path, f64, with the reason.
    let out = gradcheck().args(["check", "--json", "-"]).assert().code(0);
    let json: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    if json["device"] == "cpu" {
        assert_eq!(json["precision"], "f64");
        assert!(!json["placement"].as_str().unwrap().is_empty());
    }
}
