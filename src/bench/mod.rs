//! The benchmark sweep behind `gradcheck bench` and `benches/`: the parameter-count ladder,
//! the operation counts behind "effective GFLOP/s", and timed whole checks.

pub mod plot;

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::checker::{judge, Engine, Gradients};
use crate::error::Result;
use crate::generate::NetworkSpec;
use crate::model::ModelOptions;
use crate::options::{CheckOptions, DeviceChoice, Method, Precision};

/// One network size: widths (input first) and examples, and the model's settings line
/// (empty: the exercise's ReLU/sigmoid model).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rung {
    pub widths: Vec<usize>,
    pub examples: usize,
    pub model: String,
}

impl Rung {
    pub fn new(widths: &[usize], examples: usize) -> Self {
        Self {
            widths: widths.to_vec(),
            examples,
            model: String::new(),
        }
    }

    /// The same size computing the model `settings` describes.
    pub fn with_model(mut self, settings: &ModelOptions) -> Self {
        self.model = settings.to_line();
        self
    }

    /// The model its settings line resolves to on its widths.
    fn resolved(&self) -> Option<crate::model::Model> {
        ModelOptions::parse_line(&self.model)
            .ok()
            .and_then(|m| m.resolve(self.widths.len() - 1, None).ok())
    }

    /// Whether the classic delta method (row gains) runs it, rather than the series.
    fn classic(&self) -> bool {
        self.resolved().is_some_and(|m| m.is_classic())
    }

    /// Whether every hidden activation is linear between kinks (the host's series then
    /// come from the gains, without jets).
    fn piecewise_linear(&self) -> bool {
        self.resolved().is_some_and(|m| m.linear_between_kinks())
    }

    /// Parameters of the network (weights and biases).
    pub fn params(&self) -> usize {
        self.widths.windows(2).map(|w| w[1] * (w[0] + 1)).sum()
    }

    /// `784-128-64-1, m 64` (and the model's settings, if any).
    pub fn label(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(usize::to_string).collect();
        let label = format!("{}, m {}", widths.join("-"), self.examples);
        if self.model.is_empty() {
            label
        } else {
            format!("{label}, {}", self.model)
        }
    }
}

/// The ladder users benchmark: the exercise up to 3.67M parameters.
pub fn ladder() -> Vec<Rung> {
    vec![
        Rung::new(&[4, 5, 3, 1], 3),
        Rung::new(&[64, 32, 16, 1], 64),
        Rung::new(&[256, 64, 32, 1], 64),
        Rung::new(&[784, 128, 64, 1], 64),
        Rung::new(&[784, 512, 256, 1], 128),
        Rung::new(&[3072, 1024, 512, 1], 128),
    ]
}

/// Floating-point operations one evaluation of a cost-term change costs at the default
/// steps: `expm1` and `log1p` series of 2–3 terms (~4 operations each) plus their setup.
/// An estimate; the linear algebra below is counted exactly.
pub const COST_TERM_FLOPS: f64 = 24.0;

/// Operations a check of `rung` by `method` performs, counting 2 per multiply-add.
///
/// Full: every one of the 2P perturbations runs the forward pass's matrix products,
/// `2·m·Σ n_l·n_(l−1)` (biases, activations and the cost left out). Delta: per hidden row
/// and example the host masks and scans the row's column of the next layer and
/// propagates it through the layers beyond (`2·Σ n_l·n_(l−1)` over layers p+2…L); then per
/// parameter and example one step, one comparison, and per output one product and two
/// cost-term changes. Delta beyond the classic model (the series): the same propagation
/// carries ORDER+1 coefficients, and each parameter evaluates two polynomials per example.
pub fn operations(rung: &Rung, method: Method, on_host: bool) -> f64 {
    let w = &rung.widths;
    let m = rung.examples as f64;
    let outputs = *w.last().unwrap_or(&1) as f64;
    let params = rung.params() as f64;
    match method {
        Method::Full => {
            let pass: f64 = w.windows(2).map(|p| 2.0 * (p[0] * p[1]) as f64).sum();
            2.0 * params * m * pass
        }
        Method::Delta if on_host => {
            // Per output one backward pass for the gains; per layer five signed products
            // of the coefficients with the input's powers and one of their magnitudes.
            let pass: f64 = w.windows(2).map(|p| 2.0 * (p[0] * p[1]) as f64).sum();
            let gains = outputs * m * (pass - 2.0 * (w[0] * w[1]) as f64);
            let jets = if rung.piecewise_linear() {
                0.0
            } else {
                let order = crate::cpu::series::ORDER as f64;
                delta_propagation(w, m) * (order + 1.0)
            };
            gains + jets + 6.0 * m * pass
        }
        Method::Delta => {
            let sensitivity = delta_propagation(w, m);
            if !rung.classic() {
                let order = crate::cpu::series::ORDER as f64;
                return sensitivity * (order + 1.0) + params * m * (2.0 + 4.0 * order);
            }
            let per_parameter = m * (2.0 + outputs * (1.0 + 2.0 * COST_TERM_FLOPS + 4.0));
            sensitivity + params * per_parameter
        }
    }
}

/// Per hidden row and example: mask and scan the column `W_(p+1)[:, i]`, then one
/// matrix-vector product per layer beyond (the device's delta method and the series' jets).
fn delta_propagation(w: &[usize], m: f64) -> f64 {
    let layers = w.len() - 1;
    (1..layers)
        .map(|p| {
            let beyond: f64 = (p + 2..=layers)
                .map(|l| 2.0 * (w[l] * w[l - 1]) as f64)
                .sum();
            w[p] as f64 * m * (2.0 * w[p + 1] as f64 + beyond)
        })
        .sum()
}

/// One device, method and precision to sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    pub device: DeviceChoice,
    pub method: Method,
    pub precision: Precision,
}

impl Case {
    /// The check options of this case (default steps and thresholds).
    pub fn options(&self, adapter: Option<&str>) -> CheckOptions {
        CheckOptions {
            device: self.device,
            method: self.method,
            precision: self.precision.into(),
            adapter: adapter.map(str::to_string),
            ..Default::default()
        }
    }
}

/// One timed check.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchRow {
    pub params: usize,
    pub widths: Vec<usize>,
    pub examples: usize,
    /// The model's settings line (empty: ReLU → sigmoid cross-entropy).
    #[serde(default)]
    pub model: String,
    /// "cpu", or "gpu: <adapter name> (<backend>)".
    pub device: String,
    pub method: Method,
    pub precision: Precision,
    /// Wall time of the whole check: evaluation, comparison, report.
    pub wall_seconds: f64,
    /// GPU time of the dispatches, where the adapter has timestamp queries.
    pub gpu_seconds: Option<f64>,
    /// `2P / wall`.
    pub perturbations_per_second: f64,
    /// [`operations`] / wall, in 10⁹ per second.
    pub gflops: f64,
    /// One forward and backward pass of the same network over its examples (the tool's
    /// own, in f64 on the host, best of the repeats): what the check's time is set against.
    #[serde(default)]
    pub forward_backward_seconds: Option<f64>,
    /// The process's peak resident memory during the check, where the system reports it.
    #[serde(default)]
    pub peak_bytes: Option<u64>,
    /// Difference of the correct backprop (a pass is expected).
    pub difference: f64,
    /// No false alarm: the correct backprop did not fail.
    pub passed: bool,
    /// "pass", or "inconclusive" where the evaluation cannot resolve the threshold (f32
    /// whole passes), or "fail".
    #[serde(default)]
    pub verdict: String,
}

/// Times one check of `rung` on `engine`: the best of `repeat` runs (the engine, with its
/// device and pipelines' device, opened beforehand as in a session that checks many nets).
pub fn time_check(
    engine: &Engine,
    case: &Case,
    rung: &Rung,
    repeat: usize,
    adapter: Option<&str>,
) -> Result<BenchRow> {
    let opts = case.options(adapter);
    let problem = NetworkSpec::new(rung.widths.clone(), rung.examples, 7)?
        .with_model(ModelOptions::parse_line(&rung.model)?)?
        .generate();
    let mut best: Option<(f64, crate::report::Report)> = None;
    crate::memory::reset_peak();
    for _ in 0..repeat.max(1) {
        let start = Instant::now();
        let eval = engine.evaluate(&problem, &opts)?;
        let report = judge("bench", &eval, &Gradients::Backprop(None), &opts)?;
        let wall = start.elapsed().as_secs_f64();
        if best.as_ref().is_none_or(|(w, _)| wall < *w) {
            best = Some((wall, report));
        }
    }
    let (wall, report) = best.expect("at least one run");
    let peak_bytes = crate::memory::peak_resident();
    let forward_backward_seconds = (0..repeat.max(3))
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(crate::cpu::backprop::gradients(&problem));
            start.elapsed().as_secs_f64()
        })
        .reduce(f64::min);
    let device = match &report.header.adapter {
        Some(a) => format!("gpu: {} ({})", a.name, a.backend),
        None => "cpu".to_string(),
    };
    let on_host = device == "cpu";
    Ok(BenchRow {
        params: rung.params(),
        widths: rung.widths.clone(),
        examples: rung.examples,
        model: rung.model.clone(),
        device,
        method: case.method,
        precision: case.precision,
        wall_seconds: wall,
        gpu_seconds: report.timing.gpu_seconds,
        perturbations_per_second: 2.0 * rung.params() as f64 / wall,
        gflops: operations(rung, case.method, on_host) / wall * 1e-9,
        forward_backward_seconds,
        peak_bytes,
        difference: report.difference,
        passed: report.verdict != crate::check::Verdict::Fail,
        verdict: report.verdict.as_str().to_string(),
    })
}

/// Below this, a measurement is mostly fixed costs (setup, submits) and predicts nothing.
pub const MIN_PREDICTIVE_SECONDS: f64 = 0.1;

/// The time a check of `next` should take, from a measured check of a smaller rung with
/// the same method, scaled by the operation counts; `None` when the measurement was too
/// short to scale.
pub fn predicted_seconds(measured: &BenchRow, next: &Rung) -> Option<f64> {
    if measured.wall_seconds < MIN_PREDICTIVE_SECONDS {
        return None;
    }
    let done = Rung {
        widths: measured.widths.clone(),
        examples: measured.examples,
        model: measured.model.clone(),
    };
    let on_host = measured.device == "cpu";
    Some(
        measured.wall_seconds * operations(next, measured.method, on_host)
            / operations(&done, measured.method, on_host),
    )
}

/// A Markdown table of `rows`.
pub fn markdown_table(rows: &[BenchRow]) -> String {
    let mut out = String::from(
        "| params | network | device | method | precision | wall s | GPU s | × fwd+bwd | peak MB | perturbations/s | GFLOP/s | difference |\n|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let rung = Rung {
            widths: r.widths.clone(),
            examples: r.examples,
            model: r.model.clone(),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {:.3e} | {:.2} | {:.2e}{} |\n",
            r.params,
            rung.label(),
            r.device,
            r.method.as_str(),
            r.precision.as_str(),
            r.wall_seconds,
            r.gpu_seconds.map_or("–".into(), |s| format!("{s:.3}")),
            r.forward_backward_seconds
                .filter(|&s| s > 0.0)
                .map_or("–".into(), |s| format!("{:.0}", r.wall_seconds / s)),
            r.peak_bytes
                .map_or("–".into(), |b| format!("{:.0}", b as f64 / 1e6)),
            r.perturbations_per_second,
            r.gflops,
            r.difference,
            match (r.passed, r.verdict.as_str()) {
                (false, _) => " (FAIL)",
                (true, "inconclusive") => " (undecided)",
                _ => "",
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ladder_has_the_issue_s_parameter_counts() {
        let counts: Vec<usize> = ladder().iter().map(Rung::params).collect();
        assert_eq!(counts, [47, 2_625, 18_561, 108_801, 533_505, 3_672_065]);
    }

    #[test]
    fn operation_counts_follow_the_methods_complexity() {
        let small = Rung::new(&[64, 32, 16, 1], 64);
        let large = Rung::new(&[256, 64, 32, 1], 64);
        // 64-32-16-1, m 64: one pass is 2·(2048 + 512 + 16) = 5,152 flops per example.
        assert_eq!(
            operations(&small, Method::Full, true),
            2.0 * 2625.0 * 64.0 * 5152.0
        );
        // Full is O(P²m), delta O(Pm) plus the per-row Jacobians.
        let full_ratio =
            operations(&large, Method::Full, false) / operations(&small, Method::Full, false);
        let delta_ratio =
            operations(&large, Method::Delta, false) / operations(&small, Method::Delta, false);
        // On the host the delta method is a few matrix products: O(Σ n_l·n_(l−1)·m).
        let host_ratio =
            operations(&large, Method::Delta, true) / operations(&small, Method::Delta, true);
        assert!(host_ratio < 10.0, "{host_ratio}");
        assert!(
            full_ratio > 40.0 && delta_ratio < 10.0,
            "{full_ratio} {delta_ratio}"
        );
    }
}
