//! `L = (1/N)·Σ_n [logsumexp(x_n) − x_(n, y_n)]`, cs231n's `softmax_loss` (x (N, C),
//! integer y (N,)); and its `temporal_softmax_loss` (x (N, T, V), y (N, T), a 0/1 `mask`
//! (N, T): every time step a row, weighted by its mask, summed over time, averaged over
//! N). A coordinate moves one row; the row's change is
//! `log1p(p_c·expm1(s)) − [c = y]·s`, free of cancellation, and
//! `|lse'''| ≤ p(1 − p)` bounds the truncation.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, labels, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;

pub struct SoftmaxLoss {
    pub temporal: bool,
}

const INPUTS: [Input; 2] = [
    super::input("x", Role::Differentiable),
    super::input("y", Role::Labels),
];

const TEMPORAL_INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("y", Role::Labels),
    super::input("mask", Role::Mask),
];

/// The rows, their classes, each row's label and weight (its mask over N).
struct Rows {
    rows: usize,
    classes: usize,
    labels: Vec<usize>,
    weights: Vec<f64>,
}

impl SoftmaxLoss {
    fn rows(&self, arrays: &Arrays) -> Result<Rows> {
        let name = self.describe();
        let x = shape_of(arrays, &name, "x")?;
        let want = if self.temporal { 3 } else { 2 };
        if x.len() != want || x[want - 1] == 0 {
            return Err(mismatch(format!(
                "x has shape {x:?}: {name} takes scores x {}",
                if self.temporal { "(N, T, V)" } else { "(N, C)" }
            )));
        }
        let (rows, classes) = (x[..want - 1].iter().product(), x[want - 1]);
        let y = array(arrays, "y");
        if y.shape() != &x[..want - 1] {
            return Err(mismatch(format!(
                "y has shape {:?} but x has {:?} rows: one class index per row",
                y.shape(),
                &x[..want - 1]
            )));
        }
        let flat = y
            .clone()
            .into_shape_with_order(IxDyn(&[rows]))
            .expect("size");
        let labels = labels(&flat, rows, classes)?;
        let n = x[0] as f64;
        let weights = if self.temporal {
            let mask = array(arrays, "mask");
            if mask.shape() != y.shape() {
                return Err(mismatch(format!(
                    "mask has shape {:?} but y has {:?}",
                    mask.shape(),
                    y.shape()
                )));
            }
            if let Some(m) = mask.iter().find(|&&m| m != 0.0 && m != 1.0) {
                return Err(crate::error::Error::Mask(format!(
                    "temporal_softmax_loss's mask holds {m}: it holds 0 and 1 (or booleans)"
                )));
            }
            mask.iter().map(|m| m / n).collect()
        } else {
            vec![1.0 / n; rows]
        };
        Ok(Rows {
            rows,
            classes,
            labels,
            weights,
        })
    }
}

/// Per row: its largest entry and its probabilities.
fn rows(x: &[f64], c: usize) -> Vec<(f64, Vec<f64>)> {
    x.par_chunks(c)
        .map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = row.iter().map(|&v| (v - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            (max, e.iter().map(|v| v / sum).collect())
        })
        .collect()
}

impl LayerOp for SoftmaxLoss {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let r = self.rows(arrays).ok()?;
        let xs = array(arrays, "x").as_slice()?;
        let c = r.classes;
        let (mut loss, mut size, mut err) = (0.0, 0.0, 0.0);
        for (i, (max, p)) in rows(xs, c).iter().enumerate() {
            let row = &xs[i * c..(i + 1) * c];
            let e = &x_err[i * c..(i + 1) * c];
            let term = -r.weights[i] * p[r.labels[i]].ln();
            loss += term;
            size += term.abs();
            // x's errors move −log p_y by at most Σ p_c·e_c + e_y; p_y's rounding (the
            // shifted exponentials, their sum, the division) moves it by its relative error.
            let carried: f64 = p.iter().zip(e).map(|(p, e)| p * e).sum::<f64>() + e[r.labels[i]];
            let spread = row.iter().map(|v| (v - max).abs()).fold(0.0, f64::max);
            let own = 2.0 * ((c as f64 + 4.0) * U + 2.0 * U * spread) + U * term.abs();
            err += r.weights[i].abs() * (carried + own);
        }
        Some(super::Bounded {
            out: ArrayD::from_elem(IxDyn(&[]), loss),
            err: ArrayD::from_elem(IxDyn(&[]), err + super::gamma(r.rows + 2) * size),
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        if self.temporal {
            "temporal_softmax_loss"
        } else {
            "softmax_loss"
        }
        .into()
    }

    fn inputs(&self) -> &'static [Input] {
        if self.temporal {
            &TEMPORAL_INPUTS
        } else {
            &INPUTS
        }
    }

    fn takes_dout(&self) -> bool {
        false
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        for input in self.inputs() {
            shape_of(arrays, &self.describe(), input.name)?;
        }
        self.rows(arrays)?;
        Ok(Vec::new())
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let r = self.rows(arrays).expect("checked");
        let xs = array(arrays, "x").as_slice().expect("standard layout");
        let loss: f64 = rows(xs, r.classes)
            .iter()
            .enumerate()
            .map(|(i, (_, p))| -r.weights[i] * p[r.labels[i]].ln())
            .sum();
        ArrayD::from_elem(IxDyn(&[]), loss)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let x = array(arrays, "x");
        let r = self.rows(arrays).expect("checked");
        let up = dout.iter().next().copied().unwrap_or(1.0);
        let mut dx = Vec::with_capacity(r.rows * r.classes);
        for (i, (_, p)) in rows(x.as_slice().expect("standard layout"), r.classes)
            .iter()
            .enumerate()
        {
            for (k, &pk) in p.iter().enumerate() {
                dx.push(up * r.weights[i] * (pk - f64::from(u8::from(k == r.labels[i]))));
            }
        }
        vec![ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, _dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let r = self.rows(arrays).expect("checked");
        let c = r.classes;
        let xs = array(arrays, "x").as_slice().expect("standard layout");
        let stats = rows(xs, c);
        (0..r.rows * c)
            .into_par_iter()
            .map(|at| {
                let (i, k) = (at / c, at % c);
                let weight = r.weights[i];
                let (max, p) = (&stats[i].0, &stats[i].1[k]);
                let label = k == r.labels[i];
                let (_, _, sp, sm) = super::steps(xs[at], h);
                // The row's loss moves by log1p(p·expm1(±s)) ∓ [k = y]·s.
                let up = (p * sp.exp_m1()).ln_1p();
                let down = (p * (-sm).exp_m1()).ln_1p();
                let (plus, minus) = if label {
                    (up - sp, down + sm)
                } else {
                    (up, down)
                };
                let step = sp + sm;
                let change = plus - minus;
                let estimate = change / step * weight;
                // p's rounding: the shift by the max, exp, a sum of C, the division.
                let p_rounding = (c as f64 + 3.0 + (xs[at] - max).abs()) * U;
                let noise = ((p_rounding + 4.0 * U) * (up.abs() + down.abs())
                    + U * (plus.abs() + minus.abs() + change.abs()))
                    / step
                    * weight
                    + 2.0 * U * estimate.abs();
                let curvature = (p * (1.0 - p) * (4.0 * h).exp() * 1.01).min(0.25);
                Probe {
                    estimate,
                    noise,
                    // Unequal steps leave a second-order term, |f''| ≤ 1/4.
                    truncation: (h * h / 6.0 * curvature + 0.125 * (sp - sm).abs()) * weight,
                    kink: None,
                    partial: false,
                    // p − [k = y] from the user's rounded p.
                    grad_scale: ((c as f64 + 6.0 + (xs[at] - max).abs()) * p
                        + if label { 2.0 } else { 0.0 })
                        * weight,
                }
            })
            .collect()
    }
}
