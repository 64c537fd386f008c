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
    /// Coordinates (or directions) evaluated.
    pub evaluated: usize,
    /// Coordinates (or directions) judged: evaluated, of the tensors on trial.
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

/// What a check is about to do, known before any work: printed first, so that a long
/// check says what it is doing, and again at the head of the report.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub title: String,
    /// What was checked: "built-in backprop", "gradients from net.npz", …
    pub gradients: String,
    /// `(tensor, array)`: which array of the input was read as which tensor's gradient.
    pub gradient_arrays: Vec<(String, String)>,
    /// Tensors whose gradients were not given, and so not checked.
    pub not_given: Vec<String>,
    /// The precision the gradients are judged at: f32 adds their own round-off to every
    /// bound.
    pub grad_precision: Precision,
    /// Why, where it is not their arrays' (float64 arrays of float32 values).
    pub grad_precision_reason: Option<String>,
    pub threshold: f64,
    pub params: usize,
    /// Layer widths, input first.
    pub widths: Vec<usize>,
    pub examples: usize,
    /// What the network computes: `relu,relu → sigmoid + binary cross-entropy (mean)`.
    pub model: String,
    /// How the user's arrays are laid out ("columns" or "rows"): coordinates are named in it.
    pub layout: String,
    /// J(θ), in f64.
    pub cost: f64,
    pub eps: f64,
    pub precision: Precision,
    pub method: Method,
    /// "cpu" or "gpu".
    pub device: String,
    pub adapter: Option<AdapterSummary>,
    /// Why this device and precision.
    pub placement: String,
    /// Whether `auto` left a GPU for the CPU (see [`Header::hint_gpu`]).
    #[serde(skip)]
    pub gpu_declined: bool,
    /// A layer-level check's op and arrays (absent from a network's check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerSubject>,
}

/// What a layer-level check differentiates: `L = Σ op(inputs)·dout`, or a loss itself.
#[derive(Clone, Debug, Serialize)]
pub struct LayerSubject {
    /// The op and its hyperparameters: `batchnorm eps=0.00001`.
    pub op: String,
    /// Every input, with its shape.
    pub inputs: Vec<(String, Vec<usize>)>,
    /// The output's shape (empty for a loss).
    pub output: Vec<usize>,
    /// Whether an upstream gradient `dout` weights the output (a loss has none).
    pub dout: bool,
    /// `L` at the inputs.
    pub value: f64,
}

/// `4×5`, or `scalar` for a 0-d shape.
fn shape_text(shape: &[usize]) -> String {
    if shape.is_empty() {
        return "scalar".into();
    }
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    dims.join("×")
}

impl Header {
    /// Where `auto` left a GPU for the CPU, says how to ask for it (`ask`: the front end's
    /// own words, `--device gpu` or `device="gpu"`).
    pub fn hint_gpu(&mut self, ask: &str) {
        if self.gpu_declined {
            self.placement
                .push_str(&format!(" ({ask} to use it anyway)"));
            self.gpu_declined = false;
        }
    }

    /// The lines that say what is checked, where and how.
    pub fn render(&self) -> String {
        let widths: Vec<String> = self.widths.iter().map(usize::to_string).collect();
        let device = match &self.adapter {
            Some(a) => format!("gpu: {} ({})", a.name, a.backend),
            None => format!("cpu ({} threads)", rayon::current_num_threads()),
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.title);
        if let Some(layer) = &self.layer {
            let inputs: Vec<String> = layer
                .inputs
                .iter()
                .map(|(name, shape)| format!("{name} {}", shape_text(shape)))
                .collect();
            let _ = writeln!(
                out,
                "layer {} · {} → {} · {} coordinates · L = {} = {:.12}",
                layer.op,
                inputs.join(", "),
                shape_text(&layer.output),
                self.params,
                if layer.dout {
                    "Σ out·dout"
                } else {
                    "the loss"
                },
                layer.value
            );
            let _ = writeln!(
                out,
                "{device} · {} · central differences per coordinate · eps {:e} · threshold {:e}",
                self.precision.as_str(),
                self.eps,
                self.threshold
            );
        } else {
            let _ = writeln!(
                out,
                "network {} · m = {} · {} parameters · J = {:.12}",
                widths.join("-"),
                self.examples,
                self.params,
                self.cost
            );
            let _ = writeln!(out, "model {} · layout {}", self.model, self.layout);
            let _ = writeln!(
                out,
                "{device} · {} · method {} · eps {:e} · threshold {:e}",
                self.precision.as_str(),
                self.method.as_str(),
                self.eps,
                self.threshold
            );
        }
        let _ = writeln!(out, "placement: {}", self.placement);
        let _ = writeln!(
            out,
            "checking: {} · judged as {} gradients",
            self.gradients,
            self.grad_precision.as_str()
        );
        if let Some(why) = &self.grad_precision_reason {
            let _ = writeln!(out, "gradient precision: {why}");
        }
        if !self.gradient_arrays.is_empty() {
            let read: Vec<String> = self
                .gradient_arrays
                .iter()
                .map(|(t, a)| {
                    if a == &format!("d{t}") {
                        a.clone()
                    } else {
                        format!("{t}←{a}")
                    }
                })
                .collect();
            let _ = writeln!(out, "gradient arrays: {}", read.join(", "));
        }
        if !self.not_given.is_empty() {
            let _ = writeln!(out, "not given, NOT checked: {}", self.not_given.join(", "));
        }
        out
    }
}

/// Everything one check found, as printed and as written to JSON.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub header: Header,
    pub verdict: Verdict,
    /// Why the check is inconclusive, when it is.
    pub reason: Option<String>,
    /// What the failing tensors share, when one cause explains them all.
    pub diagnosis: Option<String>,
    pub difference: f64,
    /// The smallest global difference the evaluation can tell from its own error.
    pub resolution: f64,
    pub failed_coordinates: usize,
    /// Coordinates below their own resolution (judged through their tensor's norms).
    pub unresolved_coordinates: usize,
    /// Coordinates whose change reaches a unit on its kink, judged against the
    /// derivatives of the conventions a backprop may use there.
    pub kink_coordinates: usize,
    /// The conventions (one per layer) those were judged by: the ones that fit best.
    pub conventions: Option<String>,
    /// What was and was not checked.
    pub scope: Scope,
    pub tensors: Vec<TensorCheck>,
    pub worst: Vec<CoordinateCheck>,
    pub warnings: Vec<String>,
    pub timing: Timing,
}

impl Report {
    /// The report of a comparison, under `header`.
    pub fn of(
        header: Header,
        comparison: crate::check::Comparison,
        scope: Scope,
        warnings: Vec<String>,
        timing: Timing,
    ) -> Self {
        Report {
            header,
            verdict: comparison.verdict,
            reason: comparison.reason,
            difference: comparison.difference,
            resolution: comparison.resolution,
            failed_coordinates: comparison.failed_coordinates,
            unresolved_coordinates: comparison.unresolved_coordinates,
            kink_coordinates: comparison.kink_coordinates,
            conventions: comparison.conventions,
            diagnosis: comparison.diagnosis,
            scope,
            tensors: comparison.tensors,
            worst: comparison.worst,
            warnings,
            timing,
        }
    }

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
        self.header.render() + &self.render_findings(color)
    }

    /// The report without its header: what the evaluation found.
    pub fn render_findings(&self, color: bool) -> String {
        let paint = |v: Verdict, text: &str| -> String {
            match (color, v) {
                (false, _) => text.to_string(),
                (true, Verdict::Pass) => format!("\x1b[32m{text}\x1b[0m"),
                (true, Verdict::Fail) => format!("\x1b[1;31m{text}\x1b[0m"),
                (true, Verdict::Inconclusive) => format!("\x1b[1;33m{text}\x1b[0m"),
            }
        };
        let mut out = String::new();
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
            "  {:<8} {:>10} {:>11} {:>10} {:>9} {:>8} {:>8}  verdict",
            "tensor", "shape", "difference", "rel_error", "ratio", "checked", "failing"
        );
        for t in &self.tensors {
            let dims: Vec<String> = t.shape.iter().map(usize::to_string).collect();
            let shape = dims.join("×");
            let mut verdict = paint(t.verdict, t.verdict.as_str());
            if t.decided_at_kinks {
                verdict.push_str(&format!(
                    " ({} at a kink: decided only there, as a convention's derivative)",
                    t.kink_coordinates
                ));
            } else if t.kink_coordinates > 0 {
                verdict.push_str(&format!(" ({} at a kink)", t.kink_coordinates));
            }
            if t.exact_coordinates > 0 {
                verdict.push_str(&format!(
                    " ({} exact: the step may cross a kink)",
                    t.exact_coordinates
                ));
            }
            let _ = writeln!(
                out,
                "  {:<8} {:>10} {:>11.3e} {:>10.2e} {:>9.4} {:>8} {:>8}  {verdict}",
                t.name,
                shape,
                t.difference,
                t.rel_error,
                t.ratio,
                t.checked_coordinates,
                t.failed_coordinates,
            );
            if let Some(d) = &t.diagnosis {
                let _ = writeln!(out, "  {:<8} ↳ {d}", "");
            }
            if let Some(r) = &t.reason {
                let _ = writeln!(out, "  {:<8} ↳ undecided: {r}", "");
            }
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
                let approx = match &c.kink {
                    Some(k) => {
                        let others: Vec<String> = k
                            .conventions
                            .iter()
                            .filter(|(name, _)| *name != k.convention)
                            .map(|(name, v)| format!("{name} {v:.6e}"))
                            .collect();
                        format!(
                            "at a kink: {} {:.6e} (the check's of {}; {})",
                            k.convention,
                            k.derivative,
                            k.combinations,
                            others.join(", ")
                        )
                    }
                    None => format!("approx {:>13.6e}", c.gradapprox),
                };
                let _ = writeln!(
                    out,
                    "  {:<12} grad {:>13.6e}  {approx}  rel err {:.2e}  ({:.2}×, {})",
                    c.name,
                    c.grad,
                    c.rel_error,
                    c.excess,
                    c.verdict.as_str()
                );
            }
        }
        if let (Some(c), true) = (&self.conventions, self.kink_coordinates > 0) {
            let _ = writeln!(
                out,
                "\n  at kinks: {} {} judged by {c} (a backprop's one convention per layer; the best fitting)",
                self.kink_coordinates,
                if self.scope.is_directions() { "directions" } else { "coordinates" },
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
            (Verdict::Pass, _) if !self.header.not_given.is_empty() => {
                "PASS ON THE GIVEN TENSORS: backprop agrees with finite differences"
            }
            (Verdict::Pass, _) => "PASS: backprop agrees with finite differences",
            (Verdict::Fail, _) => "FAIL: backprop disagrees with finite differences",
            (Verdict::Inconclusive, _) => {
                "INCONCLUSIVE: no error seen, but this evaluation cannot resolve the threshold"
            }
        };
        let items = if self.scope.is_directions() {
            "directions"
        } else {
            "coordinates"
        };
        let failing = self.failing_tensors();
        let _ = write!(
            out,
            "\n{}  difference {:.10e} (threshold {:e}, resolution {:.1e}), {} of {} {items} beyond tolerance",
            paint(self.verdict, verdict),
            self.difference,
            self.header.threshold,
            self.resolution,
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
        if let Some(reason) = &self.reason {
            let _ = write!(out, "\n  why: {reason}");
        }
        if let Some(d) = &self.diagnosis {
            let _ = write!(out, "\n  ↳ {d}");
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
