//! Units on their kink, and the derivatives a backprop gives there.
//!
//! A ReLU or leaky-ReLU unit whose pre-activation lies within its own round-off of 0 (zero
//! biases and a blank example put every first-layer unit there) has no derivative: `J` is
//! not differentiable along any step whose change reaches it. A backprop still returns a
//! number: the derivative under its convention for the slope at the kink — the slope below
//! (`Z > 0`, the course's), half-way (`np.heaviside(Z, 0.5)`) or above (`Z >= 0`), one
//! convention per layer. So the gradient of such a coordinate passes only if it is one of
//! those derivatives, each computed exactly: examples whose change reaches no unit on a
//! kink contribute backprop's own per-example `dZ` (the same for every convention), the
//! others a forward-mode pass on the host from the coordinate through every layer beyond,
//! with the units on kinks at the convention's slope. Nothing here uses the gradient on
//! trial.
//!
//! A unit is on its kink when `|z| ≤ 8σ`, σ the standard deviation of z's rounding in the
//! tool's f64 pass (`roundoff::z_variances`): where no rounding reaches z (a blank example)
//! that is `z = 0` exactly, and a unit 1e-10 from its kink is not on it — its derivative is
//! the one-sided one, and a backprop masking it the other way is wrong.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use ndarray::{Array1, Array2, ArrayView1};

use super::forward::Activations;
use super::sensitivity::Sensitivity;
use crate::estimate::{Kink, Site, F64_UNIT_ROUNDOFF, ROUNDOFF_SAFETY};
use crate::problem::Problem;

/// Standard deviations of z's rounding within which a unit counts as on its kink.
pub const TIE_SAFETY: f64 = 8.0;

/// Assignments of conventions enumerated per coordinate at most: every combination over
/// six layers with units on kinks. Beyond, the three uniform ones, and a gradient matching
/// none of them is undecided.
const MAX_ASSIGNMENTS: usize = 729;

/// Which hidden units sit on their kink, and which changes reach one.
#[derive(Clone, Debug)]
pub struct Ties {
    /// Per hidden layer, per unit and example (`n_l × m`); all false for layers without
    /// kinks.
    pub on_kink: Vec<Array2<bool>>,
    /// Per layer `p`, whether a change of `z_p[i, e]` reaches a unit on its kink — the unit
    /// itself included — through units that pass it on under some convention (`[i, e]`).
    pub touch: Vec<Array2<bool>>,
    /// Per layer `p`, the examples where some change of it does.
    examples: Vec<Vec<usize>>,
}

impl Ties {
    /// The units of `problem` on their kink at its own forward pass `acts`, whose z have
    /// the rounding variances `variances` (units of u², `roundoff::z_variances` in f64).
    pub fn find(problem: &Problem, acts: &Activations, variances: &[Array2<f64>]) -> Self {
        let model = problem.model();
        let layers = problem.net().layers();
        let last = layers.len() - 1;
        let radius = TIE_SAFETY * F64_UNIT_ROUNDOFF;
        let on_kink: Vec<Array2<bool>> = (0..last)
            .map(|l| {
                let kinked = model.hidden[l].kink().is_some();
                let mut tied = Array2::from_elem(acts.z[l].dim(), false);
                if kinked {
                    ndarray::Zip::from(&mut tied)
                        .and(&acts.z[l])
                        .and(&variances[l])
                        .for_each(|t, &z, &v| *t = z.abs() <= radius * v.sqrt());
                    // A unit dropout zeroes passes nothing on, whatever its slope.
                    for ((k, e), t) in tied.indexed_iter_mut() {
                        *t &= model.keep(l, k, e) != 0.0;
                    }
                }
                tied
            })
            .collect();
        let m = problem.examples();
        let mut touch: Vec<Array2<bool>> = layers
            .iter()
            .map(|l| Array2::from_elem((l.w.nrows(), m), false))
            .collect();
        for e in 0..m {
            // The deepest hidden layer with a unit on its kink at this example: changes of
            // it and of earlier layers can reach one, later ones cannot.
            let Some(deepest) = (0..last)
                .rev()
                .find(|&l| on_kink[l].column(e).iter().any(|&t| t))
            else {
                continue;
            };
            for (p, touched) in touch.iter_mut().enumerate().take(deepest + 1) {
                let reached = reaching(problem, acts, &on_kink, p, e);
                touched.column_mut(e).assign(&reached);
            }
        }
        let examples = touch
            .iter()
            .map(|t| (0..m).filter(|&e| t.column(e).iter().any(|&b| b)).collect())
            .collect();
        Self {
            on_kink,
            touch,
            examples,
        }
    }

    /// Whether any unit sits on its kink.
    pub fn any(&self) -> bool {
        self.on_kink.iter().any(|t| t.iter().any(|&b| b))
    }

    /// Whether a step of parameter `(p, row, col)` reaches a unit on its kink at some
    /// example (whose change, `A_(p−1)[col, e]` for a weight, is not 0).
    pub fn touches(
        &self,
        inputs: &Array2<f64>,
        (p, row, col): (usize, usize, Option<usize>),
    ) -> bool {
        self.examples[p]
            .iter()
            .any(|&e| self.touch[p][[row, e]] && col.is_none_or(|j| inputs[[j, e]] != 0.0))
    }

    /// Whether a change of layer `p`, `changes` (`n_p × m`), reaches a unit on its kink.
    pub fn touched_by(&self, p: usize, changes: ndarray::ArrayView2<f64>) -> bool {
        self.examples[p].iter().any(|&e| {
            changes
                .column(e)
                .iter()
                .zip(self.touch[p].column(e))
                .any(|(&c, &t)| t && c != 0.0)
        })
    }
}

/// For every unit `i` of layer `p` at example `e`: whether a change of `z_p[i]` reaches a
/// unit on its kink (itself included), through units that pass it under some convention.
fn reaching(
    problem: &Problem,
    acts: &Activations,
    on_kink: &[Array2<bool>],
    p: usize,
    e: usize,
) -> Array1<bool> {
    let layers = problem.net().layers();
    let last = layers.len() - 1;
    let n_p = layers[p].w.nrows();
    let mut reached = Array1::from_elem(n_p, false);
    // Which units of layer l each unit of p's change reaches: a 0/1 pattern, `n_l × n_p`.
    let mut pattern = Array2::<f64>::eye(n_p);
    for l in p..last {
        let tied = on_kink[l].column(e);
        for (row, &t) in pattern.rows().into_iter().zip(tied) {
            if t {
                reached.zip_mut_with(&row, |r, &v| *r |= v != 0.0);
            }
        }
        let act = problem.model().hidden[l];
        for (k, mut row) in pattern.rows_mut().into_iter().enumerate() {
            let passes = problem.model().keep(l, k, e) != 0.0
                && (tied[k] || act.derivative(acts.z[l][[k, e]]) != 0.0);
            if !passes {
                row.fill(0.0);
            }
        }
        pattern = layers[l + 1]
            .w
            .mapv(|w| f64::from(u8::from(w != 0.0)))
            .dot(&pattern)
            .mapv(|v| f64::from(u8::from(v != 0.0)));
    }
    reached
}

/// The exact derivative of `J` along a change at θ: one number where the change reaches no
/// unit on a kink, else the derivative of every convention a backprop may use there.
#[derive(Clone, Debug)]
pub enum Exact {
    /// The derivative, and a bound on its round-off.
    Derivative(f64, f64),
    Kink(Kink),
}

/// Exact derivatives at θ, by forward mode from the forward pass and the residuals (never
/// backprop's `dZ`, so that they stand apart from the formulas a backprop uses): examples
/// whose change reaches no unit on a kink through the row gains (`∂z_L/∂z_p`), the others
/// through a pass on the host with the units on kinks at each convention's slope. Where a
/// finite difference cannot estimate the derivative (its step crosses a kink) or there is
/// none (a unit sits on its kink).
pub struct Derivatives<'a> {
    problem: &'a Problem,
    sens: &'a Sensitivity,
    acts: Activations,
    /// `|W_l|` per layer, for the reach of a change and the bound on its propagation.
    w_abs: Vec<Array2<f64>>,
    /// Per `(p, row, e)`: the layers a change of `z_p[row, e]` reaches on kinks; with the
    /// assignment of conventions to those layers, its share per unit of change. Every
    /// parameter of a row shares them.
    reached: Mutex<HashMap<(usize, usize, usize), Vec<usize>>>,
    unit_shares: Mutex<HashMap<UnitKey, Share>>,
}

/// `(p, row, e, conventions of the layers reached)`.
type UnitKey = (usize, usize, usize, Vec<u8>);

/// A change of layer `p`'s pre-activations at one example: `s` on one row (a parameter's
/// step), or any vector (a direction's).
enum Change {
    Row(usize, f64),
    Vector(Array1<f64>),
}

/// One example's share of a derivative, with what bounds its round-off: the magnitude of
/// the last products' terms (their own roundings), and the errors carried in (the
/// residuals', a forward pass's products').
#[derive(Clone, Copy, Debug, Default)]
struct Share {
    value: f64,
    magnitude: f64,
    error: f64,
}

impl std::ops::AddAssign for Share {
    fn add_assign(&mut self, other: Share) {
        self.value += other.value;
        self.magnitude += other.magnitude;
        self.error += other.error;
    }
}

impl Share {
    /// The share of a change `s` times as large (one more rounding, inside the safety).
    fn times(self, s: f64) -> Share {
        Share {
            value: self.value * s,
            magnitude: self.magnitude * s.abs(),
            error: self.error * s.abs(),
        }
    }

    /// A bound on the round-off of the derivative these shares sum to.
    fn noise(&self) -> f64 {
        ROUNDOFF_SAFETY * F64_UNIT_ROUNDOFF * self.magnitude + self.error
    }
}

impl<'a> Derivatives<'a> {
    /// From `sens` (its gains, residuals, their errors and ties) of `problem`.
    pub fn new(problem: &'a Problem, sens: &'a Sensitivity) -> Self {
        let acts = super::forward::forward(problem.net(), problem.model(), problem.x().view());
        let w_abs = problem
            .net()
            .layers()
            .iter()
            .map(|l| l.w.mapv(f64::abs))
            .collect();
        Self {
            problem,
            sens,
            acts,
            w_abs,
            reached: Mutex::default(),
            unit_shares: Mutex::default(),
        }
    }

    /// The derivative of `J` in parameter `(p, row, col)`, or under every convention a
    /// backprop may use at the kinks its change reaches.
    pub fn of(&self, (p, row, col): (usize, usize, Option<usize>)) -> Exact {
        let sens = self.sens;
        let scale = self.problem.model().scale(self.problem.examples());
        let touch = &sens.ties.touch[p];
        let mut linear = Share::default();
        let mut touching = Vec::new();
        for e in 0..self.problem.examples() {
            let s = col.map_or(1.0, |j| sens.inputs[p][[j, e]]);
            if s == 0.0 {
                continue;
            }
            if touch[[row, e]] {
                touching.push((e, Change::Row(row, s)));
                continue;
            }
            let gains = sens.gain[p].slice(ndarray::s![row, e, ..]);
            for (o, &g) in gains.iter().enumerate() {
                let term = scale * s * g;
                let part = term * sens.residual[[o, e]];
                linear += Share {
                    value: part,
                    magnitude: part.abs(),
                    error: term.abs() * sens.residual_errors[[o, e]],
                };
            }
        }
        self.with_touching(p, linear, touching)
    }

    /// The derivative along a change of layer `p`'s pre-activations, given per example
    /// (`changes` yields `(e, Δz_p[:, e])` for the examples it moves), or under every
    /// convention at the kinks it reaches.
    pub fn along(&self, p: usize, changes: impl Iterator<Item = (usize, Array1<f64>)>) -> Exact {
        let touch = &self.sens.ties.touch[p];
        let mut linear = Share::default();
        let mut touching = Vec::new();
        for (e, dz) in changes {
            let reaches = dz.iter().zip(touch.column(e)).any(|(&d, &t)| t && d != 0.0);
            if reaches {
                touching.push((e, Change::Vector(dz)));
            } else {
                linear += self.propagate(p, e, dz, (&[], &[]));
            }
        }
        self.with_touching(p, linear, touching)
    }

    /// The derivative from the shares of examples reaching no kink (`linear`) and those of
    /// the examples `touching` one, under every assignment of conventions to the layers
    /// they reach.
    fn with_touching(&self, p: usize, linear: Share, touching: Vec<(usize, Change)>) -> Exact {
        if touching.is_empty() {
            return Exact::Derivative(linear.value, linear.noise());
        }
        let reached: Vec<Vec<usize>> = touching
            .iter()
            .map(|(e, change)| match change {
                Change::Row(row, _) => {
                    let key = (p, *row, *e);
                    if let Some(found) = self.reached.lock().expect("cache").get(&key) {
                        return found.clone();
                    }
                    let mut dz = Array1::zeros(self.sens.ties.touch[p].nrows());
                    dz[*row] = 1.0;
                    let found = self.kinked_layers(p, *e, dz.view());
                    self.reached
                        .lock()
                        .expect("cache")
                        .insert(key, found.clone());
                    found
                }
                Change::Vector(dz) => self.kinked_layers(p, *e, dz.view()),
            })
            .collect();
        let layers: BTreeSet<usize> = reached.iter().flatten().copied().collect();
        let layers: Vec<usize> = layers.into_iter().collect();
        let names: Vec<[&'static str; 3]> = layers
            .iter()
            .map(|&l| {
                self.problem.model().hidden[l]
                    .conventions()
                    .expect("a layer with units on kinks has a kink")
                    .map(|(name, _)| name)
            })
            .collect();
        let total = 3usize.saturating_pow(layers.len() as u32);
        let partial = total > MAX_ASSIGNMENTS;
        let assignments: Vec<Vec<u8>> = if partial {
            (0..3u8).map(|c| vec![c; layers.len()]).collect()
        } else {
            (0..total)
                .map(|mut k| {
                    (0..layers.len())
                        .map(|_| {
                            let c = (k % 3) as u8;
                            k /= 3;
                            c
                        })
                        .collect()
                })
                .collect()
        };
        let mut largest = 0.0f64;
        let derivatives = assignments
            .into_iter()
            .map(|assignment| {
                let mut share = linear;
                for ((e, change), reached) in touching.iter().zip(&reached) {
                    // The conventions of the layers this example's change reaches.
                    let own: Vec<u8> = reached
                        .iter()
                        .map(|l| assignment[layers.binary_search(l).expect("a reached layer")])
                        .collect();
                    share += match change {
                        Change::Row(row, s) => {
                            self.unit_share(p, (*row, *e), reached, own).times(*s)
                        }
                        Change::Vector(dz) => self.propagate(p, *e, dz.clone(), (reached, &own)),
                    };
                }
                largest = largest.max(share.noise());
                (assignment, share.value)
            })
            .collect();
        Exact::Kink(Kink {
            layers: layers
                .iter()
                .map(|l| Site::Hidden(l + 1))
                .zip(names)
                .collect(),
            derivatives,
            noise: largest,
            partial,
        })
    }

    /// The share of a unit change of `z_p[row, e]`, with the layers it reaches on kinks
    /// (`reached`) at the conventions `own`; computed once per row and example.
    fn unit_share(
        &self,
        p: usize,
        (row, e): (usize, usize),
        reached: &[usize],
        own: Vec<u8>,
    ) -> Share {
        let key = (p, row, e, own);
        if let Some(&found) = self.unit_shares.lock().expect("cache").get(&key) {
            return found;
        }
        let mut dz = Array1::zeros(self.sens.ties.touch[p].nrows());
        dz[row] = 1.0;
        let found = self.propagate(p, e, dz, (reached, &key.3));
        self.unit_shares.lock().expect("cache").insert(key, found);
        found
    }

    /// The hidden layers where a change `dz` of layer `p` at example `e` reaches a unit on
    /// its kink (passing on through every unit that passes it under some convention).
    fn kinked_layers(&self, p: usize, e: usize, dz: ArrayView1<f64>) -> Vec<usize> {
        let layers = self.problem.net().layers();
        let model = self.problem.model();
        let mut found = Vec::new();
        let mut reach = dz.mapv(|d| f64::from(u8::from(d != 0.0)));
        for l in p..layers.len() - 1 {
            let tied = self.sens.ties.on_kink[l].column(e);
            if reach.iter().zip(tied).any(|(&r, &t)| r != 0.0 && t) {
                found.push(l);
            }
            let act = model.hidden[l];
            for (k, r) in reach.iter_mut().enumerate() {
                let passes = model.keep(l, k, e) != 0.0
                    && (tied[k] || act.derivative(self.acts.z[l][[k, e]]) != 0.0);
                if !passes {
                    *r = 0.0;
                }
            }
            reach = self.w_abs[l + 1]
                .dot(&reach)
                .mapv(|v| f64::from(u8::from(v != 0.0)));
        }
        found
    }

    /// Example `e`'s share of the derivative along `dz` (a change of layer `p`'s
    /// pre-activations), with the units on kinks in `layers` at the slope of their layer's
    /// convention in `assignment`: forward mode through every layer, weighted at the output
    /// by the residuals, reduction included. Each layer's error is carried alongside, worst
    /// case: the slopes' (within 4 ulp) and the product's roundings on `|Δa|`, the n
    /// roundings of each of `W·Δa`'s dot products on `|W|·|Δa|`.
    fn propagate(
        &self,
        p: usize,
        e: usize,
        mut dz: Array1<f64>,
        (layers, assignment): (&[usize], &[u8]),
    ) -> Share {
        let u = F64_UNIT_ROUNDOFF;
        let net = self.problem.net().layers();
        let model = self.problem.model();
        let mut err = Array1::<f64>::zeros(dz.len());
        for l in p..net.len() - 1 {
            let act = model.hidden[l];
            let at_kink = layers
                .iter()
                .position(|&k| k == l)
                .and_then(|k| act.conventions().map(|c| c[assignment[k] as usize].1));
            let tied = self.sens.ties.on_kink[l].column(e);
            let slopes = Array1::from_iter((0..dz.len()).map(|k| {
                let z = self.acts.z[l][[k, e]];
                let slope = match at_kink {
                    Some(slope) if tied[k] => slope,
                    _ => act.derivative(z),
                };
                slope * model.keep(l, k, e)
            }));
            let da = &dz * &slopes;
            let abs_da = da.mapv(f64::abs);
            let err_da = &err * &slopes.mapv(f64::abs) + &abs_da * (6.0 * u);
            err = self.w_abs[l + 1].dot(&(err_da + &abs_da * (da.len() as f64 * u)));
            dz = net[l + 1].w.dot(&da);
        }
        let scale = model.scale(self.problem.examples());
        let (residual, errors) = (
            self.sens.residual.column(e),
            self.sens.residual_errors.column(e),
        );
        let abs_dz = dz.mapv(f64::abs);
        let abs_r = residual.mapv(f64::abs);
        Share {
            value: scale * dz.dot(&residual),
            magnitude: scale.abs() * abs_dz.dot(&abs_r) * dz.len() as f64,
            error: scale.abs() * (err.dot(&abs_r) + abs_dz.dot(&errors)),
        }
    }
}
