//! Parity through a redesign: the JSON reports of a fixed set of checks — every model,
//! layout, method, device and precision the suite covers, correct and planted-bug
//! gradients, kinks, penalties, dropout, samples and directions — and the exact bits of
//! their estimates (J±, gradapprox, noise, truncation, kinks), compared with
//! `tests/parity/golden.json`. A change that alters any of them fails here and says which
//! case and which field; one that means to (a numerical fix) writes the file again with
//! `GRADCHECK_PARITY_WRITE=1 cargo test --release --test parity` and says why in its
//! commit. The GPU cases run on the adapter the golden file was written on (lavapipe),
//! whose f32 bits they pin; elsewhere they are skipped with a message.

mod common;

use std::collections::BTreeMap;

use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::estimate::Estimates;
use gradcheck::generate::BugSpec;
use gradcheck::options::{CheckOptions, DeviceChoice, Method, PrecisionChoice};
use gradcheck::problem::Problem;
use serde_json::Value;

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/parity/golden.json");

/// The adapter whose f32 bits the GPU cases pin (through Vulkan, with f64).
const PINNED_ADAPTER: &str = "llvmpipe";

struct Case {
    name: String,
    problem: Problem,
    opts: CheckOptions,
    bug: Option<&'static str>,
}

fn cases(gpu: bool) -> Vec<Case> {
    let mut out = Vec::new();
    let models: [(&str, &[usize]); 9] = [
        ("", &[4, 5, 3, 1]),
        ("hidden=tanh", &[3, 6, 4, 2]),
        ("hidden=sigmoid loss=mse", &[4, 5, 3]),
        ("hidden=leaky_relu loss=softmax", &[4, 6, 3]),
        ("hidden=tanh loss=softmax l2=0.7", &[5, 4, 3]),
        ("hidden=relu keep_prob=0.8", &[4, 6, 5, 1]),
        (
            "hidden=tanh loss=mse reduction=sum keep_prob=0.9",
            &[3, 5, 2],
        ),
        (
            "loss=mse_mean weight_l2=0.01 weight_l1=0.003 bias_l2=0.02",
            &[3, 4, 3],
        ),
        ("layout=rows loss=softmax", &[5, 7, 3]),
    ];
    let devices: &[(DeviceChoice, PrecisionChoice)] = if gpu {
        &[
            (DeviceChoice::Cpu, PrecisionChoice::F64),
            (DeviceChoice::Gpu, PrecisionChoice::F64),
            (DeviceChoice::Gpu, PrecisionChoice::F32),
        ]
    } else {
        &[(DeviceChoice::Cpu, PrecisionChoice::F64)]
    };
    for (k, (settings, widths)) in models.iter().enumerate() {
        let problem = common::network_of(settings, widths, 6, 20 + k as u64);
        for &(device, precision) in devices {
            for method in [Method::Delta, Method::Full] {
                for bug in [None, Some("dW1=1.001")] {
                    out.push(Case {
                        name: format!(
                            "{settings:?} {widths:?} {device:?} {precision:?} {} {}",
                            method.as_str(),
                            bug.unwrap_or("correct")
                        ),
                        problem: problem.clone(),
                        opts: CheckOptions {
                            device,
                            precision,
                            method,
                            ..Default::default()
                        },
                        bug,
                    });
                }
            }
        }
    }
    // Kinks (zero biases and a blank example), a sample and directions, on the CPU.
    let kinked = common::rebiased(&common::network_of("", &[4, 6, 5, 1], 8, 3), 1, |_| 0.0);
    for method in [Method::Delta, Method::Full] {
        out.push(Case {
            name: format!("kinks {}", method.as_str()),
            problem: kinked.clone(),
            opts: CheckOptions {
                device: DeviceChoice::Cpu,
                method,
                ..Default::default()
            },
            bug: None,
        });
    }
    let big = common::network_of("hidden=tanh", &[20, 16, 8, 3], 12, 5);
    out.push(Case {
        name: "sample".into(),
        problem: big.clone(),
        opts: CheckOptions {
            device: DeviceChoice::Cpu,
            sample: Some(40),
            ..Default::default()
        },
        bug: None,
    });
    out.push(Case {
        name: "directions".into(),
        problem: big,
        opts: CheckOptions {
            device: DeviceChoice::Cpu,
            method: Method::Full,
            directions: Some(12),
            ..Default::default()
        },
        bug: Some("dW2=1.01"),
    });
    out
}

/// The report's JSON without what varies between runs and machines (time, the adapter's
/// driver and limits), and the estimates' bits.
fn record(case: &Case, engine: &Engine) -> Value {
    let eval = engine.evaluate(&case.problem, &case.opts).unwrap();
    let bug = case.bug.map(|b| b.parse::<BugSpec>().unwrap());
    let report = judge("parity", &eval, &Gradients::Backprop(bug), &case.opts).unwrap();
    let mut json: Value = serde_json::from_str(&report.to_json()).unwrap();
    let object = json.as_object_mut().unwrap();
    object.remove("timing");
    if let Some(adapter) = object.get_mut("adapter").and_then(Value::as_object_mut) {
        adapter.retain(|k, _| k == "name" || k == "backend" || k == "f64");
    }
    object.insert("estimates".into(), bits(&eval.estimates));
    json
}

/// Every number of the estimates by its bits: per field its length and an FNV-1a hash of
/// the bits, so that equal means bit for bit (and the file stays small).
fn bits(est: &Estimates) -> Value {
    let hash = |v: &[f64]| -> Value {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for x in v {
            for byte in x.to_bits().to_le_bytes() {
                h ^= u64::from(byte);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Value::String(format!("{}:{h:016x}", v.len()))
    };
    let kinks: Vec<f64> = est
        .kinks
        .iter()
        .flat_map(|(k, kink)| {
            std::iter::once(*k as f64)
                .chain(kink.derivatives.iter().map(|d| d.1))
                .chain([kink.noise])
        })
        .collect();
    let exact: Vec<f64> = est.exact.iter().map(|&k| k as f64).collect();
    serde_json::json!({
        "j_plus": hash(&est.j_plus),
        "j_minus": hash(&est.j_minus),
        "gradapprox": hash(&est.gradapprox),
        "noise": hash(&est.noise),
        "truncation": hash(&est.truncation),
        "kinks": hash(&kinks),
        "exact": hash(&exact),
    })
}

#[test]
fn reports_and_estimates_match_the_golden_file() {
    let pinned = common::gpu().filter(|ctx| {
        let a = ctx.summary();
        a.name.contains(PINNED_ADAPTER) && a.backend.eq_ignore_ascii_case("vulkan") && a.f64
    });
    if common::gpu().is_some() && pinned.is_none() {
        eprintln!("parity: the GPU cases pin {PINNED_ADAPTER}'s f32 bits; skipped on this adapter");
    }
    let cases = cases(pinned.is_some());
    let mut engines: BTreeMap<String, Engine> = BTreeMap::new();
    let mut got = serde_json::Map::new();
    for case in &cases {
        let key = format!("{:?} {:?}", case.opts.device, case.opts.precision);
        let engine = engines
            .entry(key)
            .or_insert_with(|| Engine::new(&case.opts).unwrap());
        got.insert(case.name.clone(), record(case, engine));
    }
    if std::env::var_os("GRADCHECK_PARITY_WRITE").is_some() {
        std::fs::create_dir_all(std::path::Path::new(GOLDEN).parent().unwrap()).unwrap();
        let text = serde_json::to_string_pretty(&Value::Object(got)).unwrap();
        std::fs::write(GOLDEN, text + "\n").unwrap();
        return;
    }
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(GOLDEN)
            .expect("tests/parity/golden.json: write it with GRADCHECK_PARITY_WRITE=1"),
    )
    .unwrap();
    let golden = golden.as_object().unwrap();
    // Through the same text and parser as the golden file (serde_json reads some floats
    // back an ulp off; the estimates' bits are compared exactly, as hex).
    let got: serde_json::Map<String, Value> =
        serde_json::from_str(&serde_json::to_string_pretty(&Value::Object(got)).unwrap()).unwrap();
    let mut differences = Vec::new();
    for (name, value) in &got {
        match golden.get(name) {
            None => differences.push(format!("{name}: not in the golden file")),
            Some(expected) if expected != value => {
                let fields: Vec<String> = value
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, v)| expected.get(k.as_str()) != Some(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                differences.push(format!("{name}: {}", fields.join(", ")));
            }
            _ => {}
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} cases differ from the golden file:\n{}",
        differences.len(),
        got.len(),
        differences.join("\n")
    );
}
