//! The report: a table for people, JSON for machines.

use std::fmt::Write as _;

use serde::Serialize;

use crate::check::{CoordinateCheck, TensorCheck, Verdict};
use crate::gpu::AdapterSummary;
use crate::options::{Method, Precision};

/// Wall time, and GPU time where timestamp queries measured it.
#[derive(Clone, Debug, Serialize)]
pub struct Timing {
    pub seconds: f64,
    pub gpu_seconds: Option<f64>,
}

/// Which coordinates the check evaluated.
#[derive(Clone, Debug, Serialize)]
pub struct Scope {
    /// "every coordinate", "sample" or "directions".
    pub mode: &'static str,
    /// Coordinates (or directions) evaluated, inconclusive ones included.
    pub evaluated: usize,
    /// Coordinates (or directions) judged: evaluated and not inconclusive.
    pub judged: usize,
    /// All coordinates of the network.
    pub total: usize,
    /// Seed of the draw, for a sample.
    pub seed: Option<u64>,
}

impl Scope {
    pub fn is_sample(&self) -> bool {
        self.mode == "sample"
    }

    pub fn is_directions(&self) -> bool {
        self.mode == "directions"
    }
}

/// Everything one check found, as printed and as written to JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub title: String,
    /// What was checked: "built-in backprop", "gradients from net.npz", …
    pub gradients: String,
    pub verdict: Verdict,
    pub difference: f64,
    pub threshold: f64,
    pub params: usize,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    pub examples: usize,
    /// J(θ), in f64.
    pub cost: f64,
    pub eps: f64,
    pub precision: Precision,
    pub method: Method,
    /// "cpu" or "gpu".
    pub device: String,
    pub adapter: Option<AdapterSummary>,
    pub failed_coordinates: usize,
    /// What was and was not checked.
    pub scope: Scope,
    /// Coordinates whose steps cross a ReLU kink even at the re-check step: not judged.
    pub inconclusive: Vec<String>,
    /// Estimated round-off of the finite differences, relative to the gradient's norm.
    pub noise_level: f64,
    pub tensors: Vec<TensorCheck>,
    pub worst: Vec<CoordinateCheck>,
    pub warnings: Vec<String>,
    pub timing: Timing,
}

impl Report {
    /// Names of the tensors that fail, in layout order.
    pub fn failing_tensors(&self) -> Vec<&str> {
        crate::check::failing_tensors(&self.tensors)
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }

    /// The human report; `color` adds ANSI colours to the verdicts.
    pub fn render(&self, color: bool) -> String {
        let paint = |v: Verdict, text: &str| -> String {
            match (color, v) {
                (false, _) => text.to_string(),
                (true, Verdict::Pass) => format!("\x1b[32m{text}\x1b[0m"),
                (true, Verdict::Fail) => format!("\x1b[1;31m{text}\x1b[0m"),
            }
        };
        let widths: Vec<String> = self.widths.iter().map(usize::to_string).collect();
        let device = match &self.adapter {
            Some(a) => format!("gpu: {} ({})", a.name, a.backend),
            None => format!("cpu ({} threads)", rayon::current_num_threads()),
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        let _ = writeln!(
            out,
            "network {} · m = {} · {} parameters · J = {:.12}",
            widths.join("-"),
            self.examples,
            self.params,
            self.cost
        );
        let _ = writeln!(
            out,
            "{device} · {} · method {} · eps {:e} · threshold {:e}",
            self.precision.as_str(),
            self.method.as_str(),
            self.eps,
            self.threshold
        );
        let _ = writeln!(out, "checking: {}", self.gradients);
        if self.scope.is_sample() {
            let _ = writeln!(
                out,
                "sample: {} of {} coordinates (seed {}, every tensor represented); the other {} are NOT checked",
                self.scope.evaluated,
                self.scope.total,
                self.scope.seed.unwrap_or_default(),
                self.scope.total - self.scope.evaluated
            );
        }
        if self.scope.is_directions() {
            let _ = writeln!(
                out,
                "directions: {} random unit directions (seed {}), each within one tensor, the tensors in turn; individual coordinates are NOT checked",
                self.scope.evaluated,
                self.scope.seed.unwrap_or_default()
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "  {:<8} {:>10} {:>12} {:>12} {:>8} {:>8}  verdict",
            "tensor", "shape", "difference", "max rel err", "checked", "failing"
        );
        for t in &self.tensors {
            let shape = format!("{}×{}", t.shape[0], t.shape[1]);
            let _ = writeln!(
                out,
                "  {:<8} {:>10} {:>12.3e} {:>12.3e} {:>8} {:>8}  {}",
                t.name,
                shape,
                t.difference,
                t.max_rel_error,
                t.checked_coordinates,
                t.failed_coordinates,
                paint(t.verdict, t.verdict.as_str())
            );
        }
        if !self.worst.is_empty() {
            let _ = writeln!(
                out,
                "\n  worst {} (error / tolerance):",
                if self.scope.is_directions() {
                    "directions"
                } else {
                    "coordinates"
                }
            );
            for c in &self.worst {
                let _ = writeln!(
                    out,
                    "  {:<12} grad {:>13.6e}  approx {:>13.6e}  rel err {:.2e}  ({:.2}×)",
                    c.name, c.grad, c.gradapprox, c.rel_error, c.excess
                );
            }
        }
        if !self.inconclusive.is_empty() {
            let shown: Vec<&str> = self
                .inconclusive
                .iter()
                .take(10)
                .map(String::as_str)
                .collect();
            let more = self.inconclusive.len().saturating_sub(shown.len());
            let _ = writeln!(
                out,
                "\n  inconclusive (steps cross a ReLU kink, left out of the verdict): {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "\n  warning: {w}");
        }
        let verdict = match (self.verdict, self.scope.mode) {
            (Verdict::Pass, "sample") => {
                "PASS ON THE SAMPLE: backprop agrees with finite differences where checked"
            }
            (Verdict::Fail, "sample") => {
                "FAIL: backprop disagrees with finite differences on the sample"
            }
            (Verdict::Pass, "directions") => {
                "PASS ALONG THE DIRECTIONS: directional derivatives agree with finite differences"
            }
            (Verdict::Fail, "directions") => {
                "FAIL: directional derivatives disagree with finite differences"
            }
            (Verdict::Pass, _) => "PASS: backprop agrees with finite differences",
            (Verdict::Fail, _) => "FAIL: backprop disagrees with finite differences",
        };
        let items = if self.scope.is_directions() {
            "directions"
        } else {
            "coordinates"
        };
        let failing = self.failing_tensors();
        let _ = write!(
            out,
            "\n{}  difference {:.10e} (threshold {:e}), {} of {} {items} beyond tolerance",
            paint(self.verdict, verdict),
            self.difference,
            self.threshold,
            self.failed_coordinates,
            self.scope.judged
        );
        if self.scope.is_sample() {
            let _ = write!(
                out,
                " ({} of {} coordinates not checked)",
                self.scope.total - self.scope.evaluated,
                self.scope.total
            );
        }
        if !failing.is_empty() {
            let _ = write!(out, "; failing: {}", failing.join(", "));
        }
        let gpu = self
            .timing
            .gpu_seconds
            .map(|s| format!(", GPU {s:.4} s"))
            .unwrap_or_default();
        let _ = writeln!(out, "\ntime {:.4} s{gpu}", self.timing.seconds);
        out
    }
}
