//! `tanh(x)`, elementwise. Its central difference is taken on `1 ∓ tanh = 2σ(∓2x)`, the
//! small side, so saturated inputs keep their relative accuracy; `|tanh'''| ≤ 4·sech²`
//! bounds the truncation.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::{array, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;
use crate::model::spec::sigmoid;

pub struct Tanh;

const INPUTS: [Input; 1] = [super::input("x", Role::Differentiable)];

/// A bound on the rounding of `sigmoid`, relative to its value.
const SIGMOID_ROUNDING: f64 = 4.0 * U;

/// `sech²(t) = 4σ(2t)σ(−2t)`, decreasing in `|t|`.
fn sech2(t: f64) -> f64 {
    4.0 * sigmoid(2.0 * t) * sigmoid(-2.0 * t)
}

impl LayerOp for Tanh {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let out = x.mapv(f64::tanh);
        let err = x
            .iter()
            .zip(x_err)
            .zip(&out)
            .map(|((&v, &e), &o)| sech2((v.abs() - e).max(0.0)) * e + 4.0 * U * o.abs())
            .collect();
        Some(super::Bounded {
            err: ArrayD::from_shape_vec(x.raw_dim(), err).ok()?,
            out,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        "tanh".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        shape_of(arrays, "tanh", "x")
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        array(arrays, "x").mapv(f64::tanh)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let mut dx = dout.clone();
        dx.zip_mut_with(array(arrays, "x"), |g, &x| *g *= sech2(x));
        vec![dx]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        x.par_iter()
            .zip(g.par_iter())
            .map(|(&x, &up)| {
                let (plus, minus, sp, sm) = super::steps(x, h);
                // tanh = 1 − 2σ(−2x) = 2σ(2x) − 1: the change of the small side.
                let (a, b) = if x > 0.0 {
                    (sigmoid(-2.0 * minus), sigmoid(-2.0 * plus))
                } else {
                    (sigmoid(2.0 * plus), sigmoid(2.0 * minus))
                };
                let change = 2.0 * (a - b);
                let step = sp + sm;
                let estimate = up * change / step;
                let t = x.tanh();
                Probe {
                    estimate,
                    noise: up.abs() * (2.0 * SIGMOID_ROUNDING * (a + b) + 2.0 * U * change.abs())
                        / step
                        + 2.0 * U * estimate.abs(),
                    // Unequal steps leave a second-order term, |tanh''| ≤ 0.77.
                    truncation: up.abs()
                        * (h * h / 6.0 * 4.0 * sech2((x.abs() - h).max(0.0))
                            + 0.4 * (sp - sm).abs()),
                    kink: None,
                    partial: false,
                    // 1 − t² from a rounded t: one ulp of t is 2u·t² of it.
                    grad_scale: up.abs() * (4.0 * t * t + 2.0),
                }
            })
            .collect()
    }
}
