//! Finite-difference estimates of the gradient, whichever method or device produced them.

/// Safety factor on the unit round-off in the noise model below. Measured: the largest
/// observed `|gradapprox − reference| / (u·(|J₊|+|J₋|)/h)` over random networks at steps
/// small enough that round-off dominates was 2.5 (CPU f64) and 2.0 (GPU f32 on lavapipe);
/// the delta method's bound, `u·Σ|terms|/2ε`, was exceeded by at most 3.9× (GPU f32). The
/// tests `the_*roundoff_model_bounds_observed_*` keep each under a quarter of this.
pub const ROUNDOFF_SAFETY: f64 = 16.0;

/// Standard deviations of the logits' rounding errors in the bounds that model them as
/// independent (`roundoff::z_variances`): the forward pass's dot products.
pub const SUM_SAFETY: f64 = 8.0;

/// The change one perturbation makes, as the delta method (CPU or GPU) reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeltaCost {
    /// `J(θ + ε e_i) − J(θ)` and `J(θ − ε e_i) − J(θ)`.
    pub plus: f64,
    pub minus: f64,
    /// `Σ_k size_k` over the terms (reduction included), `size_k` what term k's own
    /// roundings are relative to (its parts before they cancel).
    pub sizes: f64,
    /// `Σ_k (|S₊,k| + |S₋,k|)` over the running sums after each addition: what the
    /// additions' round-off is bounded by (the error of a sum is `Σ_k δ_k S_k`, `|δ_k| ≤ u`).
    pub partials: f64,
    /// The estimate's truncation at this step, where the evaluation knows it (the matrix
    /// products' odd orders); otherwise the rows' bound gives it.
    pub truncation: Option<f64>,
}

/// One perturbation's running sums over its terms, as the delta method accumulates them
/// (the CPU twin of per_parameter.wgsl's `Sums`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Sums {
    plus: f64,
    minus: f64,
    sizes: f64,
    partials: f64,
}

impl Sums {
    /// Adds a term to both sums (`down` to the minus step's); `size` is what their own
    /// roundings are relative to. A result below the smallest normal may be flushed to 0:
    /// that number over u per `live` term (its factors nonzero, so its exact value too)
    /// and its additions covers it.
    pub fn add(&mut self, up: f64, down: f64, size: f64, live: bool) {
        let floor = if live { TINY_OVER_U } else { 0.0 };
        self.plus += up;
        self.minus += down;
        self.sizes += size + floor;
        self.partials += self.plus.abs() + self.minus.abs() + 2.0 * floor;
    }

    /// The sums times `scale` (the reduction).
    pub fn finish(self, scale: f64) -> DeltaCost {
        DeltaCost {
            plus: self.plus * scale,
            minus: self.minus * scale,
            sizes: self.sizes * scale,
            partials: self.partials * scale,
            truncation: None,
        }
    }
}

impl DeltaCost {
    /// A bound on the round-off of `plus − minus` in arithmetic of unit round-off `u`, worst
    /// case and to first order in u (the margin covers the rest): each term's at most
    /// [`TERM_ROUNDINGS`] of at most u times its size, each addition's at most u times the
    /// running sum it makes, the reduction's one rounding of each sum. No independence is
    /// assumed: terms alike in size round alike (a sum absorbing many equal terms errs by
    /// all of them in one direction). What a running sum may absorb systematically of terms
    /// far below its ulp is inside this bound too; the odd orders beyond the first are the
    /// truncation, bounded term by term.
    pub fn roundoff(&self, u: f64) -> f64 {
        FIRST_ORDER_MARGIN
            * u
            * (TERM_ROUNDINGS * self.sizes + self.partials + self.plus.abs() + self.minus.abs())
    }
}

/// The smallest normal over u: per term that may be flushed to 0, what covers it.
pub const TINY_OVER_U: f64 = f64::MIN_POSITIVE / F64_UNIT_ROUNDOFF;

/// Covers the second-order terms of the first-order round-off bounds (`(1 + u)^k − 1 ≤
/// 1.01·k·u` while `k·u ≤ 0.02`).
pub const FIRST_ORDER_MARGIN: f64 = 1.01;

/// Roundings one term of the delta method takes, at most, each relative to its size: the
/// step `ε·a` and its product with a gain or a coefficient, the residual's rounding, the
/// cost change's own (a remainder series, or `ln_1p`, `exp_m1` and the subtraction).
pub const TERM_ROUNDINGS: f64 = 8.0;

/// Where a kink of the cost sits, each with its own convention for the slope there: a
/// hidden layer's units (1-based), or an L1 penalty's `|θ|` at θ = 0 on a kind of tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Site {
    Hidden(usize),
    L1(crate::model::TensorKind),
    /// A layer-level check's op (its ReLU inputs or hinge margins at 0).
    Op(&'static str),
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Site::Hidden(l) => write!(f, "layer {l}"),
            Site::L1(crate::model::TensorKind::Weight) => f.write_str("the weights' L1"),
            Site::L1(crate::model::TensorKind::Bias) => f.write_str("the biases' L1"),
            Site::Op(op) => f.write_str(op),
        }
    }
}

/// The conventions for the slope of `|θ|` at 0 (`np.sign`'s, NNFS's `dL1[θ < 0] = −1`, and
/// the other side's), with the slope each gives.
pub const L1_CONVENTIONS: [(&str, f64); 3] =
    [("sign(0)=0", 0.0), ("sign(0)=1", 1.0), ("sign(0)=−1", -1.0)];

/// Where a coordinate's change reaches a hidden unit sitting on its kink (within its own
/// round-off of 0): `J` has no derivative there, and a backprop returns the derivative of
/// the convention it uses for the slope at the kink. The gradient must be one of these.
#[derive(Clone, Debug, PartialEq)]
pub struct Kink {
    /// The sites of the kinks the coordinate reaches (hidden layers, an L1 penalty at 0),
    /// and the names of their conventions (a layer's: below, half-way, above).
    pub layers: Vec<(Site, [&'static str; 3])>,
    /// Each assignment of a convention to those layers (indices into their names), and the
    /// derivative a backprop using it gives.
    pub derivatives: Vec<(Vec<u8>, f64)>,
    /// Round-off bound of the derivatives.
    pub noise: f64,
    /// Whether some assignments were left out (too many layers on kinks to enumerate):
    /// a gradient matching none of those given is then undecided, not failed.
    pub partial: bool,
}

impl Kink {
    /// The derivative the report shows as the estimate: every layer with the first
    /// convention (the slope below the kink, the course's `Z > 0`).
    pub fn course(&self) -> f64 {
        self.derivatives
            .iter()
            .find(|(a, _)| a.iter().all(|&c| c == 0))
            .or(self.derivatives.first())
            .map_or(f64::NAN, |d| d.1)
    }

    /// The assignment (index into `derivatives`) that `conventions` gives this kink's
    /// layers, when it was enumerated.
    pub fn under(&self, conventions: &Conventions) -> Option<usize> {
        self.derivatives.iter().position(|(assignment, _)| {
            self.layers
                .iter()
                .zip(assignment)
                .all(|((l, _), &c)| conventions.chosen.get(l).is_none_or(|&chosen| chosen == c))
        })
    }

    /// The admissible derivative nearest to `grad`, and its index.
    pub fn nearest(&self, grad: f64) -> (usize, f64) {
        self.derivatives
            .iter()
            .enumerate()
            .min_by(|a, b| (a.1 .1 - grad).abs().total_cmp(&(b.1 .1 - grad).abs()))
            .map_or((0, f64::NAN), |(k, d)| (k, d.1))
    }

    /// The name of assignment `k`: `ReLU'(0)=½`, or per layer where they differ.
    pub fn name(&self, k: usize) -> String {
        let assignment = &self.derivatives[k].0;
        let uniform = assignment.windows(2).all(|w| w[0] == w[1]);
        let same_names = self.layers.windows(2).all(|w| w[0].1 == w[1].1);
        if uniform && same_names {
            if let (Some(&c), Some((_, names))) = (assignment.first(), self.layers.first()) {
                return names[c as usize].to_string();
            }
        }
        let parts: Vec<String> = self
            .layers
            .iter()
            .zip(assignment)
            .map(|((site, names), &c)| format!("{} in {site}", names[c as usize]))
            .collect();
        parts.join(", ")
    }

    /// Moves every derivative by `slope` (a term the data cost leaves out, L2).
    pub fn shift(&mut self, slope: f64) {
        for d in &mut self.derivatives {
            d.1 += slope;
        }
    }
}

/// One convention per kink site (a hidden layer, an L1 penalty; an index into its names), the
/// same for every coordinate a check judges at a kink: a backprop applies its slope at a
/// kink one way in a layer wherever it meets one, so a gradient that needs ReLU'(0) = 0
/// for one coordinate and 1 for another of the same layer is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Conventions {
    pub chosen: std::collections::BTreeMap<Site, u8>,
    names: std::collections::BTreeMap<Site, [&'static str; 3]>,
}

impl Conventions {
    /// Assignments enumerated in full up to this many; beyond, layer by layer.
    const ENUMERATED: usize = 729;

    /// The assignment to the kinks' layers under which the fewest of them fail, then the
    /// least total excess; `excess(index, derivative)` is a coordinate's error over its
    /// tolerance against a convention's derivative (above 1 fails).
    pub fn choose<'a>(
        kinks: impl Iterator<Item = (usize, &'a Kink)> + Clone,
        excess: impl Fn(usize, f64) -> f64,
    ) -> Self {
        let mut names: std::collections::BTreeMap<Site, [&'static str; 3]> = Default::default();
        for (_, kink) in kinks.clone() {
            names.extend(kink.layers.iter().copied());
        }
        let layers: std::collections::BTreeMap<Site, usize> =
            names.iter().map(|(&l, n)| (l, n.len())).collect();
        let of = |chosen| Conventions {
            chosen,
            names: names.clone(),
        };
        let score = |c: &Conventions| {
            let (mut fails, mut total) = (0usize, 0.0f64);
            for (index, kink) in kinks.clone() {
                let Some(k) = kink.under(c) else { continue };
                let e = excess(index, kink.derivatives[k].1);
                let e = if e.is_nan() { f64::INFINITY } else { e };
                fails += usize::from(e > 1.0);
                total += e.min(1e300);
            }
            (fails, total)
        };
        let better = |a: (usize, f64), b: (usize, f64)| a.0 < b.0 || (a.0 == b.0 && a.1 < b.1);
        let count = layers
            .values()
            .try_fold(1usize, |n, &k| n.checked_mul(k))
            .unwrap_or(usize::MAX);
        let mut best = of(layers.keys().map(|&l| (l, 0)).collect());
        if layers.is_empty() {
            return best;
        }
        let mut best_score = score(&best);
        if count <= Self::ENUMERATED {
            for n in 1..count {
                let mut rest = n;
                let c = of(layers
                    .iter()
                    .map(|(&l, &k)| {
                        let v = (rest % k) as u8;
                        rest /= k;
                        (l, v)
                    })
                    .collect());
                let s = score(&c);
                if better(s, best_score) {
                    (best, best_score) = (c, s);
                }
            }
        } else {
            // Too many to enumerate: improve one layer at a time until none improves.
            for _ in 0..8 {
                let mut improved = false;
                for (&l, &k) in &layers {
                    for v in 0..k as u8 {
                        let mut c = best.clone();
                        c.chosen.insert(l, v);
                        let s = score(&c);
                        if better(s, best_score) {
                            (best, best_score, improved) = (c, s, true);
                        }
                    }
                }
                if !improved {
                    break;
                }
            }
        }
        best
    }

    /// `ReLU'(0)=0`, or per layer where they differ; `None` without kinks.
    pub fn describe(&self) -> Option<String> {
        let named: Vec<(Site, &str)> = self
            .chosen
            .iter()
            .map(|(l, &c)| (*l, self.names[l][c as usize]))
            .collect();
        match named.as_slice() {
            [] => None,
            [(_, only), rest @ ..] if rest.iter().all(|(_, n)| n == only) => Some(only.to_string()),
            _ => Some(
                named
                    .iter()
                    .map(|(site, n)| format!("{n} in {site}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        }
    }
}

/// J(θ ± h e_i) for every coordinate and what follows from them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Estimates {
    /// `J(θ + ε e_i)`.
    pub j_plus: Vec<f64>,
    /// `J(θ − ε e_i)`.
    pub j_minus: Vec<f64>,
    /// `(J₊ − J₋) / (θ₊ − θ₋)`: the central difference over the step actually taken.
    pub gradapprox: Vec<f64>,
    /// A bound on each estimate's round-off error, so that tiny gradients whose estimate
    /// is pure noise are not called bugs.
    pub noise: Vec<f64>,
    /// A bound on each estimate's truncation error (the step's third-order term); empty
    /// where it was not bounded (directional checks).
    pub truncation: Vec<f64>,
    /// Coordinates whose change reaches a unit on its kink, with the derivative of every
    /// convention a backprop may use there: judged against those instead of the finite
    /// difference.
    pub kinks: std::collections::BTreeMap<usize, Kink>,
    /// Coordinates whose step may cross a kink, where the finite difference estimates no
    /// derivative: their exact derivative (forward mode) stands in.
    pub exact: std::collections::BTreeSet<usize>,
    /// Coordinates that were evaluated at all (a sampled check leaves the rest NaN).
    /// Empty when every coordinate was.
    pub checked: Vec<bool>,
}

impl Estimates {
    /// Builds the estimates from the two costs of each coordinate and the step `θ₊ − θ₋`
    /// actually taken (in f32, `θ ± ε` rounds, and dividing by `2ε` would add that error).
    /// `cost_error` bounds each item's costs' rounding (`roundoff::cost_roundoff`), so each
    /// estimate's is `2·cost_error / step`.
    pub fn from_costs(
        j_plus: Vec<f64>,
        j_minus: Vec<f64>,
        steps: &[f64],
        cost_error: &[f64],
    ) -> Self {
        debug_assert_eq!(j_plus.len(), j_minus.len());
        debug_assert_eq!(j_plus.len(), steps.len());
        let gradapprox = j_plus
            .iter()
            .zip(&j_minus)
            .zip(steps)
            .map(|((p, m), h)| (p - m) / h)
            .collect();
        let noise = steps
            .iter()
            .zip(cost_error)
            .map(|(h, e)| 2.0 * e / h)
            .collect();
        Self {
            j_plus,
            j_minus,
            gradapprox,
            noise,
            truncation: Vec::new(),
            kinks: Default::default(),
            exact: Default::default(),
            checked: Vec::new(),
        }
    }

    /// Builds the estimates of the delta method from `J(θ)` and the cost changes, each
    /// coordinate with its own step (a coordinate limited by its truncation is evaluated
    /// again with a smaller one). Nothing cancels: `(ΔJ₊ − ΔJ₋) / 2ε` has opposite-signed
    /// terms.
    pub fn from_deltas(j: f64, deltas: &[DeltaCost], eps: &[f64], unit_roundoff: f64) -> Self {
        let mut est = Self::default();
        for (d, &e) in deltas.iter().zip(eps) {
            est.j_plus.push(j + d.plus);
            est.j_minus.push(j + d.minus);
            est.gradapprox.push((d.plus - d.minus) / (2.0 * e));
            est.noise.push(d.roundoff(unit_roundoff) / (2.0 * e));
        }
        est
    }

    /// Spreads estimates of the coordinates `indices` (in that order) over all `total`
    /// coordinates: NaN and unchecked elsewhere.
    pub fn scatter(self, indices: &[usize], total: usize) -> Self {
        let spread = |values: &[f64]| {
            if values.is_empty() {
                return Vec::new();
            }
            let mut all = vec![f64::NAN; total];
            for (&i, &v) in indices.iter().zip(values) {
                all[i] = v;
            }
            all
        };
        let mut checked = vec![false; total];
        for &i in indices {
            checked[i] = true;
        }
        Self {
            j_plus: spread(&self.j_plus),
            j_minus: spread(&self.j_minus),
            gradapprox: spread(&self.gradapprox),
            noise: spread(&self.noise),
            truncation: spread(&self.truncation),
            kinks: self
                .kinks
                .into_iter()
                .map(|(k, b)| (indices[k], b))
                .collect(),
            exact: self.exact.into_iter().map(|k| indices[k]).collect(),
            checked,
        }
    }

    /// Whether coordinate `i` was evaluated.
    pub fn is_checked(&self, i: usize) -> bool {
        self.checked.get(i).copied().unwrap_or(true)
    }

    /// The truncation bound of estimate `i` (0 where none was computed).
    pub fn truncation(&self, i: usize) -> f64 {
        self.truncation.get(i).copied().unwrap_or(0.0)
    }

    /// Number of coordinates.
    pub fn len(&self) -> usize {
        self.gradapprox.len()
    }

    /// True when nothing was estimated.
    pub fn is_empty(&self) -> bool {
        self.gradapprox.is_empty()
    }
}

/// `θ + ε` and `θ − ε` as a device computing in `precision` forms them (f32 rounds both),
/// so every method and its reference evaluate J at the same points.
pub fn perturbed_pair(theta: f64, eps: f64, precision: crate::options::Precision) -> (f64, f64) {
    match precision {
        crate::options::Precision::F64 => (theta + eps, theta - eps),
        crate::options::Precision::F32 => {
            let (t, e) = (theta as f32, eps as f32);
            (f64::from(t + e), f64::from(t - e))
        }
    }
}

/// Unit round-off of f64 (2⁻⁵³).
pub const F64_UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
/// Unit round-off of f32 (2⁻²⁴).
pub const F32_UNIT_ROUNDOFF: f64 = f32::EPSILON as f64 / 2.0;
