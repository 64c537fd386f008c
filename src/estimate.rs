//! Finite-difference estimates of the gradient, whichever method or device produced them.

/// Safety factor on the unit round-off in the noise model below. Measured: the largest
/// observed `|gradapprox − reference| / (u·(|J₊|+|J₋|)/h)` over random networks at steps
/// small enough that round-off dominates was 2.5 (CPU f64) and 2.0 (GPU f32 on lavapipe);
/// the tests `the_roundoff_model_bounds_observed_*` keep it under a quarter of this.
pub const ROUNDOFF_SAFETY: f64 = 16.0;

/// The change one perturbation makes, as the delta method (CPU or GPU) reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DeltaCost {
    /// `J(θ + ε e_i) − J(θ)` and `J(θ − ε e_i) − J(θ)`.
    pub plus: f64,
    pub minus: f64,
    /// `(1/m) Σ |terms|` of both sums: the scale their round-off is relative to.
    pub magnitude: f64,
    /// Whether either step moved a ReLU input across 0.
    pub kink: bool,
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
    /// Coordinates whose steps still cross a ReLU kink (J is not differentiable there):
    /// inconclusive, kept out of the verdict, their estimates NaN. Empty when the method
    /// does not detect kinks.
    pub inconclusive: Vec<bool>,
    /// Coordinates that were evaluated at all (a sampled check leaves the rest NaN).
    /// Empty when every coordinate was.
    pub checked: Vec<bool>,
}

impl Estimates {
    /// Builds the estimates from the two costs of each coordinate and the step `θ₊ − θ₋`
    /// actually taken (in f32, `θ ± ε` rounds, and dividing by `2ε` would add that error).
    /// `unit_roundoff` is that of the precision the costs were computed in.
    pub fn from_costs(
        j_plus: Vec<f64>,
        j_minus: Vec<f64>,
        steps: &[f64],
        unit_roundoff: f64,
    ) -> Self {
        debug_assert_eq!(j_plus.len(), j_minus.len());
        debug_assert_eq!(j_plus.len(), steps.len());
        let gradapprox = j_plus
            .iter()
            .zip(&j_minus)
            .zip(steps)
            .map(|((p, m), h)| (p - m) / h)
            .collect();
        let noise = j_plus
            .iter()
            .zip(&j_minus)
            .zip(steps)
            .map(|((p, m), h)| ROUNDOFF_SAFETY * unit_roundoff * (p.abs() + m.abs()) / h)
            .collect();
        Self {
            j_plus,
            j_minus,
            gradapprox,
            noise,
            inconclusive: Vec::new(),
            checked: Vec::new(),
        }
    }

    /// Builds the estimates of the delta method from `J(θ)` and the cost changes, each
    /// coordinate with its own step (kink crossings are re-evaluated with a smaller one).
    /// Nothing cancels: `(ΔJ₊ − ΔJ₋) / 2ε` has opposite-signed terms. A coordinate whose
    /// step still crosses a kink gets NaN: the delta method's changes are exact only
    /// between kinks, so it has no value to report there.
    pub fn from_deltas(j: f64, deltas: &[DeltaCost], eps: &[f64], unit_roundoff: f64) -> Self {
        let mut est = Self::default();
        for (d, &e) in deltas.iter().zip(eps) {
            let (plus, minus) = if d.kink {
                (f64::NAN, f64::NAN)
            } else {
                (d.plus, d.minus)
            };
            est.j_plus.push(j + plus);
            est.j_minus.push(j + minus);
            est.gradapprox.push((plus - minus) / (2.0 * e));
            est.noise
                .push(ROUNDOFF_SAFETY * unit_roundoff * d.magnitude / (2.0 * e));
            est.inconclusive.push(d.kink);
        }
        est
    }

    /// Spreads estimates of the coordinates `indices` (in that order) over all `total`
    /// coordinates: NaN and unchecked elsewhere.
    pub fn scatter(self, indices: &[usize], total: usize) -> Self {
        let spread = |values: &[f64]| {
            let mut all = vec![f64::NAN; total];
            for (&i, &v) in indices.iter().zip(values) {
                all[i] = v;
            }
            all
        };
        let mut inconclusive = vec![false; total];
        let mut checked = vec![false; total];
        for (k, &i) in indices.iter().enumerate() {
            inconclusive[i] = self.is_inconclusive(k);
            checked[i] = true;
        }
        Self {
            j_plus: spread(&self.j_plus),
            j_minus: spread(&self.j_minus),
            gradapprox: spread(&self.gradapprox),
            noise: spread(&self.noise),
            inconclusive,
            checked,
        }
    }

    /// Whether coordinate `i` was evaluated.
    pub fn is_checked(&self, i: usize) -> bool {
        self.checked.get(i).copied().unwrap_or(true)
    }

    /// Whether coordinate `i` is inconclusive.
    pub fn is_inconclusive(&self, i: usize) -> bool {
        self.inconclusive.get(i).copied().unwrap_or(false)
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
