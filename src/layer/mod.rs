//! The layer-level check: one op's backward, for every input, judged the way a whole
//! network's gradients are (the same verdicts, bounds, diagnoses and report). It
//! differentiates `L = Σ op(inputs)·dout` (a loss: the loss itself), as cs231n's
//! `eval_numerical_gradient_array(f, x, dout)` does, with each coordinate's central
//! difference taken over the outputs it reaches (`ops`).

mod read;

use std::collections::BTreeMap;
use std::time::Instant;

use ndarray::ArrayD;

pub use read::{layer_input, read_layer_npz, LayerSettings};

use crate::check::{compare_trial, Advice, Trial};
use crate::error::{Error, Result};
use crate::estimate::{Estimates, Kink, Site};
use crate::model::{ParamLayout, TensorSpec};
use crate::ops::{Arrays, LayerOp, Role};
use crate::options::{Method, Precision, F32_GRADIENT_THRESHOLD};
use crate::report::{Header, LayerSubject, Report, Scope, Timing};

/// A layer's check as read: the op, its inputs, the upstream gradient and the gradients
/// on trial, each keyed as the course names them (`x`, `dout`, `dx`).
pub struct LayerInput {
    pub op: Box<dyn LayerOp>,
    pub arrays: Arrays,
    /// `None` for a loss (its output is the scalar loss).
    pub dout: Option<ArrayD<f64>>,
    /// `d` + input name → the user's gradient.
    pub grads: BTreeMap<String, ArrayD<f64>>,
    /// The names of the arrays that were stored as float32.
    pub float32: Vec<String>,
    /// How the report names the gradients' source ("gradients from bn.npz").
    pub source: String,
    /// Arrays of the input that the check does not use.
    pub unused: Vec<String>,
}

/// The steps a layer's check takes unless one is given: cs231n's 1e-5, and two larger
/// ones for the ops whose round-off over 1e-5 hides an error of the threshold's size (batch
/// norm's recomputed statistics at a realistic N). Each coordinate keeps the estimate
/// whose bound (round-off + truncation, both derived from the arithmetic, never from the
/// gradient on trial) is tightest.
pub const STEPS: [f64; 3] = [1e-5, 1e-4, 1e-3];

/// How a layer is checked.
#[derive(Clone, Debug)]
pub struct LayerOptions {
    /// The finite difference's step; `None`: each of [`STEPS`], the tightest bound per
    /// coordinate kept.
    pub step: Option<f64>,
    /// `None`: 2e-7 for float64 gradients, 1e-5 for float32 ones.
    pub threshold: Option<f64>,
    pub top: usize,
    /// The precision the gradients were computed in, when coarser than their arrays'.
    pub grad_precision: Option<Precision>,
    /// Check only the inputs whose gradients are given.
    pub partial: bool,
}

impl Default for LayerOptions {
    fn default() -> Self {
        Self {
            step: None,
            threshold: None,
            top: 5,
            grad_precision: None,
            partial: false,
        }
    }
}

impl LayerOptions {
    fn validate(&self) -> Result<()> {
        if let Some(h) = self.step.filter(|h| !(h.is_finite() && *h > 0.0)) {
            return Err(Error::Option(format!(
                "the step must be a finite number > 0, got {h}"
            )));
        }
        if let Some(t) = self.threshold.filter(|t| !(t.is_finite() && *t > 0.0)) {
            return Err(Error::Option(format!(
                "the threshold must be a finite number > 0, got {t}"
            )));
        }
        Ok(())
    }
}

/// An input on trial: its position among the op's inputs, its name, its gradient.
type OnTrial<'a> = (usize, &'static str, &'a ArrayD<f64>);

/// The differentiable inputs on trial, with their gradients: `(input position, name,
/// gradient)`; a missing gradient is an error unless `partial`, and a misshapen one always.
fn on_trial(input: &LayerInput, partial: bool) -> Result<(Vec<OnTrial<'_>>, Vec<String>)> {
    let mut trial = Vec::new();
    let mut missing = Vec::new();
    for (k, spec) in input.op.inputs().iter().enumerate() {
        if spec.role != Role::Differentiable {
            continue;
        }
        let name = format!("d{}", spec.name);
        match input.grads.get(&name) {
            Some(g) => {
                let want = input.arrays[spec.name].shape();
                if g.shape() != want {
                    return Err(Error::Shape(format!(
                        "{name} has shape {:?} but {} has {want:?}: a gradient is shaped like its input",
                        g.shape(),
                        spec.name
                    )));
                }
                if let Some((at, v)) = g.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                    return Err(Error::NonFinite {
                        array: name,
                        at: format!("flat index {at}"),
                        value: *v,
                    });
                }
                trial.push((k, spec.name, g));
            }
            None => missing.push(name),
        }
    }
    if trial.is_empty() || (!missing.is_empty() && !partial) {
        let others = if input.unused.is_empty() {
            String::new()
        } else {
            format!("; the input also holds {}", input.unused.join(", "))
        };
        return Err(Error::Missing(format!(
            "gradient {}: the gradients of {} are needed, every input's (dx included), named d + the input{others}",
            missing.join(", "),
            input.op.describe()
        )));
    }
    Ok((trial, missing))
}

/// Checks the layer's gradients; `title` heads the report.
pub fn check_layer(title: &str, input: &LayerInput, opts: &LayerOptions) -> Result<Report> {
    opts.validate()?;
    let start = Instant::now();
    let op = input.op.as_ref();
    let output = op.output_shape(&input.arrays)?;
    let dout = match (&input.dout, op.takes_dout()) {
        (Some(d), true) => {
            if d.shape() != output.as_slice() {
                return Err(Error::Shape(format!(
                    "dout has shape {:?} but {}'s output has {output:?}: dout is shaped like the output",
                    d.shape(),
                    op.describe()
                )));
            }
            d.clone()
        }
        (None, true) => {
            return Err(Error::Missing(format!(
                "dout: the upstream gradient, shaped like {}'s output {output:?} (np.ones for the plain sum)",
                op.describe()
            )))
        }
        (_, false) => ArrayD::from_elem(ndarray::IxDyn(&[]), 1.0),
    };
    let (trial, missing) = on_trial(input, opts.partial)?;
    let site = op.kink_site().map(|names| (op_name(op), names));
    let probed = trial
        .iter()
        .map(|&(k, name, g)| Probed {
            name: name.to_string(),
            tensor: format!("d{name}"),
            array: format!("d{name}"),
            theta: input.arrays[name].clone(),
            grad: g.clone(),
            probes: tightest(op, &input.arrays, &dout, k, opts.step),
            invariant: None,
        })
        .collect();
    let value = {
        let out = op.forward(&input.arrays);
        out.iter()
            .zip(dout.iter().cycle())
            .map(|(o, d)| o * d)
            .sum()
    };
    let subject = Subject {
        title: title.to_string(),
        source: input.source.clone(),
        what: Differentiated::Layer(LayerSubject {
            op: op.describe(),
            inputs: op
                .inputs()
                .iter()
                .map(|i| (i.name.to_string(), input.arrays[i.name].shape().to_vec()))
                .collect(),
            output,
            dout: op.takes_dout(),
            value,
        }),
        kink_site: site,
        missing,
        float32: input.float32.clone(),
        unused: input.unused.clone(),
        placement: "the CPU (a layer's check runs on the host, in f64)".into(),
        start,
    };
    Ok(judge_probes(subject, probed, opts))
}

/// Input `k`'s probes at `step`, or at each of [`STEPS`] keeping per coordinate the one
/// whose bound is tightest.
fn tightest(
    op: &dyn LayerOp,
    arrays: &Arrays,
    dout: &ArrayD<f64>,
    k: usize,
    step: Option<f64>,
) -> Vec<crate::ops::Probe> {
    if let Some(h) = step {
        return op.probes(arrays, dout, k, h);
    }
    let bound = |p: &crate::ops::Probe| p.noise + p.truncation;
    let mut best = op.probes(arrays, dout, k, STEPS[0]);
    for &h in &STEPS[1..] {
        for (b, p) in best.iter_mut().zip(op.probes(arrays, dout, k, h)) {
            if b.kink.is_none() && p.kink.is_none() && bound(&p) < bound(b) {
                *b = p;
            }
        }
    }
    best
}

/// One tensor's probes and its gradient on trial: what the verdicts are made of.
pub struct Probed {
    /// What it is the gradient of (`x`, `W1`).
    pub name: String,
    /// How its coordinates are named (`dx` for a layer's input, `W1` for a network's).
    pub tensor: String,
    /// The array its gradient was read from.
    pub array: String,
    pub theta: ArrayD<f64>,
    pub grad: ArrayD<f64>,
    /// One per coordinate, in the array's order.
    pub probes: Vec<crate::ops::Probe>,
    /// Why the cost cannot depend on it, when it cannot: its derivative is exactly 0 and
    /// its gradient is judged only against a correct backward's rounding of 0.
    pub invariant: Option<String>,
}

/// What was differentiated: one op (the layer-level check) or a network of ops.
pub enum Differentiated {
    Layer(LayerSubject),
    Network {
        /// What it computes.
        model: String,
        /// Layer widths, input first.
        widths: Vec<usize>,
        examples: usize,
        cost: f64,
    },
}

/// What a check by probes differentiated, for its report.
pub struct Subject {
    pub title: String,
    /// "gradients from bn.npz".
    pub source: String,
    pub what: Differentiated,
    /// Where its kinks sit and the names of their conventions.
    pub kink_site: Option<(&'static str, [&'static str; 3])>,
    /// Gradients not given (a partial check).
    pub missing: Vec<String>,
    /// Arrays stored as float32 (the gradients are then judged as float32).
    pub float32: Vec<String>,
    pub unused: Vec<String>,
    /// Where the differences were evaluated.
    pub placement: String,
    pub start: Instant,
}

/// Judges the probed tensors' gradients as a network's are judged, into a report.
pub fn judge_probes(subject: Subject, probed: Vec<Probed>, opts: &LayerOptions) -> Report {
    let grad_precision = match opts.grad_precision {
        Some(p) => p,
        None if !subject.float32.is_empty() => Precision::F32,
        None => Precision::F64,
    };
    let threshold = opts.threshold.unwrap_or(match grad_precision {
        Precision::F64 => 2e-7,
        Precision::F32 => F32_GRADIENT_THRESHOLD,
    });
    let u_grad = grad_precision.unit_roundoff();
    let mut specs = Vec::new();
    let (mut grad, mut theta, mut roundoff) = (Vec::new(), Vec::new(), Vec::new());
    let (mut approx, mut noise, mut truncation) = (Vec::new(), Vec::new(), Vec::new());
    let mut kinks = BTreeMap::new();
    for p in &probed {
        specs.push(TensorSpec::with_dims(
            &p.tensor,
            p.theta.shape(),
            grad.len(),
        ));
        for probe in &p.probes {
            if let (Some(derivatives), Some((site, names))) = (probe.kink, subject.kink_site) {
                kinks.insert(
                    approx.len(),
                    Kink {
                        layers: vec![(Site::Op(site), names)],
                        derivatives: derivatives
                            .iter()
                            .enumerate()
                            .map(|(c, &d)| (vec![c as u8], d))
                            .collect(),
                        noise: probe.noise,
                        partial: probe.partial,
                    },
                );
            }
            approx.push(probe.estimate);
            noise.push(probe.noise);
            truncation.push(probe.truncation);
            roundoff.push(u_grad * probe.grad_scale);
        }
        grad.extend(p.grad.iter().copied());
        theta.extend(p.theta.iter().copied());
    }
    let estimates = Estimates {
        j_plus: Vec::new(),
        j_minus: Vec::new(),
        gradapprox: approx,
        noise,
        truncation,
        kinks,
        exact: Default::default(),
        checked: Vec::new(),
    };
    let layout = ParamLayout::of_tensors(specs);
    let (model, widths, rows, cost, layer) = match subject.what {
        Differentiated::Layer(layer) => (
            layer.op.clone(),
            Vec::new(),
            probed
                .first()
                .and_then(|p| p.theta.shape().first().copied())
                .unwrap_or(1),
            layer.value,
            Some(layer),
        ),
        Differentiated::Network {
            model,
            widths,
            examples,
            cost,
        } => (model, widths, examples, cost, None),
    };
    let advice = advice(rows, grad_precision, layer.is_none());
    let mut comparison = compare_trial(
        &layout,
        Trial {
            grad: &grad,
            roundoff: Some(&roundoff),
            given: None,
            theta: Some(&theta),
        },
        &estimates,
        threshold,
        opts.top,
        &advice,
    );
    name_swaps(
        &layout,
        &grad,
        &estimates.gradapprox,
        &mut comparison.tensors,
    );
    let mut notes = settle_invariant(
        &layout,
        &probed,
        (&grad, &roundoff, &estimates.gradapprox),
        threshold,
        &mut comparison,
    );
    let header = Header {
        title: subject.title,
        gradients: subject.source,
        gradient_arrays: probed
            .iter()
            .map(|p| (p.name.clone(), p.array.clone()))
            .collect(),
        not_given: subject.missing,
        grad_precision,
        grad_precision_reason: (opts.grad_precision.is_none() && !subject.float32.is_empty()).then(
            || {
                format!(
                    "{} stored as float32: the backward ran in float32",
                    subject.float32.join(", ")
                )
            },
        ),
        threshold,
        params: layout.len(),
        widths,
        examples: rows,
        model,
        layout: "rows".into(),
        cost,
        eps: opts.step.unwrap_or(STEPS[0]),
        precision: Precision::F64,
        method: Method::Full,
        device: "cpu".into(),
        adapter: None,
        placement: subject.placement,
        gpu_declined: false,
        layer,
    };
    let scope = Scope {
        mode: "every coordinate",
        evaluated: layout.len(),
        judged: comparison.checked_coordinates,
        total: layout.len(),
        seed: None,
    };
    let timing = Timing {
        seconds: subject.start.elapsed().as_secs_f64(),
        gpu_seconds: None,
    };
    notes.extend(crate::io::unused_notice(&subject.unused));
    Report::of(header, comparison, scope, notes, timing)
}

/// Judges the tensors the cost provably does not depend on: their derivative is exactly
/// 0, so no relative test could pass them. A gradient within a correct backward's rounding
/// of 0 passes; one beyond it fails where it is large against the whole check's gradients
/// (`threshold` of their norms: it would move the check's difference), and is undecided
/// below that. Returns the notes saying so; their coordinates leave the worst list (a
/// ratio to a tolerance of 0 says nothing).
fn settle_invariant(
    layout: &ParamLayout,
    probed: &[Probed],
    (grad, roundoff, approx): (&[f64], &[f64], &[f64]),
    threshold: f64,
    comparison: &mut crate::check::Comparison,
) -> Vec<String> {
    use crate::check::Verdict;
    let specs = layout.tensors();
    let invariant: Vec<bool> = probed.iter().map(|p| p.invariant.is_some()).collect();
    if !invariant.contains(&true) {
        return Vec::new();
    }
    let norm = |v: &[f64]| {
        specs
            .iter()
            .zip(&invariant)
            .filter(|(_, inv)| !**inv)
            .flat_map(|(t, _)| v[t.range()].iter())
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
    };
    let scale = norm(grad) + norm(approx);
    let mut notes = Vec::new();
    for (k, p) in probed.iter().enumerate() {
        let Some(why) = &p.invariant else { continue };
        let range = specs[k].range();
        let (mut worst, mut beyond, mut bound, mut size) = (0.0f64, 0usize, 0.0f64, 0.0);
        for i in range.clone() {
            worst = worst.max(grad[i].abs());
            bound = bound.max(roundoff[i]);
            beyond += usize::from(grad[i].abs() > roundoff[i]);
            size += grad[i] * grad[i];
        }
        let size = size.sqrt();
        let entries = range.len();
        let tensor = &mut comparison.tensors[k];
        tensor.reason = None;
        tensor.diagnosis = None;
        tensor.failed_coordinates = 0;
        if beyond == 0 {
            tensor.verdict = Verdict::Pass;
            notes.push(format!(
                "{}: {why}, so its gradient is 0; the given one is, to within a correct backward's rounding (|{}| ≤ {worst:.1e})",
                p.name, p.array
            ));
        } else if size > threshold * scale {
            tensor.verdict = Verdict::Fail;
            tensor.failed_coordinates = beyond;
            tensor.diagnosis = Some(format!(
                "{why}, so its gradient is 0, but {beyond} of its {entries} entries {} not (up to {worst:.3e}; a correct backward's rounding reaches {bound:.1e})",
                if beyond == 1 { "is" } else { "are" }
            ));
        } else {
            tensor.verdict = Verdict::Inconclusive;
            tensor.reason = Some(format!(
                "{why}, so its gradient is 0; the given one reaches {worst:.1e}, beyond the rounding this check bounds ({bound:.1e}) but below the threshold of the whole check's gradients ({:.1e})",
                threshold * scale
            ));
        }
    }
    comparison.worst.retain(|c| {
        !specs
            .iter()
            .zip(&invariant)
            .any(|(t, inv)| *inv && t.range().contains(&c.index))
    });
    comparison.failed_coordinates = comparison
        .tensors
        .iter()
        .map(|t| t.failed_coordinates)
        .sum();
    comparison.recombine();
    notes
}

/// Two failing gradients of one shape, each the other's estimate: the backward's outputs
/// returned (or unpacked) in another order. Named on both.
fn name_swaps(
    layout: &ParamLayout,
    grad: &[f64],
    approx: &[f64],
    tensors: &mut [crate::check::TensorCheck],
) {
    let specs = layout.tensors();
    let fits = |a: &TensorSpec, b: &TensorSpec| {
        let (mut diff, mut norm) = (0.0, 0.0);
        for (g, e) in grad[a.range()].iter().zip(&approx[b.range()]) {
            diff += (g - e) * (g - e);
            norm += e * e;
        }
        norm > 0.0 && diff <= 1e-6 * norm
    };
    for i in 0..specs.len() {
        for j in i + 1..specs.len() {
            let failing = |k: usize| tensors[k].verdict == crate::check::Verdict::Fail;
            if specs[i].dims == specs[j].dims
                && failing(i)
                && failing(j)
                && fits(&specs[i], &specs[j])
                && fits(&specs[j], &specs[i])
            {
                for (k, other) in [(i, j), (j, i)] {
                    tensors[k].diagnosis = Some(format!(
                        "swapped with {}: each is the other's estimate (the backward's outputs in another order?)",
                        specs[other].name
                    ));
                }
            }
        }
    }
}

/// The op's bare name (`leaky_relu`), where its kinks sit.
fn op_name(op: &dyn LayerOp) -> &'static str {
    match op.describe().split(' ').next().unwrap_or_default() {
        "relu" => "relu",
        "leaky_relu" => "leaky_relu",
        "svm_loss" => "svm_loss",
        "max_pool" => "max_pool",
        _ => "op",
    }
}

/// What would decide an undecided item of a check by probes of `rows` rows (a layer's, or
/// a network's: every step of its ladder was tried).
fn advice(rows: usize, grad_precision: Precision, network: bool) -> Advice {
    Advice {
        examples: rows,
        roundoff: "the change is below what float64 resolves at any step whose truncation stays small".into(),
        truncation: if network {
            "the cost curves at the scale of every step tried (a batch norm over few examples, a unit near its kink): more examples, or a larger threshold, decide it".into()
        } else {
            "use a smaller step".into()
        },
        gradients: match grad_precision {
            Precision::F32 => "float32 gradients cannot show errors that small; raise the threshold or compute them in float64".into(),
            Precision::F64 => "a correct backward in float64 can be off by this much here (cancelling sums, saturated units): smaller errors cannot be told from rounding; raise the threshold to decide".into(),
        },
        overflow: " even in f64: rescale the inputs".into(),
        model: Default::default(),
    }
}
