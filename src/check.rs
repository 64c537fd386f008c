//! The comparison itself: gradapprox against backprop, globally, per tensor and per
//! coordinate, with a verdict at each level.

use serde::Serialize;

use crate::estimate::Estimates;
use crate::model::{ParamLayout, TensorSpec};

/// The outcome of a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
}

impl Verdict {
    fn from_failed(failed: bool) -> Self {
        if failed {
            Verdict::Fail
        } else {
            Verdict::Pass
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        }
    }
}

/// One tensor's share of the comparison.
#[derive(Clone, Debug, Serialize)]
pub struct TensorCheck {
    pub name: String,
    pub shape: [usize; 2],
    /// `‖grad − approx‖ / (‖grad‖ + ‖approx‖)` over this tensor alone.
    pub difference: f64,
    /// Largest per-coordinate relative error in the tensor.
    pub max_rel_error: f64,
    /// Coordinates of this tensor that were judged (not sampled out, not inconclusive).
    pub checked_coordinates: usize,
    /// Coordinates of this tensor that fail on their own.
    pub failed_coordinates: usize,
    pub verdict: Verdict,
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
    /// `|grad − approx| / (|grad| + |approx|)`.
    pub rel_error: f64,
    /// Error over its tolerance (`threshold·(|grad|+|approx|) + noise`): above 1 fails.
    pub excess: f64,
}

/// Everything the comparison found.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// The exercise's global difference.
    pub difference: f64,
    pub threshold: f64,
    pub verdict: Verdict,
    pub tensors: Vec<TensorCheck>,
    /// The coordinates furthest beyond their tolerance, worst first.
    pub worst: Vec<CoordinateCheck>,
    pub failed_coordinates: usize,
    /// Coordinates judged: all of them, less any a sample left out and the inconclusive.
    pub checked_coordinates: usize,
    /// Names of the coordinates left out because their steps cross a ReLU kink.
    pub inconclusive: Vec<String>,
    /// Norm of the finite differences' estimated round-off, relative to the gradient:
    /// above the threshold, the step is too small for the precision to resolve it.
    pub noise_level: f64,
}

impl Comparison {
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

/// Compares `grad` with the estimates coordinate by coordinate.
///
/// A coordinate (or tensor, or the whole vector) fails when its error exceeds
/// `threshold·(|grad| + |approx|)` plus the estimates' own round-off bound; a tensor also
/// fails when any of its coordinates does. So a bug in one small tensor fails the check
/// even when the global difference stays under the threshold. Inconclusive coordinates
/// (steps across a ReLU kink) are left out of every figure and verdict.
pub fn compare(
    layout: &ParamLayout,
    grad: &[f64],
    est: &Estimates,
    threshold: f64,
    top: usize,
) -> Comparison {
    assert_eq!(grad.len(), layout.len(), "gradient length");
    assert_eq!(est.len(), layout.len(), "estimate length");
    let inconclusive = (0..layout.len())
        .filter(|&i| est.is_checked(i) && est.is_inconclusive(i))
        .map(|i| layout.coordinate_name(i))
        .collect();
    let groups = layout.tensors().iter().map(|spec| {
        let items = spec
            .range()
            .filter(|&i| est.is_checked(i) && !est.is_inconclusive(i))
            .map(|i| Judged {
                index: i,
                grad: grad[i],
                approx: est.gradapprox[i],
                noise: est.noise[i],
            });
        (spec, items)
    });
    compare_groups(
        groups,
        inconclusive,
        |i| layout.coordinate_name(i),
        threshold,
        top,
    )
}

/// One judged derivative: a coordinate's, or along a direction.
#[derive(Clone, Copy, Debug)]
pub struct Judged {
    /// Flat coordinate index, or direction number.
    pub index: usize,
    /// The derivative by the gradient on trial.
    pub grad: f64,
    /// Its finite-difference estimate and that estimate's round-off bound.
    pub approx: f64,
    pub noise: f64,
}

/// Judges derivatives grouped by tensor (see [`compare`]); `name` names an item's index
/// in the list of the worst.
pub fn compare_groups<'a, I: Iterator<Item = Judged>>(
    groups: impl Iterator<Item = (&'a TensorSpec, I)>,
    inconclusive: Vec<String>,
    name: impl Fn(usize) -> String,
    threshold: f64,
    top: usize,
) -> Comparison {
    let mut worst = Worst::new(top);
    let mut tensors = Vec::new();
    let mut total = Norms::default();
    let (mut failed_coordinates, mut checked_coordinates) = (0, 0);
    for (spec, items) in groups {
        let mut norms = Norms::default();
        let (mut max_rel, mut failed, mut checked) = (0.0f64, 0usize, 0usize);
        for Judged {
            index,
            grad: g,
            approx: a,
            noise,
        } in items
        {
            let err = (g - a).abs();
            let scale = g.abs() + a.abs();
            let rel = ratio(err, scale);
            let excess = ratio(err, threshold * scale + noise);
            norms.add(g, a, err, noise);
            checked += 1;
            max_rel = max_rel.max(rel);
            if excess > 1.0 || !excess.is_finite() {
                failed += 1;
            }
            worst.offer(CoordinateCheck {
                name: String::new(),
                index,
                grad: g,
                gradapprox: a,
                rel_error: rel,
                excess,
            });
        }
        let verdict = Verdict::from_failed(failed > 0 || norms.fails(threshold));
        tensors.push(TensorCheck {
            name: spec.name.clone(),
            shape: spec.shape,
            difference: norms.difference(),
            max_rel_error: max_rel,
            checked_coordinates: checked,
            failed_coordinates: failed,
            verdict,
        });
        failed_coordinates += failed;
        checked_coordinates += checked;
        total.merge(&norms);
    }

    let any_tensor_failed = tensors.iter().any(|t| t.verdict == Verdict::Fail);
    let verdict = Verdict::from_failed(any_tensor_failed || total.fails(threshold));
    let worst = worst.into_sorted(name);
    Comparison {
        difference: total.difference(),
        threshold,
        verdict,
        tensors,
        worst,
        failed_coordinates,
        checked_coordinates,
        inconclusive,
        noise_level: ratio(total.noise.sqrt(), total.grad.sqrt() + total.approx.sqrt()),
    }
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
    noise: f64,
}

impl Norms {
    fn add(&mut self, g: f64, a: f64, err: f64, noise: f64) {
        self.grad += g * g;
        self.approx += a * a;
        self.err += err * err;
        self.noise += noise * noise;
    }

    fn merge(&mut self, other: &Norms) {
        self.grad += other.grad;
        self.approx += other.approx;
        self.err += other.err;
        self.noise += other.noise;
    }

    fn difference(&self) -> f64 {
        ratio(self.err.sqrt(), self.grad.sqrt() + self.approx.sqrt())
    }

    fn fails(&self, threshold: f64) -> bool {
        let err = self.err.sqrt();
        let tolerance = threshold * (self.grad.sqrt() + self.approx.sqrt()) + self.noise.sqrt();
        err > tolerance || !err.is_finite()
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
            inconclusive: Vec::new(),
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
        let layout = ParamLayout::for_widths(&[1, 1]);
        let grad = vec![0.5, 1e-12];
        let mut est = estimates(vec![0.5, 3e-12]);
        est.noise = vec![1e-12, 1e-11];
        assert_eq!(
            compare(&layout, &grad, &est, 2e-7, 2).verdict,
            Verdict::Pass
        );
        est.gradapprox[0] = 0.5 * (1.0 + 1e-6);
        let cmp = compare(&layout, &grad, &est, 2e-7, 2);
        assert_eq!(cmp.verdict, Verdict::Fail);
        assert_eq!(cmp.worst[0].name, "W1[0,0]");
    }

    #[test]
    fn nan_estimates_fail() {
        let layout = ParamLayout::for_widths(&[1, 1]);
        let cmp = compare(
            &layout,
            &[1.0, 1.0],
            &estimates(vec![1.0, f64::NAN]),
            2e-7,
            2,
        );
        assert_eq!(cmp.verdict, Verdict::Fail);
    }
}
