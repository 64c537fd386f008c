//! `σ(x) = 1/(1 + e⁻ˣ)`, elementwise. Its central difference is taken on `σ(−x)` where
//! `x > 0`, so that saturated inputs keep their relative accuracy; `|σ'''| ≤ σ'` bounds
//! the truncation.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::{array, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;
use crate::model::spec::sigmoid;

pub struct Sigmoid;

const INPUTS: [Input; 1] = [super::input("x", Role::Differentiable)];

/// A bound on the rounding of [`sigmoid`], relative to its value.
const SIGMOID_ROUNDING: f64 = 4.0 * U;

/// `σ'(t) = σ(t)σ(−t)`, decreasing in `|t|`.
fn slope(t: f64) -> f64 {
    sigmoid(t) * sigmoid(-t)
}

impl LayerOp for Sigmoid {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let out = x.mapv(sigmoid);
        let err = x
            .iter()
            .zip(x_err)
            .zip(&out)
            .map(|((&v, &e), &o)| slope((v.abs() - e).max(0.0)) * e + SIGMOID_ROUNDING * o)
            .collect();
        Some(super::Bounded {
            err: ArrayD::from_shape_vec(x.raw_dim(), err).ok()?,
            out,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        "sigmoid".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        shape_of(arrays, "sigmoid", "x")
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        array(arrays, "x").mapv(sigmoid)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let mut dx = dout.clone();
        dx.zip_mut_with(array(arrays, "x"), |g, &x| *g *= slope(x));
        vec![dx]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        x.par_iter()
            .zip(g.par_iter())
            .map(|(&x, &up)| {
                let (plus, minus, sp, sm) = super::steps(x, h);
                // σ(x₊) − σ(x₋) = σ(−x₋) − σ(−x₊): the small side, accurate.
                let (a, b) = if x > 0.0 {
                    (sigmoid(-minus), sigmoid(-plus))
                } else {
                    (sigmoid(plus), sigmoid(minus))
                };
                let change = a - b;
                let step = sp + sm;
                let estimate = up * change / step;
                let s = sigmoid(x);
                Probe {
                    estimate,
                    noise: up.abs() * (SIGMOID_ROUNDING * (a + b) + U * change.abs()) / step
                        + 2.0 * U * estimate.abs(),
                    // Unequal steps leave a second-order term, |σ''| ≤ 1/10.
                    truncation: up.abs()
                        * (h * h / 6.0 * slope((x.abs() - h).max(0.0)) + 0.05 * (sp - sm).abs()),
                    kink: None,
                    partial: false,
                    // s·(1 − s) from a rounded s: one ulp of s is u·s of 1 − s; and s
                    // itself may carry an absolute u (0.5·(1 + tanh(x/2)) does).
                    grad_scale: up.abs() * (8.0 * s + 4.0 * s * (1.0 - s) + 4.0),
                }
            })
            .collect()
    }
}
