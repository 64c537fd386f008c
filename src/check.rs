//! The comparison itself: gradapprox against backprop, globally, per tensor and per
//! coordinate, with a verdict at each level.

use serde::Serialize;

use crate::estimate::{Conventions, Estimates, Kink};
use crate::model::{ParamLayout, TensorSpec};

/// The outcome of a comparison, at every level (coordinate, tensor, check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Nothing wrong was seen, but the evaluation could not have seen an error of the
    /// threshold's size: not a pass.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Fail if any fails, else inconclusive if any is, else pass (pass for none).
    pub fn combine(verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
        verdicts
            .into_iter()
            .fold(Verdict::Pass, |acc, v| match (acc, v) {
                (Verdict::Fail, _) | (_, Verdict::Fail) => Verdict::Fail,
                (Verdict::Inconclusive, _) | (_, Verdict::Inconclusive) => Verdict::Inconclusive,
                _ => Verdict::Pass,
            })
    }
}

/// What limits how small an error the evaluation can see, each a bound on the error of
/// the comparison `|grad − approx|` from one source (norms over a tensor or the check).
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Resolution {
    /// Round-off of the finite differences (precision and step).
    pub roundoff: f64,
    /// Truncation of the central difference (the step's size).
    pub truncation: f64,
    /// Round-off of the gradients under test (float32 gradients).
    pub gradients: f64,
}

impl Resolution {
    /// The combined bound (the sources add up).
    pub fn total(&self) -> f64 {
        self.roundoff + self.truncation + self.gradients
    }
}

/// One tensor's share of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct TensorCheck {
    pub name: String,
    /// As the user's arrays have it (a rows-layout weight is `n_in × n_out`).
    pub shape: Vec<usize>,
    /// `‖grad − approx‖ / (‖grad‖ + ‖approx‖)` over this tensor alone.
    pub difference: f64,
    /// cs231n's `rel_error`: `max |g − a| / max(1e-8, |g| + |a|)` over the coordinates.
    pub rel_error: f64,
    /// The least-squares scale of grad against approx (`Σ g·a / Σ a²`): 1 when they agree,
    /// 2 when the gradient is doubled.
    pub ratio: f64,
    /// Relative resolution: `‖bound‖ / (‖grad‖ + ‖approx‖)`, the smallest difference this
    /// tensor's evaluation can tell apart from its own error.
    pub resolution: f64,
    /// Coordinates of this tensor that were judged (not sampled out).
    pub checked_coordinates: usize,
    /// Coordinates of this tensor that fail on their own.
    pub failed_coordinates: usize,
    /// Coordinates whose change reaches a unit on its kink, judged against the derivatives
    /// of the conventions a backprop may use there.
    pub kink_coordinates: usize,
    /// Coordinates whose step may cross a kink, judged against their exact derivative.
    pub exact_coordinates: usize,
    /// Whether every coordinate that decided its pass sits at a kink: the tensor passed
    /// only as the derivative of some convention.
    pub decided_at_kinks: bool,
    pub verdict: Verdict,
    /// Why it is inconclusive and what would decide it.
    pub reason: Option<String>,
    /// For a failing tensor, the pattern of its errors when one fits.
    pub diagnosis: Option<String>,
}

/// One coordinate, as listed among the worst.
#[derive(Clone, Debug, Serialize)]
pub struct CoordinateCheck {
    /// `W2[1,3]`.
    pub name: String,
    /// Flat index.
    pub index: usize,
    pub grad: f64,
    pub gradapprox: f64,
    /// Where the coordinate's change reaches a unit on its kink: the derivatives a correct
    /// backprop may give there, and the one the gradient was measured against.
    pub kink: Option<KinkReport>,
    /// `|grad − approx| / (|grad| + |approx|)`.
    pub rel_error: f64,
    /// Error over its tolerance (`threshold·(|grad|+|approx|) + bound`): above 1 fails.
    pub excess: f64,
    pub verdict: Verdict,
}

/// What the report says of a coordinate at a kink.
#[derive(Clone, Debug, Serialize)]
pub struct KinkReport {
    /// The convention the gradient was judged by (the check's, one per layer), and its
    /// derivative.
    pub convention: String,
    pub derivative: f64,
    /// Every convention's derivative, by name (the uniform ones, when the per-layer
    /// combinations are many).
    pub conventions: Vec<(String, f64)>,
    /// How many conventions (per-layer combinations) were admitted.
    pub combinations: usize,
    /// Whether some combinations were left out (too many layers on kinks).
    pub partial: bool,
}

impl KinkReport {
    /// Combinations listed in full up to this many; beyond, the uniform ones.
    const LISTED: usize = 9;

    fn of(kink: &Kink, grad: f64, convention: Option<usize>) -> Self {
        let (k, derivative) = convention
            .map(|k| (k, kink.derivatives[k].1))
            .unwrap_or_else(|| kink.nearest(grad));
        let listed: Vec<usize> = if kink.derivatives.len() <= Self::LISTED {
            (0..kink.derivatives.len()).collect()
        } else {
            (0..kink.derivatives.len())
                .filter(|&i| kink.derivatives[i].0.windows(2).all(|w| w[0] == w[1]))
                .collect()
        };
        Self {
            convention: kink.name(k),
            derivative,
            conventions: listed
                .into_iter()
                .map(|i| (kink.name(i), kink.derivatives[i].1))
                .collect(),
            combinations: kink.derivatives.len(),
            partial: kink.partial,
        }
    }
}

/// Everything the comparison found.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The exercise's global difference.
    pub difference: f64,
    pub threshold: f64,
    pub verdict: Verdict,
    /// The global resolution, relative to `‖grad‖ + ‖approx‖`.
    pub resolution: f64,
    pub tensors: Vec<TensorCheck>,
    /// The coordinates furthest beyond their tolerance, worst first.
    pub worst: Vec<CoordinateCheck>,
    pub failed_coordinates: usize,
    /// Coordinates judged: all of them, less any a sample left out.
    pub checked_coordinates: usize,
    /// Coordinates whose own bound exceeds what the threshold allows them (tiny gradients
    /// in round-off): undecided one by one, judged through their tensor's norms.
    pub unresolved_coordinates: usize,
    /// Coordinates judged against a kink's one-sided derivatives.
    pub kink_coordinates: usize,
    /// The conventions the kinks were judged by (one per layer, the best fitting), when
    /// there were kinks.
    pub conventions: Option<String>,
    /// Why the check is inconclusive, when it is.
    pub reason: Option<String>,
    /// What the failing tensors have in common, when they share a cause (one factor).
    pub diagnosis: Option<String>,
    /// The verdict of the global norms alone.
    #[serde(skip)]
    pub global: Verdict,
}

impl Comparison {
    /// The verdict and its reason again, after tensors' verdicts were settled otherwise
    /// (a tensor the cost provably does not depend on).
    pub fn recombine(&mut self) {
        let verdict = Verdict::combine(self.tensors.iter().map(|t| t.verdict).chain([self.global]));
        if self.global != Verdict::Inconclusive {
            self.reason = (verdict == Verdict::Inconclusive).then(|| {
                let undecided: Vec<&str> = self
                    .tensors
                    .iter()
                    .filter(|t| t.verdict == Verdict::Inconclusive)
                    .map(|t| t.name.as_str())
                    .collect();
                format!("undecided: {}", undecided.join(", "))
            });
        }
        self.verdict = verdict;
    }

    /// Names of the tensors that fail, in layout order.
    pub fn failing_tensors(&self) -> Vec<&str> {
        failing_tensors(&self.tensors)
    }
}

/// Names of the failing tensors among `tensors`.
pub fn failing_tensors(tensors: &[TensorCheck]) -> Vec<&str> {
    tensors
        .iter()
        .filter(|t| t.verdict == Verdict::Fail)
        .map(|t| t.name.as_str())
        .collect()
}

/// The gradient on trial.
#[derive(Clone, Copy, Debug)]
pub struct Trial<'a> {
    /// Flat, in layout order.
    pub grad: &'a [f64],
    /// Per coordinate, a bound on the gradient's own round-off (float32 gradients).
    pub roundoff: Option<&'a [f64]>,
    /// Per tensor, whether its gradient was given (others are not judged).
    pub given: Option<&'a [bool]>,
    /// θ, flat in layout order, for the diagnoses (an error ∝ θ is an L2 term's).
    pub theta: Option<&'a [f64]>,
}

impl<'a> Trial<'a> {
    /// A float64 gradient of every tensor.
    pub fn exact(grad: &'a [f64]) -> Self {
        Self {
            grad,
            roundoff: None,
            given: None,
            theta: None,
        }
    }
}

/// Compares `grad` with the estimates coordinate by coordinate (see [`compare_trial`]).
pub fn compare(
    layout: &ParamLayout,
    grad: &[f64],
    est: &Estimates,
    threshold: f64,
    top: usize,
) -> Comparison {
    compare_trial(
        layout,
        Trial::exact(grad),
        est,
        threshold,
        top,
        &Advice::default(),
    )
}

/// What the report suggests when an item is undecided, by what limits it, and the
/// number of examples (a factor of m is a diagnosis of its own).
#[derive(Clone, Debug, Default)]
pub struct Advice {
    pub examples: usize,
    pub roundoff: String,
    pub truncation: String,
    pub gradients: String,
    /// What to do where the finite differences overflow (appended to the reason).
    pub overflow: String,
    /// What the diagnoses name factors by: the model's keep probability, its squared
    /// error's convention and outputs, and its L2 factors on `Σθ²` per kind of tensor.
    pub model: ModelFacts,
}

/// What the diagnoses know of the model.
#[derive(Clone, Debug, Default)]
pub struct ModelFacts {
    pub keep_prob: Option<f64>,
    /// The squared-error convention and the number of outputs, for a squared loss.
    pub squared: Option<(crate::model::Loss, usize)>,
    /// Per layer (0-based), the penalties' factors on `Σw²` and `Σb²`.
    pub l2: Vec<(f64, f64)>,
    /// Whether the losses are averaged over the examples.
    pub mean: bool,
    /// Per hidden layer (0-based), its kinked units that are off (z ≤ 0) in some
    /// example: where a wrong ReLU mask shows.
    pub off_units: Vec<OffUnits>,
}

/// A hidden layer's units that are off (z ≤ 0) in some example, and what else acts there.
#[derive(Clone, Debug, Default)]
pub struct OffUnits {
    pub units: std::collections::BTreeSet<usize>,
    /// Its activation's slope below 0, when not 0 (a leaky ReLU).
    pub leak: Option<f64>,
    /// Whether a dropout mask also acts on the layer.
    pub dropout: bool,
}

/// Judges every coordinate, tensor and the whole gradient.
///
/// An item's error is `|g − a|` (at a kink, the distance from `g` to the bracket of
/// one-sided derivatives); its bound `B` sums the finite difference's round-off and
/// truncation and the gradient's own round-off. With `A = threshold·(|g| + |a|)`:
/// - **fail** when the error exceeds `A + B`: no rounding explains it;
/// - **pass** when it does not and `B ≤ A`: an error of twice the threshold would have
///   failed, so the evaluation could see one;
/// - **inconclusive** otherwise: the bound hides errors of the threshold's size.
///
/// Coordinates apply this alone; tensors and the check apply it to their norms, and also
/// fail when any of their coordinates fails. So a bug in one small tensor fails the check
/// even when the global difference stays under the threshold, and a tensor of tiny
/// gradients lost in round-off is inconclusive, not a pass.
pub fn compare_trial(
    layout: &ParamLayout,
    trial: Trial,
    est: &Estimates,
    threshold: f64,
    top: usize,
    advice: &Advice,
) -> Comparison {
    assert_eq!(trial.grad.len(), layout.len(), "gradient length");
    assert_eq!(est.len(), layout.len(), "estimate length");
    let judged = |i: usize| (trial.grad[i], trial.roundoff.map_or(0.0, |r| r[i]));
    let conventions = conventions_for(est, threshold, |i| {
        let t = layout.tensor_number(i);
        trial.given.is_none_or(|g| g[t]).then(|| judged(i))
    });
    let groups = layout
        .tensors()
        .iter()
        .enumerate()
        .filter(|(t, _)| trial.given.is_none_or(|g| g[*t]))
        .map(|(_, spec)| {
            let items = spec.range().filter(|&i| est.is_checked(i)).map(|i| {
                let theta = trial.theta.map_or(f64::NAN, |t| t[i]);
                Judged::of(i, judged(i), est, &conventions).at(theta)
            });
            (spec, items)
        });
    compare_groups(
        groups,
        true,
        |i| layout.coordinate_name(i),
        (threshold, top),
        (advice, &conventions),
    )
}

/// One judged derivative: a coordinate's, or along a direction.
#[derive(Clone, Copy, Debug)]
pub struct Judged<'a> {
    /// Flat coordinate index, or direction number.
    pub index: usize,
    /// The derivative by the gradient on trial.
    pub grad: f64,
    /// Its finite-difference estimate.
    pub approx: f64,
    /// Where the change reaches a unit on its kink: the derivatives a correct backprop may
    /// give there, and the one of the check's conventions (when it was enumerated).
    pub kink: Option<&'a Kink>,
    pub convention: Option<usize>,
    /// Whether the estimate is an exact derivative (the step may cross a kink).
    pub exact: bool,
    /// The parameter (or θ along the direction), NaN where unknown: for the diagnoses.
    pub theta: f64,
    /// Bounds on the comparison's error from each source.
    pub roundoff: f64,
    pub truncation: f64,
    pub grad_roundoff: f64,
}

impl<'a> Judged<'a> {
    /// Estimate `index` (a coordinate, or a direction) against `grad`, whose own round-off
    /// is `grad_roundoff`: at a kink the derivative of the check's `conventions` stands in
    /// for the finite difference.
    pub fn of(
        index: usize,
        (grad, grad_roundoff): (f64, f64),
        est: &'a Estimates,
        conventions: &Conventions,
    ) -> Self {
        let kink = est.kinks.get(&index);
        Judged {
            index,
            grad,
            approx: est.gradapprox[index],
            kink,
            convention: kink.and_then(|k| k.under(conventions)),
            exact: est.exact.contains(&index),
            theta: f64::NAN,
            roundoff: kink.map_or(est.noise[index], |b| b.noise),
            truncation: if kink.is_some() {
                0.0
            } else {
                est.truncation(index)
            },
            grad_roundoff,
        }
    }

    /// With the parameter's value `theta` known (for the diagnoses).
    pub fn at(self, theta: f64) -> Self {
        Self { theta, ..self }
    }

    /// The estimate the gradient is measured against: at a kink, the check's convention's
    /// derivative (the nearest one where its assignment was not enumerated).
    fn reference(&self) -> f64 {
        match (self.kink, self.convention) {
            (Some(k), Some(c)) => k.derivatives[c].1,
            (Some(k), None) => k.nearest(self.grad).1,
            (None, _) => self.approx,
        }
    }
}

/// The conventions a check judges its kinks by: the per-layer assignment that fits the
/// gradient best (`Conventions::choose`); `judged(index)` is an item's gradient and its
/// round-off, `None` for an item the check does not judge.
pub fn conventions_for(
    est: &Estimates,
    threshold: f64,
    judged: impl Fn(usize) -> Option<(f64, f64)>,
) -> Conventions {
    Conventions::choose(
        est.kinks
            .iter()
            .filter(|(&i, _)| judged(i).is_some())
            .map(|(&i, k)| (i, k)),
        |index, derivative| {
            let (g, roundoff) = judged(index).expect("judged");
            let kink = &est.kinks[&index];
            let allowed = threshold * (g.abs() + derivative.abs()) + kink.noise + roundoff;
            (g - derivative).abs() / allowed
        },
    )
}

/// Judges derivatives grouped by tensor (see [`compare_trial`]); `name` names an item's
/// index in the list of the worst.
pub fn compare_groups<'a, 'k, I: Iterator<Item = Judged<'k>>>(
    groups: impl Iterator<Item = (&'a TensorSpec, I)>,
    by_coordinate: bool,
    name: impl Fn(usize) -> String,
    (threshold, top): (f64, usize),
    (advice, conventions): (&Advice, &Conventions),
) -> Comparison {
    let mut worst = Worst::new(top);
    let mut tensors = Vec::new();
    let mut mask_fallbacks = Vec::new();
    let mut total = Norms::default();
    let (mut failed_coordinates, mut checked_coordinates) = (0, 0);
    let (mut unresolved_coordinates, mut kink_coordinates) = (0, 0);
    for (spec, items) in groups {
        let mut norms = Norms::default();
        let mut pattern = Pattern::new(spec);
        let (mut failed, mut checked, mut kinks, mut exact) = (0usize, 0usize, 0usize, 0usize);
        let mut not_finite = 0usize;
        let (mut passed, mut passed_at_kinks) = (0usize, 0usize);
        let mut rel_error = 0.0f64;
        for item in items {
            let (g, a) = (item.grad, item.reference());
            let bound = Resolution {
                roundoff: item.roundoff,
                truncation: item.truncation,
                gradients: item.grad_roundoff,
            };
            if g.is_finite() && !(a.is_finite() && bound.total().is_finite()) {
                // The finite difference overflowed: it estimates nothing, and says so.
                checked += 1;
                not_finite += 1;
                unresolved_coordinates += 1;
                worst.offer(CoordinateCheck {
                    name: String::new(),
                    index: item.index,
                    grad: g,
                    gradapprox: item.approx,
                    kink: None,
                    rel_error: f64::NAN,
                    excess: f64::NAN,
                    verdict: Verdict::Inconclusive,
                });
                continue;
            }
            let err = (g - a).abs();
            let scale = g.abs() + a.abs();
            let mut verdict = judge_one(err, threshold * scale, bound.total());
            let mut bound = bound;
            if verdict == Verdict::Fail && item.kink.is_some_and(|k| k.partial) {
                // Not every convention was enumerated: one left out may be the gradient's,
                // and its distance from the enumerated ones decides nothing, here or in
                // the tensor's norms.
                verdict = Verdict::Inconclusive;
                bound.gradients += err;
            }
            norms.add(g, a, err, &bound);
            checked += 1;
            kinks += usize::from(item.kink.is_some());
            exact += usize::from(item.exact);
            rel_error = rel_error.max(err / scale.max(1e-8));
            if !rel_error.is_finite() {
                rel_error = f64::INFINITY;
            }
            match verdict {
                Verdict::Fail => failed += 1,
                Verdict::Inconclusive => unresolved_coordinates += 1,
                Verdict::Pass => {
                    passed += 1;
                    passed_at_kinks += usize::from(item.kink.is_some());
                }
            }
            // Positions mean something for coordinates only (directions are numbered).
            let local = (by_coordinate).then(|| item.index - spec.offset);
            pattern.add(local, (g, a, item.theta), verdict == Verdict::Fail);
            worst.offer(CoordinateCheck {
                name: String::new(),
                index: item.index,
                grad: g,
                gradapprox: item.approx,
                kink: item.kink.map(|k| KinkReport::of(k, g, item.convention)),
                rel_error: ratio(err, scale),
                excess: ratio(err, threshold * scale + bound.total()),
                verdict,
            });
        }
        // Decided by its norms, and only where at least one of its items was decisive on
        // its own: a tensor none of whose items could see an error of the threshold's
        // size is undecided even if their norms happen to fit.
        let verdict = if failed > 0 {
            Verdict::Fail
        } else if checked == 0 || passed == 0 {
            Verdict::Inconclusive
        } else {
            norms.verdict(threshold)
        };
        let reason = (verdict == Verdict::Inconclusive).then(|| {
            if checked == 0 {
                "no coordinate of it was evaluated".to_string()
            } else if not_finite > 0 {
                format!(
                    "{not_finite} of its {checked} finite differences are not finite: the perturbed costs overflow{}",
                    advice.overflow
                )
            } else if norms.verdict(threshold) == Verdict::Inconclusive {
                norms.reason(threshold, advice)
            } else {
                let (what, hint) = norms.limiting(advice);
                with_hint(
                    format!(
                        "{what} hides an error of the threshold's size in each of its {checked} items"
                    ),
                    hint,
                )
            }
        });
        let diagnosis = (verdict == Verdict::Fail)
            .then(|| pattern.diagnose(&name, spec, advice, true))
            .flatten();
        // A mask's error flows down: it is named only if no layer above fails too.
        let unmasked = (verdict == Verdict::Fail && pattern.mask(spec, advice).is_some())
            .then(|| pattern.diagnose(&name, spec, advice, false));
        mask_fallbacks.push((spec.layer, unmasked));
        tensors.push(TensorCheck {
            name: spec.name.clone(),
            shape: spec.user_shape(),
            difference: norms.difference(),
            rel_error,
            ratio: pattern.ratio(),
            resolution: norms.resolution(),
            checked_coordinates: checked,
            failed_coordinates: failed,
            kink_coordinates: kinks,
            exact_coordinates: exact,
            decided_at_kinks: verdict == Verdict::Pass && passed > 0 && passed == passed_at_kinks,
            verdict,
            reason,
            diagnosis,
        });
        failed_coordinates += failed;
        checked_coordinates += checked;
        kink_coordinates += kinks;
        total.merge(&norms);
    }

    let top_failing = tensors
        .iter()
        .zip(&mask_fallbacks)
        .filter(|(t, _)| t.verdict == Verdict::Fail)
        .map(|(_, (layer, _))| *layer)
        .max();
    for (tensor, (layer, unmasked)) in tensors.iter_mut().zip(mask_fallbacks) {
        if let Some(unmasked) = unmasked.filter(|_| top_failing > Some(layer)) {
            tensor.diagnosis = unmasked;
        }
    }

    let global = if checked_coordinates == 0 {
        Verdict::Inconclusive
    } else {
        total.verdict(threshold)
    };
    let verdict = Verdict::combine(tensors.iter().map(|t| t.verdict).chain([global]));
    let reason = (verdict == Verdict::Inconclusive).then(|| {
        if global == Verdict::Inconclusive && checked_coordinates > 0 {
            total.reason(threshold, advice)
        } else {
            let undecided: Vec<&str> = tensors
                .iter()
                .filter(|t| t.verdict == Verdict::Inconclusive)
                .map(|t| t.name.as_str())
                .collect();
            format!("undecided: {}", undecided.join(", "))
        }
    });
    let worst = worst.into_sorted(name);
    let diagnosis = one_factor(&tensors).map(|r| {
        let named = name_factor(r, advice).map(|t| format!(" ({t})")).unwrap_or_default();
        format!("every tensor is off by the same factor {r:.4}: the loss is scaled differently from the model's{named}")
    });
    Comparison {
        difference: total.difference(),
        threshold,
        verdict,
        resolution: total.resolution(),
        tensors,
        worst,
        failed_coordinates,
        checked_coordinates,
        unresolved_coordinates,
        kink_coordinates,
        conventions: (kink_coordinates > 0)
            .then(|| conventions.describe())
            .flatten(),
        reason,
        diagnosis,
        global,
    }
}

/// The factor every tensor fails by, when they all fail by one (≠ 1): a loss scaled
/// otherwise than the model's, not a bug in one layer.
fn one_factor(tensors: &[TensorCheck]) -> Option<f64> {
    let first = tensors.first()?.ratio;
    let same = tensors.len() > 1
        && tensors.iter().all(|t| {
            t.verdict == Verdict::Fail
                && t.ratio.is_finite()
                && (t.ratio / first - 1.0).abs() < 1e-3
        });
    (same && (first - 1.0).abs() > 1e-3).then_some(first)
}

/// `text`, then what would decide it (`hint`), when there is something to say.
fn with_hint(text: String, hint: &str) -> String {
    if hint.is_empty() {
        text
    } else {
        format!("{text}: {hint}")
    }
}

/// The rule of [`compare_trial`] for one error, its allowance and its bound.
fn judge_one(err: f64, allowed: f64, bound: f64) -> Verdict {
    if !(err.is_finite() && bound.is_finite()) || err > allowed + bound {
        Verdict::Fail
    } else if bound <= allowed {
        Verdict::Pass
    } else {
        Verdict::Inconclusive
    }
}

/// The shape of one tensor's errors, gathered as its coordinates stream past, to name the
/// pattern of a failing tensor.
struct Pattern {
    offset: usize,
    rows: usize,
    cols: usize,
    /// `Σ g·a`, `Σ a²`, `Σ g²`.
    ga: f64,
    aa: f64,
    gg: f64,
    /// With `e = g − a`: `Σ e·θ`, `Σ θ²`, `Σ e²` (NaN θ left out: the L2 test).
    et: f64,
    tt: f64,
    ee: f64,
    /// Failing coordinates per row and per column, and the first failing coordinate.
    failing_rows: std::collections::BTreeMap<usize, usize>,
    failing_cols: std::collections::BTreeMap<usize, usize>,
    first_failing: Option<usize>,
    failing: usize,
    seen: usize,
    /// The tensor's values, kept only for small square tensors (the transpose test).
    square: Option<(Vec<f64>, Vec<f64>)>,
}

/// Square tensors up to this many entries are kept whole for the transpose test.
const TRANSPOSE_TEST_ENTRIES: usize = 1 << 20;

impl Pattern {
    fn new(spec: &TensorSpec) -> Self {
        let [rows, cols] = spec.shape;
        let square = (rows == cols && rows > 1 && spec.len() <= TRANSPOSE_TEST_ENTRIES)
            .then(|| (vec![f64::NAN; spec.len()], vec![f64::NAN; spec.len()]));
        Self {
            offset: spec.offset,
            rows,
            cols,
            ga: 0.0,
            aa: 0.0,
            gg: 0.0,
            et: 0.0,
            tt: 0.0,
            ee: 0.0,
            failing_rows: Default::default(),
            failing_cols: Default::default(),
            first_failing: None,
            failing: 0,
            seen: 0,
            square,
        }
    }

    fn add(&mut self, local: Option<usize>, (g, a, theta): (f64, f64, f64), failed: bool) {
        self.ga += g * a;
        self.aa += a * a;
        self.gg += g * g;
        let e = g - a;
        if theta.is_finite() && e.is_finite() {
            self.et += e * theta;
            self.tt += theta * theta;
            self.ee += e * e;
        }
        self.seen += 1;
        if failed {
            self.failing += 1;
        }
        let Some(local) = local else {
            self.square = None;
            return;
        };
        if let Some((gs, as_)) = &mut self.square {
            gs[local] = g;
            as_[local] = a;
        }
        if failed {
            self.first_failing.get_or_insert(local);
            *self.failing_rows.entry(local / self.cols).or_default() += 1;
            *self.failing_cols.entry(local % self.cols).or_default() += 1;
        }
    }

    /// `Σ g·a / Σ a²`: the scale that best maps the estimate onto the gradient.
    fn ratio(&self) -> f64 {
        if self.aa == 0.0 {
            if self.gg == 0.0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.ga / self.aa
        }
    }

    /// Where the error is proportional to the parameter (`g − a = c·θ`), an L2 term the
    /// model and the backprop count differently: the coefficient on `Σθ²` the gradient fits.
    fn l2_term(&self, spec: &TensorSpec, advice: &Advice) -> Option<String> {
        if !(self.tt > 0.0 && self.ee > 0.0) {
            return None;
        }
        let c = self.et / self.tt;
        let residual = (self.ee - self.et * self.et / self.tt).max(0.0).sqrt();
        if residual > 1e-3 * self.ee.sqrt() || c == 0.0 {
            return None;
        }
        let facts = &advice.model;
        // A layer's inputs have no penalties: no L2 term to name.
        let (weight_l2, bias_l2) = facts.l2.get(spec.layer - 1).copied()?;
        let (have, kind) = match spec.kind {
            crate::model::TensorKind::Weight => (weight_l2, "weight"),
            crate::model::TensorKind::Bias => (bias_l2, "bias"),
        };
        let fits = have + c / 2.0;
        let weight = spec.kind == crate::model::TensorKind::Weight;
        // The course's λ, with its λ/(2m) on ΣW², where the losses are averaged.
        let lambda = |coefficient: f64| {
            (weight && facts.mean && coefficient > 0.0)
                .then_some(2.0 * coefficient * advice.examples as f64)
        };
        let model = if have == 0.0 {
            "the model has none".to_string()
        } else {
            match lambda(have) {
                Some(l) => format!("the model's is {have:.6} (the course's l2 = λ = {l:.6})"),
                None => format!("the model's is {have:.6}"),
            }
        };
        let course = match lambda(fits) {
            Some(l) => format!(", the course's l2 = λ = {l:.6} (λ/(2m))"),
            None => String::new(),
        };
        Some(
            // Rounding leaves a missing term's fit near, not at, zero.
            if have != 0.0 && fits.abs() < 1e-3 * have.abs() {
                format!(
                    "grad − gradapprox = {c:.4} × {}: the L2 term's gradient is missing from the backprop — {model}",
                    spec.name
                )
            } else {
                format!(
                "grad − gradapprox = {c:.4} × {} (proportional to the parameter): an L2 term counted differently; the gradient fits {kind}_l2 = {fits:.6} on Σ{}²{course} — {model}",
                spec.name, spec.name
            )
            },
        )
    }

    /// Where the failing rows (a layer's units) are all units that are off in some example,
    /// the derivative there wrong (a ReLU mask that lets them through): the units named.
    /// Left to the caller to drop where a layer above fails too (its error flows down).
    fn mask(&self, spec: &TensorSpec, advice: &Advice) -> Option<String> {
        let off = advice.model.off_units.get(spec.layer - 1)?;
        if self.failing < 2 || self.failing_rows.is_empty() || off.units.is_empty() {
            return None;
        }
        if !self.failing_rows.keys().all(|r| off.units.contains(r)) {
            return None;
        }
        let shown: Vec<String> = self
            .failing_rows
            .keys()
            .take(8)
            .map(usize::to_string)
            .collect();
        let more = self.failing_rows.len().saturating_sub(8);
        let (units, are) = if self.failing_rows.len() == 1 {
            ("unit", "is")
        } else {
            ("units", "are")
        };
        let cause = match off.leak {
            Some(slope) => format!("the slope below 0 wrong (leaky_relu's is {slope})"),
            None => "a ReLU mask that lets them through (A ≥ 0, or no mask)".to_string(),
        };
        let dropout = if off.dropout {
            ", or the dropout mask not applied there"
        } else {
            ""
        };
        Some(format!(
            "errors only where layer {}'s {units} {}{} {are} off (z ≤ 0) in some examples: {cause}{dropout}?",
            spec.layer,
            shown.join(", "),
            if more > 0 { format!(" and {more} more") } else { String::new() }
        ))
    }

    /// A short sentence naming the pattern of a failing tensor, or, where none fits, saying
    /// that its errors are no common factor (its ratio near 1 says nothing then).
    fn diagnose(
        &self,
        name: &impl Fn(usize) -> String,
        spec: &TensorSpec,
        advice: &Advice,
        masks: bool,
    ) -> Option<String> {
        self.pattern(name, spec, advice, masks).or_else(|| {
            (self.failing > 0).then(|| {
                format!(
                    "{} of its {} entries are off, by no common factor: see the worst coordinates",
                    self.failing, self.seen
                )
            })
        })
    }

    /// The pattern of a failing tensor's errors, when one fits.
    fn pattern(
        &self,
        name: &impl Fn(usize) -> String,
        spec: &TensorSpec,
        advice: &Advice,
        masks: bool,
    ) -> Option<String> {
        let norm = self.gg.sqrt();
        if self.gg == 0.0 && self.aa > 0.0 {
            return Some("all zeros: is this gradient ever computed?".into());
        }
        if self.aa > 0.0 {
            let r = self.ratio();
            let residual = (self.gg - self.ga * self.ga / self.aa).max(0.0).sqrt();
            if residual <= 1e-3 * norm && (r - 1.0).abs() > 1e-3 {
                // One entry always fits a factor: only the telling ones are named then.
                let text = name_factor(r, advice).or_else(|| {
                    (self.seen > 1)
                        .then(|| format!("a constant factor: grad = {r:.4} × gradapprox"))
                });
                if text.is_some() {
                    return text;
                }
            }
        }
        if let Some(text) = self.l2_term(spec, advice) {
            return Some(text);
        }
        if let Some((gs, as_)) = &self.square {
            let n = self.rows;
            let mut diff = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let d = gs[i * n + j] - as_[j * n + i];
                    diff += d * d;
                }
            }
            if diff.is_finite() && diff.sqrt() <= 1e-3 * norm && norm > 0.0 {
                return Some("transposed: grad = gradapproxᵀ".into());
            }
        }
        let first = self.first_failing?;
        if self.failing == 1 && spec.len() > 1 {
            return Some(format!(
                "a single entry: only {} is wrong",
                name(self.offset + first)
            ));
        }
        if let Some(text) = masks.then(|| self.mask(spec, advice)).flatten() {
            return Some(text);
        }
        let list = |set: &std::collections::BTreeMap<usize, usize>| {
            let shown: Vec<String> = set.keys().take(5).map(usize::to_string).collect();
            let more = set.len().saturating_sub(5);
            format!(
                "{}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            )
        };
        let plural = |n: usize, one: &str, many: &str| if n == 1 { one } else { many }.to_string();
        let (nr, nc) = (self.failing_rows.len(), self.failing_cols.len());
        if self.cols == 1 {
            return (nr * 2 <= self.rows).then(|| {
                format!(
                    "only {} {} wrong",
                    plural(nr, "entry", "entries"),
                    list(&self.failing_rows)
                )
            });
        }
        // Internal rows are output units: the user's rows in the course's layout, their
        // columns with examples in rows (W stored n_in × n_out).
        let (row, rows, col, cols) = match spec.data_layout {
            crate::model::DataLayout::Columns => ("row", "rows", "column", "columns"),
            crate::model::DataLayout::Rows => ("column", "columns", "row", "rows"),
        };
        if nr * 2 <= self.rows && nr < self.rows {
            return Some(format!(
                "errors only in {} {} (a wrong mask or index?)",
                plural(nr, row, rows),
                list(&self.failing_rows)
            ));
        }
        if nc * 2 <= self.cols && nc < self.cols {
            return Some(format!(
                "errors only in {} {} (a wrong mask or index?)",
                plural(nc, col, cols),
                list(&self.failing_cols)
            ));
        }
        None
    }
}

/// Names a factor `r` between gradient and estimate by what it equals in this model: −1,
/// m or 1/m, keep_prob or its inverse, another squared-error convention's.
fn name_factor(r: f64, advice: &Advice) -> Option<String> {
    let near = |x: f64| x.is_finite() && x != 0.0 && (r / x - 1.0).abs() < 1e-3;
    let m = advice.examples as f64;
    let facts = &advice.model;
    if near(-1.0) {
        return Some("sign flipped: grad = −gradapprox".into());
    }
    if advice.examples > 1 && near(m) {
        return Some(format!(
            "a constant factor {r:.4} = m: missing 1/m?{}",
            if facts.mean {
                " (or a sum where the model takes the mean)"
            } else {
                ""
            }
        ));
    }
    if advice.examples > 1 && near(1.0 / m) {
        return Some(format!("a constant factor {r:.4} = 1/m: an extra 1/m?"));
    }
    if let Some(p) = facts.keep_prob.filter(|&p| p < 1.0) {
        if near(p) {
            return Some(format!(
                "a constant factor {r:.4} = keep_prob: the dropout mask's 1/keep_prob missing in backprop?"
            ));
        }
        if near(1.0 / p) {
            return Some(format!(
                "a constant factor {r:.4} = 1/keep_prob: the 1/keep_prob applied twice?"
            ));
        }
        if near(p * p) {
            return Some(format!(
                "a constant factor {r:.4} = keep_prob²: the 1/keep_prob missing in two layers' backprop?"
            ));
        }
        if near(1.0 / (p * p)) {
            return Some(format!(
                "a constant factor {r:.4} = 1/keep_prob²: the 1/keep_prob applied twice in two layers?"
            ));
        }
    }
    if let Some((loss, outputs)) = facts.squared {
        use crate::model::Loss;
        let own = loss.squared_factor(outputs)?;
        for other in [Loss::Mse, Loss::MseMean, Loss::Sse] {
            let f = other.squared_factor(outputs)?;
            if other != loss && f != own && near(f / own) {
                return Some(format!(
                    "a constant factor {r:.4}: the squared error's convention — the gradient fits loss={} ({}), the model has {}",
                    other.as_str(),
                    other.formula(),
                    loss.formula()
                ));
            }
        }
    }
    None
}

/// The `top` coordinates with the largest excess, kept as they stream past (a heap of
/// `top`, not a list of every coordinate: millions of parameters need no more memory).
struct Worst {
    top: usize,
    /// Min-heap by rank: its head is the least bad of those kept.
    heap: std::collections::BinaryHeap<std::cmp::Reverse<Ranked>>,
}

/// A coordinate ordered by how bad it is: larger excess first, then lower index.
struct Ranked(CoordinateCheck);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0
            .excess
            .total_cmp(&other.0.excess)
            .then(other.0.index.cmp(&self.0.index))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

impl Worst {
    fn new(top: usize) -> Self {
        Self {
            top,
            heap: std::collections::BinaryHeap::with_capacity(top + 1),
        }
    }

    fn offer(&mut self, c: CoordinateCheck) {
        if self.top == 0 {
            return;
        }
        let ranked = Ranked(c);
        if self.heap.len() < self.top {
            self.heap.push(std::cmp::Reverse(ranked));
        } else if self.heap.peek().is_some_and(|least| ranked > least.0) {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(ranked));
        }
    }

    /// Worst first, named.
    fn into_sorted(self, name: impl Fn(usize) -> String) -> Vec<CoordinateCheck> {
        let mut all: Vec<Ranked> = self.heap.into_iter().map(|r| r.0).collect();
        all.sort_by(|a, b| b.cmp(a));
        all.into_iter()
            .map(|Ranked(mut c)| {
                c.name = name(c.index);
                c
            })
            .collect()
    }
}

/// `num / den`, with `0/0 = 0` (both gradients exactly zero agree perfectly).
fn ratio(num: f64, den: f64) -> f64 {
    if num == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Squared norms accumulated over a set of coordinates.
#[derive(Default)]
struct Norms {
    grad: f64,
    approx: f64,
    err: f64,
    roundoff: f64,
    truncation: f64,
    gradients: f64,
}

impl Norms {
    fn add(&mut self, g: f64, a: f64, err: f64, bound: &Resolution) {
        self.grad += g * g;
        self.approx += a * a;
        self.err += err * err;
        self.roundoff += bound.roundoff * bound.roundoff;
        self.truncation += bound.truncation * bound.truncation;
        self.gradients += bound.gradients * bound.gradients;
    }

    fn merge(&mut self, other: &Norms) {
        self.grad += other.grad;
        self.approx += other.approx;
        self.err += other.err;
        self.roundoff += other.roundoff;
        self.truncation += other.truncation;
        self.gradients += other.gradients;
    }

    fn scale(&self) -> f64 {
        self.grad.sqrt() + self.approx.sqrt()
    }

    /// The norm of the bound vector, by the triangle inequality over its sources.
    fn bound(&self) -> Resolution {
        Resolution {
            roundoff: self.roundoff.sqrt(),
            truncation: self.truncation.sqrt(),
            gradients: self.gradients.sqrt(),
        }
    }

    fn difference(&self) -> f64 {
        ratio(self.err.sqrt(), self.scale())
    }

    fn resolution(&self) -> f64 {
        ratio(self.bound().total(), self.scale())
    }

    fn verdict(&self, threshold: f64) -> Verdict {
        judge_one(
            self.err.sqrt(),
            threshold * self.scale(),
            self.bound().total(),
        )
    }

    /// The largest source of error and what would shrink it.
    fn limiting<'a>(&self, advice: &'a Advice) -> (&'static str, &'a str) {
        let b = self.bound();
        if b.gradients >= b.roundoff && b.gradients >= b.truncation {
            ("the gradients' own round-off", &advice.gradients)
        } else if b.truncation >= b.roundoff {
            ("the step's truncation error", &advice.truncation)
        } else {
            ("the finite differences' round-off", &advice.roundoff)
        }
    }

    /// Why these norms are undecided.
    fn reason(&self, threshold: f64, advice: &Advice) -> String {
        let (what, hint) = self.limiting(advice);
        let text = if self.scale() == 0.0 {
            // Both exactly 0: no relative resolution, only the bound itself.
            format!(
                "the gradient and its estimate are 0, and {what} is {:.1e}: an error below it cannot be seen",
                self.bound().total()
            )
        } else {
            format!(
                "{what} limits the resolution to {:.1e}, above the threshold {threshold:e}",
                ratio(self.bound().total(), self.scale())
            )
        };
        with_hint(text, hint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimates(approx: Vec<f64>) -> Estimates {
        let n = approx.len();
        Estimates {
            j_plus: vec![1.0; n],
            j_minus: vec![1.0; n],
            gradapprox: approx,
            noise: vec![0.0; n],
            truncation: Vec::new(),
            kinks: Default::default(),
            exact: Default::default(),
            checked: Vec::new(),
        }
    }

    #[test]
    fn a_bug_in_one_small_tensor_fails_although_the_global_difference_is_small() {
        let layout = ParamLayout::for_widths(&[100, 50, 1]);
        let grad: Vec<f64> = (0..layout.len()).map(|i| 1.0 + (i % 7) as f64).collect();
        let mut approx = grad.clone();
        let b2 = layout.tensor_named("b2").unwrap().offset;
        approx[b2] *= 1.0 + 1e-5;
        let cmp = compare(&layout, &grad, &estimates(approx), 2e-7, 3);
        assert!(
            cmp.difference < 2e-7,
            "global difference {}",
            cmp.difference
        );
        assert_eq!(cmp.verdict, Verdict::Fail);
        let failing = cmp.failing_tensors();
        assert_eq!(failing, ["b2"]);
        assert_eq!(cmp.worst[0].name, "b2[0]");
        assert_eq!(cmp.failed_coordinates, 1);
    }

    #[test]
    fn noise_covers_estimates_of_tiny_gradients_but_not_real_errors() {
        // W1 (two entries): one large gradient and one lost in round-off; b1 alone in it.
        let layout = ParamLayout::for_widths(&[2, 1]);
        let grad = vec![0.5, 1e-12, 1e-12];
        let mut est = estimates(vec![0.5, 3e-12, 3e-12]);
        est.noise = vec![1e-12, 1e-11, 1e-11];
        let cmp = compare(&layout, &grad, &est, 2e-7, 3);
        assert_eq!(cmp.tensors[0].verdict, Verdict::Pass);
        assert_eq!(cmp.unresolved_coordinates, 2);
        // A tensor whose every gradient is below the resolution is undecided, not a pass.
        assert_eq!(cmp.tensors[1].verdict, Verdict::Inconclusive);
        assert_eq!(cmp.verdict, Verdict::Inconclusive);
        assert!(cmp.tensors[1]
            .reason
            .as_ref()
            .unwrap()
            .contains("round-off"));
        est.gradapprox[0] = 0.5 * (1.0 + 1e-6);
        let cmp = compare(&layout, &grad, &est, 2e-7, 2);
        assert_eq!(cmp.verdict, Verdict::Fail);
        assert_eq!(cmp.worst[0].name, "W1[0,0]");
    }

    #[test]
    fn a_kink_passes_only_a_conventions_derivative_and_fails_what_lies_between() {
        let layout = ParamLayout::for_widths(&[1, 1]);
        let mut est = estimates(vec![0.8, 0.3]);
        let names = ["ReLU'(0)=0", "ReLU'(0)=½", "ReLU'(0)=1"];
        est.kinks.insert(
            1,
            crate::estimate::Kink {
                layers: vec![(crate::estimate::Site::Hidden(1), names)],
                derivatives: vec![(vec![0], 0.2), (vec![1], 0.85), (vec![2], 1.5)],
                noise: 1e-15,
                partial: false,
            },
        );
        for (g, expect) in [
            (0.2, Verdict::Pass),
            (0.85, Verdict::Pass),
            (1.5, Verdict::Pass),
            // Between the conventions is no consistent backprop's derivative.
            (0.3, Verdict::Fail),
            (1.2, Verdict::Fail),
            (0.0, Verdict::Fail),
        ] {
            let cmp = compare(&layout, &[0.8, g], &est, 2e-7, 2);
            assert_eq!(cmp.tensors[1].verdict, expect, "grad {g}");
            assert_eq!(cmp.kink_coordinates, 1);
        }
        // Where not every combination was enumerated, matching none is undecided.
        est.kinks.get_mut(&1).unwrap().partial = true;
        let cmp = compare(&layout, &[0.8, 0.3], &est, 2e-7, 2);
        assert_eq!(cmp.tensors[1].verdict, Verdict::Inconclusive);
    }

    #[test]
    fn a_backprop_uses_one_convention_per_layer_wherever_it_meets_a_kink() {
        let layout = ParamLayout::for_widths(&[1, 1]);
        let mut est = estimates(vec![0.8, 0.3]);
        let names = ["ReLU'(0)=0", "ReLU'(0)=½", "ReLU'(0)=1"];
        for (i, values) in [(0, [0.2, 0.85, 1.5]), (1, [0.1, 0.4, 0.7])] {
            est.kinks.insert(
                i,
                crate::estimate::Kink {
                    layers: vec![(crate::estimate::Site::Hidden(1), names)],
                    derivatives: (0..3u8).map(|c| (vec![c], values[c as usize])).collect(),
                    noise: 1e-15,
                    partial: false,
                },
            );
        }
        let cmp = compare(&layout, &[1.5, 0.7], &est, 2e-7, 2);
        assert_eq!(cmp.verdict, Verdict::Pass);
        assert_eq!(cmp.conventions.as_deref(), Some("ReLU'(0)=1"));
        // Each is some convention's derivative, but no one convention gives both.
        let cmp = compare(&layout, &[0.2, 0.7], &est, 2e-7, 2);
        assert_eq!(cmp.verdict, Verdict::Fail);
        assert_eq!(cmp.failed_coordinates, 1);
    }

    #[test]
    fn failing_tensors_are_diagnosed() {
        let layout = ParamLayout::for_widths(&[3, 3, 1]);
        let approx: Vec<f64> = (0..layout.len()).map(|i| 0.1 + 0.37 * i as f64).collect();
        let w1 = layout.tensor_named("W1").unwrap().range();
        let diagnose = |f: &dyn Fn(&mut Vec<f64>)| {
            let mut grad = approx.clone();
            f(&mut grad);
            let cmp = compare(&layout, &grad, &estimates(approx.clone()), 2e-7, 3);
            (
                cmp.tensors[0].ratio,
                cmp.tensors[0].diagnosis.clone().unwrap_or_default(),
            )
        };
        let (ratio, text) = diagnose(&|g| w1.clone().for_each(|i| g[i] *= 2.0));
        assert!(
            (ratio - 2.0).abs() < 1e-12 && text.contains("constant factor"),
            "{text}"
        );
        assert!(diagnose(&|g| w1.clone().for_each(|i| g[i] = -g[i]))
            .1
            .contains("sign"));
        assert!(diagnose(&|g| w1.clone().for_each(|i| g[i] = 0.0))
            .1
            .contains("zeros"));
        let (_, text) = diagnose(&|g| {
            for r in 0..3 {
                for c in 0..3 {
                    g[r * 3 + c] = approx[c * 3 + r];
                }
            }
        });
        assert!(text.contains("transposed"), "{text}");
        assert!(diagnose(&|g| g[4] *= 1.01).1.contains("only W1[1,1]"));
        assert!(diagnose(&|g| (3..6).for_each(|i| g[i] *= 1.5))
            .1
            .contains("row 1"));
    }

    #[test]
    fn an_overflowed_estimate_is_undecided_and_a_nan_gradient_fails() {
        let layout = ParamLayout::for_widths(&[1, 1]);
        let cmp = compare(
            &layout,
            &[1.0, 1.0],
            &estimates(vec![1.0, f64::NAN]),
            2e-7,
            2,
        );
        assert_eq!(cmp.verdict, Verdict::Inconclusive);
        assert!(cmp.tensors[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("not finite"));
        let cmp = compare(
            &layout,
            &[1.0, f64::NAN],
            &estimates(vec![1.0, 1.0]),
            2e-7,
            2,
        );
        assert_eq!(cmp.verdict, Verdict::Fail);
    }
}
