//! `L = (1/N)·Σ_n [logsumexp(x_n) − x_(n, y_n)]`, cs231n's `softmax_loss` (x (N, C),
//! integer y (N,)). A coordinate moves one row; the row's change is
//! `log1p(p_c·expm1(s)) − [c = y]·s`, free of cancellation, and
//! `|lse'''| ≤ p(1 − p)` bounds the truncation.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, labels, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;

pub struct SoftmaxLoss;

const INPUTS: [Input; 2] = [
    super::input("x", Role::Differentiable),
    super::input("y", Role::Labels),
];

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
    fn describe(&self) -> String {
        "softmax_loss".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn takes_dout(&self) -> bool {
        false
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "softmax_loss", "x")?;
        if x.len() != 2 || x[1] == 0 {
            return Err(mismatch(format!(
                "x has shape {x:?}: softmax_loss takes scores x (N, C)"
            )));
        }
        shape_of(arrays, "softmax_loss", "y")?;
        labels(array(arrays, "y"), x[0], x[1])?;
        Ok(Vec::new())
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let xs = x.as_slice().expect("standard layout");
        let loss: f64 = rows(xs, c)
            .iter()
            .enumerate()
            .map(|(i, (_, p))| -p[y[i]].ln())
            .sum();
        ArrayD::from_elem(IxDyn(&[]), loss / n as f64)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let up = dout.iter().next().copied().unwrap_or(1.0);
        let mut dx = Vec::with_capacity(n * c);
        for (i, (_, p)) in rows(x.as_slice().expect("standard layout"), c)
            .iter()
            .enumerate()
        {
            for (k, &pk) in p.iter().enumerate() {
                dx.push(up * (pk - f64::from(u8::from(k == y[i]))) / n as f64);
            }
        }
        vec![ArrayD::from_shape_vec(IxDyn(&[n, c]), dx).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, _dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let xs = x.as_slice().expect("standard layout");
        let stats = rows(xs, c);
        (0..n * c)
            .into_par_iter()
            .map(|at| {
                let (i, k) = (at / c, at % c);
                let (max, p) = (&stats[i].0, &stats[i].1[k]);
                let label = k == y[i];
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
                let estimate = change / step / n as f64;
                // p's rounding: the shift by the max, exp, a sum of C, the division.
                let p_rounding = (c as f64 + 3.0 + (xs[at] - max).abs()) * U;
                let noise = ((p_rounding + 4.0 * U) * (up.abs() + down.abs())
                    + U * (plus.abs() + minus.abs() + change.abs()))
                    / step
                    / n as f64
                    + 2.0 * U * estimate.abs();
                let curvature = (p * (1.0 - p) * (4.0 * h).exp() * 1.01).min(0.25);
                Probe {
                    estimate,
                    noise,
                    // Unequal steps leave a second-order term, |f''| ≤ 1/4.
                    truncation: (h * h / 6.0 * curvature + 0.125 * (sp - sm).abs()) / n as f64,
                    kink: None,
                    partial: false,
                    // p − [k = y] from the user's rounded p.
                    grad_scale: ((c as f64 + 6.0 + (xs[at] - max).abs()) * p
                        + if label { 2.0 } else { 0.0 })
                        / n as f64,
                }
            })
            .collect()
    }
}
