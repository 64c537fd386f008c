//! A network of ops checked coordinate by coordinate on the host, judged as every check
//! is ([`crate::layer::judge_probes`]).

use std::time::Instant;

use rayon::prelude::*;

use super::{probe::probe, NetworkInput};
use crate::error::{Error, Result};
use crate::layer::{judge_probes, Differentiated, LayerOptions, Probed, Subject, STEPS};
use crate::ops::Probe;
use crate::options::{CheckOptions, DeviceChoice, PrecisionChoice};

/// How a network of ops is checked: the options of a network's check that apply to it
/// (the step, the threshold, how many coordinates to name, a partial check); what it
/// cannot honour yet is an error rather than ignored.
pub type NetworkOptions = LayerOptions;

impl NetworkOptions {
    /// The options of a network's check, for a network of ops.
    pub fn of_check(opts: &CheckOptions, partial: bool) -> Result<Self> {
        let refuse = |what: &str| {
            Err(Error::NotAvailable(format!(
                "{what} is not available for a network of ops (normalisation layers, a layer sequence) yet: it is checked on the CPU, every coordinate, in float64"
            )))
        };
        if opts.device == DeviceChoice::Gpu {
            return refuse("the GPU");
        }
        if opts.precision == PrecisionChoice::F32 {
            return refuse("float32 evaluation");
        }
        if opts.sample.is_some() {
            return refuse("checking a sample of coordinates");
        }
        if opts.directions.is_some() {
            return refuse("checking directions");
        }
        Ok(LayerOptions {
            step: opts.eps,
            threshold: opts.threshold,
            top: opts.top,
            grad_precision: opts.grad_precision,
            partial,
        })
    }
}

/// A correct float64 backward's own round-off, in units of its unit round-off, relative
/// to the gradient's scale: sums over the examples and the widest layer, a few roundings
/// per op. An estimate, not a bound; it only matters for float64 gradients whose every
/// coordinate cancels to nearly nothing.
fn grad_scale(input: &NetworkInput) -> f64 {
    let net = &input.network;
    let widest = net.widths.iter().copied().max().unwrap_or(1);
    (net.examples + widest + 10 * net.nodes.len()) as f64
}

/// Checks the network's gradients; `title` heads the report.
pub fn check_network(
    title: &str,
    input: &NetworkInput,
    opts: &NetworkOptions,
) -> Result<crate::report::Report> {
    let start = Instant::now();
    if matches!(opts.grad_precision, Some(crate::options::Precision::F32)) {
        return Err(Error::NotAvailable(
            "judging float32 gradients of a network of ops is not available yet: their round-off is not bounded; compute the backward in float64".into(),
        ));
    }
    let net = &input.network;
    let missing: Vec<String> = net
        .tensors()
        .iter()
        .zip(&input.grads)
        .filter(|(_, g)| g.is_none())
        .map(|(t, _)| format!("d{}", t.name))
        .collect();
    if missing.len() == net.tensors().len() || (!missing.is_empty() && !opts.partial) {
        return Err(Error::Missing(format!(
            "gradients {}: every parameter's gradient is needed (keyed like the parameters, as cs231n's grads, or dW1, …), or check only those given with a partial check",
            missing.join(", ")
        )));
    }
    let base = net.base();
    if !(base.pass.loss.is_finite()) {
        return Err(Error::Network(format!(
            "the loss is {} at the given parameters: nothing can be estimated there",
            base.pass.loss
        )));
    }
    let scale = grad_scale(input);
    let threshold = opts.threshold.unwrap_or(2e-7);
    let probed = net
        .tensors()
        .iter()
        .enumerate()
        .zip(&input.grads)
        .filter_map(|((t, tensor), g)| g.as_ref().map(|g| (t, tensor, g)))
        .map(|(t, tensor, (array, grad))| {
            let probes = if tensor.invariant.is_some() {
                // The derivative is exactly 0; a correct gradient is its own rounding.
                net.shift_rounding(&base, tensor.node)
                    .into_iter()
                    .map(|grad_scale| Probe {
                        grad_scale,
                        ..Probe::default()
                    })
                    .collect()
            } else {
                let mut probes: Vec<Probe> = (0..tensor.value.len())
                    .into_par_iter()
                    .map(|i| tightest(input, &base, (t, i), (opts.step, threshold)))
                    .collect();
                crate::ops::scaled_grad_rounding(&mut probes, scale);
                probes
            };
            Probed {
                name: tensor.name.clone(),
                tensor: tensor.name.clone(),
                array: array.clone(),
                theta: tensor.value.clone(),
                grad: grad.clone(),
                probes,
                invariant: tensor.invariant.clone(),
            }
        })
        .collect();
    let subject = Subject {
        title: title.to_string(),
        source: input.source.clone(),
        what: Differentiated::Network {
            model: net.description.clone(),
            widths: net.widths.clone(),
            examples: net.examples,
            cost: base.pass.loss + net.penalty(),
        },
        kink_site: Some((
            "a unit on its kink",
            ["left derivative", "mid-way", "right derivative"],
        )),
        missing,
        float32: Vec::new(),
        unused: input.unused.clone(),
        placement: format!(
            "the CPU (a network of ops is evaluated on the host, in f64, from the perturbed layer on{})",
            match opts.step {
                Some(_) => String::new(),
                None => format!(
                    "; steps {:e} … {:e}, the tightest bound per coordinate kept",
                    NETWORK_STEPS[0],
                    NETWORK_STEPS[NETWORK_STEPS.len() - 1]
                ),
            }
        ),
        start,
    };
    Ok(judge_probes(subject, probed, opts))
}

/// The steps a network's check takes unless one is given: the layer check's, and two
/// smaller ones for coordinates whose cost curves within 1e-5 (a batch norm over few
/// examples, its columns' spread near √eps). Each coordinate keeps the estimate whose
/// bound is tightest.
pub const NETWORK_STEPS: [f64; 5] = [1e-7, 1e-6, STEPS[0], STEPS[1], STEPS[2]];

/// The order the steps are tried in: the likeliest tightest first.
const TRIED: [usize; 5] = [2, 3, 1, 4, 0];

/// What a bound needs to be, relative to the estimate, for further steps to be pointless:
/// this fraction of the threshold, a tenth of any coordinate's tolerance.
const ENOUGH: f64 = 0.1;

/// The probe at `step`, or at each of [`NETWORK_STEPS`] the one whose bound is tightest —
/// stopping once a bound is within [`ENOUGH`] of the threshold of its estimate, which no
/// further step could change a verdict by.
fn tightest(
    input: &NetworkInput,
    base: &super::Base,
    at: (usize, usize),
    (step, threshold): (Option<f64>, f64),
) -> Probe {
    let net = &input.network;
    if let Some(h) = step {
        return probe(net, base, at, h);
    }
    let bound = |p: &Probe| p.noise + p.truncation;
    let mut best: Option<Probe> = None;
    for &k in &TRIED {
        let p = probe(net, base, at, NETWORK_STEPS[k]);
        if best.as_ref().is_none_or(|b| bound(&p) < bound(b)) {
            best = Some(p);
        }
        let b = best.as_ref().expect("one step tried");
        if b.kink.is_none() && bound(b) <= ENOUGH * threshold * b.estimate.abs() {
            break;
        }
    }
    best.expect("steps")
}
