//! Normalisation over a group of values (a batch norm's column, a layer norm's row):
//! `x̂_k = (v_k − μ)/√(σ² + eps)` with the population variance, a first-order bound on
//! each `x̂_k`'s rounding, and the probes both norms share: `L = Σ_k w_k·(g_k·x̂_k + b_k)`
//! with `w` the upstream gradient and `g`, `b` the group's gains and shifts.

use super::{gamma, Probe, U};

/// A normalised group and bounds on its rounding.
pub struct Normalised {
    /// `x̂`.
    pub xhat: Vec<f64>,
    /// A bound on each `x̂_k`'s rounding.
    pub err: Vec<f64>,
    /// `v − μ`.
    pub centred: Vec<f64>,
    /// `σ²` (population) and `s = √(σ² + eps)`.
    pub var: f64,
    pub s: f64,
}

/// Twice the first-order bounds: the second-order terms are far below them.
const SAFETY: f64 = 2.0;

/// Normalises `v` (nonempty) as the forward pass does, with its rounding bounds.
pub fn normalise(v: &[f64], eps: f64) -> Normalised {
    let k = v.len() as f64;
    let mean = v.iter().sum::<f64>() / k;
    let centred: Vec<f64> = v.iter().map(|x| x - mean).collect();
    let var = centred.iter().map(|c| c * c).sum::<f64>() / k;
    let s = (var + eps).sqrt();
    let abs_mean = v.iter().map(|x| x.abs()).sum::<f64>() / k;
    let e_mean = (gamma(v.len()) + U) * abs_mean;
    let e_centred: Vec<f64> = v
        .iter()
        .map(|x| e_mean + U * (x.abs() + mean.abs()))
        .collect();
    let e_var = (2.0
        * centred
            .iter()
            .zip(&e_centred)
            .map(|(c, e)| c.abs() * e)
            .sum::<f64>()
        + (gamma(v.len()) + 2.0 * U) * centred.iter().map(|c| c * c).sum::<f64>())
        / k;
    let e_q = e_var + U * (var + eps);
    let e_s = e_q / (2.0 * s) + U * s;
    let xhat: Vec<f64> = centred.iter().map(|c| c / s).collect();
    let err = centred
        .iter()
        .zip(&e_centred)
        .zip(&xhat)
        .map(|((c, e), xh)| SAFETY * (e / s + c.abs() * e_s / (s * s) + U * xh.abs()))
        .collect();
    Normalised {
        xhat,
        err,
        centred,
        var,
        s,
    }
}

/// Bounds on each `x̂_k`'s distance from the exact normalisation of the exact group when
/// each value is known to within `e`: this group's own rounding, plus the values' errors
/// carried by `∂x̂_k/∂v_i = ([k = i] − 1/K − x̂_k·x̂_i/K)/s`.
pub fn carried(norm: &Normalised, e: &[f64]) -> Vec<f64> {
    let k = e.len() as f64;
    let mean_e = e.iter().sum::<f64>() / k;
    let mean_xe = norm
        .xhat
        .iter()
        .zip(e)
        .map(|(x, e)| x.abs() * e)
        .sum::<f64>()
        / k;
    norm.xhat
        .iter()
        .zip(e)
        .zip(&norm.err)
        .map(|((xh, ek), own)| own + SAFETY * (ek + mean_e + xh.abs() * mean_xe) / norm.s)
        .collect()
}

/// The probe of group member `i`'s value: the whole group recomputed at `v_i ± h`;
/// `w_k·g_k` weights member `k`'s output.
pub fn probe_value(v: &[f64], i: usize, weights: &[f64], eps: f64, h: f64) -> Probe {
    let base = normalise(v, eps);
    let (plus_v, minus_v, sp, sm) = super::steps(v[i], h);
    let mut moved = v.to_vec();
    moved[i] = plus_v;
    let plus = normalise(&moved, eps);
    moved[i] = minus_v;
    let minus = normalise(&moved, eps);
    let step = sp + sm;
    let (mut change, mut noise, mut size) = (0.0, 0.0, 0.0);
    for (k, w) in weights.iter().enumerate() {
        let d = plus.xhat[k] - minus.xhat[k];
        change += w * d;
        size += (w * d).abs();
        noise += w.abs() * (plus.err[k] + minus.err[k] + U * d.abs());
    }
    let estimate = change / step;
    Probe {
        estimate,
        noise: (noise + gamma(v.len() + 1) * size) / step + 2.0 * U * estimate.abs(),
        truncation: truncation(&base, i, weights, eps, (h, sp, sm)),
        kink: None,
        partial: false,
        grad_scale: value_grad_scale(&base, i, weights),
    }
}

/// A bound on the central difference's truncation in member `i`'s value: along the step
/// `t`, `x̂_k(t) = (c_k + d_k·t)/√q(t)` with `d_k = [k = i] − 1/K` and
/// `q(t) = σ² + eps + 2a·t + b·t²`, `a = c_i/K`, `b = (1 − 1/K)/K`; its third derivative
/// is bounded over `|t| ≤ h` by bounding `|q'|` above and `q` below (`q ≥ eps`), and
/// unequal steps leave a second-order term.
fn truncation(
    base: &Normalised,
    i: usize,
    weights: &[f64],
    eps: f64,
    (h, sp, sm): (f64, f64, f64),
) -> f64 {
    let kk = weights.len() as f64;
    let a = base.centred[i] / kk;
    let b = (1.0 - 1.0 / kk) / kk;
    let reach = h.max(sp).max(sm);
    let q_min = (base.var + eps - 2.0 * a.abs() * reach).max(eps);
    let q1 = 2.0 * a.abs() + 2.0 * b * reach;
    let r1 = 0.5 * q1 * q_min.powf(-1.5);
    let r2 = 0.75 * q1 * q1 * q_min.powf(-2.5) + b * q_min.powf(-1.5);
    let r3 = 4.5 * b * q1 * q_min.powf(-2.5) + 1.875 * q1.powi(3) * q_min.powf(-3.5);
    let (mut third, mut second) = (0.0, 0.0);
    for (k, w) in weights.iter().enumerate() {
        let d = f64::from(u8::from(k == i)) - 1.0 / kk;
        let c = base.centred[k].abs() + d.abs() * reach;
        third += w.abs() * (c * r3 + 3.0 * d.abs() * r2);
        second += w.abs() * (c * r2 + 2.0 * d.abs() * r1);
    }
    h * h / 6.0 * third + 0.5 * (sp - sm).abs() * second
}

/// A correct backward's round-off in member `i`'s value, in units of u: the terms of
/// `dx_i = (K·dx̂_i − Σ dx̂ − x̂_i·Σ dx̂·x̂)/(K·s)` (any staging of it sums the same
/// magnitudes) and the rounding of `x̂` and `s` it starts from.
fn value_grad_scale(base: &Normalised, i: usize, weights: &[f64]) -> f64 {
    let kk = weights.len() as f64;
    let sum_abs: f64 = weights.iter().map(|w| w.abs()).sum();
    let sum_abs_x: f64 = weights
        .iter()
        .zip(&base.xhat)
        .map(|(w, x)| (w * x).abs())
        .sum();
    let magnitude =
        (kk * weights[i].abs() + sum_abs + base.xhat[i].abs() * sum_abs_x) / (kk * base.s);
    let max_err = base.err.iter().copied().fold(0.0, f64::max);
    let max_xhat = base.xhat.iter().map(|x| x.abs()).fold(0.0, f64::max);
    magnitude * (4.0 * (2.0 * kk + 16.0) + 4.0 * max_err * (1.0 + max_xhat) / U)
}

/// The probe of a gain `g` shared by members `members` (its `(x̂, err, w)`): linear in
/// `g`; the estimate is `Σ w·x̂` and carries `x̂`'s rounding.
pub fn probe_gain(g: f64, members: &[(f64, f64, f64)], h: f64) -> Probe {
    let (_, _, sp, sm) = super::steps(g, h);
    let (plus, minus) = (g + sp, g - sm);
    let step = sp + sm;
    let (mut change, mut noise, mut size, mut grad) = (0.0, 0.0, 0.0, 0.0);
    for &(xhat, err, w) in members {
        let (op, om) = (plus * xhat, minus * xhat);
        let d = op - om;
        change += w * d;
        size += (w * d).abs();
        noise += w.abs() * (U * (op.abs() + om.abs() + d.abs()) + err * step);
        grad += w.abs() * (gamma(members.len() + 2) * xhat.abs() + err);
    }
    let estimate = change / step;
    Probe {
        estimate,
        noise: (noise + gamma(members.len() + 1) * size) / step + 2.0 * U * estimate.abs(),
        truncation: 0.0,
        kink: None,
        partial: false,
        grad_scale: grad / U,
    }
}

/// The probe of a shift `b` shared by members with outputs and upstream gradients
/// `(out, w)`: linear; the estimate is `Σ w`.
pub fn probe_shift(b: f64, members: &[(f64, f64)], h: f64) -> Probe {
    let (_, _, sp, sm) = super::steps(b, h);
    let step = sp + sm;
    let (mut change, mut noise, mut size, mut grad) = (0.0, 0.0, 0.0, 0.0);
    for &(out, w) in members {
        let (op, om) = (out + sp, out - sm);
        let d = op - om;
        change += w * d;
        size += (w * d).abs();
        noise += w.abs() * U * (op.abs() + om.abs() + d.abs());
        grad += w.abs();
    }
    let estimate = change / step;
    Probe {
        estimate,
        noise: (noise + gamma(members.len() + 1) * size) / step + 2.0 * U * estimate.abs(),
        truncation: 0.0,
        kink: None,
        partial: false,
        grad_scale: (members.len() + 2) as f64 * grad,
    }
}

/// A normalisation over arbitrary groups of a flat array (the spatial norms' channels or
/// (example, channel-group) blocks), each element with its gain and shift by index.
pub struct Grouped<'a> {
    pub x: &'a [f64],
    /// The flat indices of each group.
    pub groups: Vec<Vec<usize>>,
    /// Each element's gain (and shift) index.
    pub gain_of: Vec<usize>,
    pub gains: &'a [f64],
    pub shifts: &'a [f64],
    pub eps: f64,
}

impl Grouped<'_> {
    /// Each group normalised, and each element's group and place in it.
    fn normalised(&self) -> (Vec<Normalised>, Vec<(usize, usize)>) {
        let mut place = vec![(0, 0); self.x.len()];
        let norms = self
            .groups
            .iter()
            .enumerate()
            .map(|(g, members)| {
                for (k, &i) in members.iter().enumerate() {
                    place[i] = (g, k);
                }
                let v: Vec<f64> = members.iter().map(|&i| self.x[i]).collect();
                normalise(&v, self.eps)
            })
            .collect();
        (norms, place)
    }

    /// The forward pass with each element's bound (see [`super::Bounded`]), flat, given
    /// a bound on each element of `x`.
    pub fn forward_bounded(&self, x_err: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (mut out, mut err) = (vec![0.0; self.x.len()], vec![0.0; self.x.len()]);
        for members in &self.groups {
            let v: Vec<f64> = members.iter().map(|&i| self.x[i]).collect();
            let e: Vec<f64> = members.iter().map(|&i| x_err[i]).collect();
            let norm = normalise(&v, self.eps);
            for ((k, &i), xe) in members.iter().enumerate().zip(carried(&norm, &e)) {
                let (gain, shift) = (self.gains[self.gain_of[i]], self.shifts[self.gain_of[i]]);
                out[i] = gain * norm.xhat[k] + shift;
                err[i] = gain.abs() * xe + U * ((gain * norm.xhat[k]).abs() + out[i].abs());
            }
        }
        (out, err)
    }

    /// The forward pass, flat.
    pub fn forward(&self) -> Vec<f64> {
        let (norms, place) = self.normalised();
        (0..self.x.len())
            .map(|i| {
                let (g, k) = place[i];
                self.gains[self.gain_of[i]] * norms[g].xhat[k] + self.shifts[self.gain_of[i]]
            })
            .collect()
    }

    /// The reference backward: `(dx, dgain, dshift)`, flat.
    pub fn backward(&self, up: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (norms, _) = self.normalised();
        let mut dx = vec![0.0; self.x.len()];
        let (mut dgain, mut dshift) = (vec![0.0; self.gains.len()], vec![0.0; self.gains.len()]);
        for (members, norm) in self.groups.iter().zip(&norms) {
            let kk = members.len() as f64;
            let dxhat: Vec<f64> = members
                .iter()
                .map(|&i| up[i] * self.gains[self.gain_of[i]])
                .collect();
            let sum: f64 = dxhat.iter().sum();
            let sum_x: f64 = dxhat.iter().zip(&norm.xhat).map(|(a, b)| a * b).sum();
            for (k, &i) in members.iter().enumerate() {
                dx[i] = (kk * dxhat[k] - sum - norm.xhat[k] * sum_x) / (kk * norm.s);
                dgain[self.gain_of[i]] += up[i] * norm.xhat[k];
                dshift[self.gain_of[i]] += up[i];
            }
        }
        (dx, dgain, dshift)
    }

    /// The forward pass with its bounds (see [`Grouped::forward_bounded`]), shaped like x.
    pub fn forward_bounded_shaped(&self, x_err: &[f64], shape: &[usize]) -> Option<super::Bounded> {
        use ndarray::{ArrayD, IxDyn};
        let (out, err) = self.forward_bounded(x_err);
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(shape), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(shape), err).ok()?,
            kinks: None,
        })
    }

    /// The forward pass, shaped like x.
    pub fn forward_shaped(&self, shape: &[usize]) -> ndarray::ArrayD<f64> {
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), self.forward()).expect("shape")
    }

    /// The reference backward: dx shaped like x (`shape`), dgain and dshift shaped
    /// `gain_shape`.
    pub fn backward_shaped(
        &self,
        up: &ndarray::ArrayD<f64>,
        shape: &[usize],
        gain_shape: &[usize],
    ) -> Vec<ndarray::ArrayD<f64>> {
        use ndarray::{ArrayD, IxDyn};
        let (dx, dg, db) = self.backward(up.as_slice().expect("standard layout"));
        vec![
            ArrayD::from_shape_vec(IxDyn(shape), dx).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(gain_shape), dg).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(gain_shape), db).expect("shape"),
        ]
    }

    /// The probes of `x` (0), the gains (1) or the shifts (2), flat.
    pub fn probes(&self, up: &[f64], input: usize, h: f64) -> Vec<Probe> {
        use rayon::prelude::*;
        let (norms, place) = self.normalised();
        match input {
            0 => (0..self.x.len())
                .into_par_iter()
                .map(|i| {
                    let (g, k) = place[i];
                    let members = &self.groups[g];
                    let v: Vec<f64> = members.iter().map(|&j| self.x[j]).collect();
                    let weights: Vec<f64> = members
                        .iter()
                        .map(|&j| up[j] * self.gains[self.gain_of[j]])
                        .collect();
                    probe_value(&v, k, &weights, self.eps, h)
                })
                .collect(),
            _ => (0..self.gains.len())
                .into_par_iter()
                .map(|c| {
                    let elements = (0..self.x.len()).filter(|&i| self.gain_of[i] == c);
                    if input == 1 {
                        let members: Vec<(f64, f64, f64)> = elements
                            .map(|i| {
                                let (g, k) = place[i];
                                (norms[g].xhat[k], norms[g].err[k], up[i])
                            })
                            .collect();
                        probe_gain(self.gains[c], &members, h)
                    } else {
                        let members: Vec<(f64, f64)> = elements
                            .map(|i| {
                                let (g, k) = place[i];
                                (self.gains[c] * norms[g].xhat[k] + self.shifts[c], up[i])
                            })
                            .collect();
                        probe_shift(self.shifts[c], &members, h)
                    }
                })
                .collect(),
        }
    }
}
