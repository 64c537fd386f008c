//! `max(x, 0)`, and the leaky ReLU `max(x, 0) + alpha·min(x, 0)`: piecewise linear, so a
//! step that stays on one side is exact (the step shrinks to stay there); an input exactly
//! at 0 is a kink, judged by the conventions a backward may use for its slope there.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::{array, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::{Error, Result};
use crate::model::Activation;

pub struct Relu {
    alpha: f64,
}

const INPUTS: [Input; 1] = [super::input("x", Role::Differentiable)];

impl Relu {
    pub fn new(alpha: f64) -> Result<Self> {
        if !alpha.is_finite() {
            return Err(Error::Option(format!(
                "leaky_relu's alpha must be a finite number, got {alpha}"
            )));
        }
        Ok(Self { alpha })
    }

    fn activation(&self) -> Activation {
        if self.alpha == 0.0 {
            Activation::Relu
        } else {
            Activation::LeakyRelu(self.alpha)
        }
    }

    fn apply(&self, x: f64) -> f64 {
        if x > 0.0 {
            x
        } else {
            self.alpha * x
        }
    }
}

impl LayerOp for Relu {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let out = x.mapv(|v| self.apply(v));
        let slope = self.alpha.abs().max(1.0);
        let mut err = ArrayD::from_shape_vec(x.raw_dim(), x_err.to_vec()).ok()?;
        err.zip_mut_with(&out, |e, &o| *e = slope * *e + U * o.abs());
        let kinks = (self.alpha != 1.0).then(|| (x.iter().copied().collect(), x_err.to_vec()));
        Some(super::Bounded { out, err, kinks })
    }

    fn describe(&self) -> String {
        if self.alpha == 0.0 {
            "relu".into()
        } else {
            format!("leaky_relu alpha={}", super::number(self.alpha))
        }
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        shape_of(arrays, "relu", "x")
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        array(arrays, "x").mapv(|x| self.apply(x))
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let mut dx = dout.clone();
        dx.zip_mut_with(array(arrays, "x"), |g, &x| {
            if x <= 0.0 {
                *g *= self.alpha
            }
        });
        vec![dx]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        let slopes = self
            .activation()
            .conventions()
            .expect("a kink")
            .map(|(_, s)| s);
        x.par_iter()
            .zip(g.par_iter())
            .map(|(&x, &up)| {
                if x == 0.0 {
                    return Probe {
                        estimate: up * slopes[0],
                        noise: 0.0,
                        truncation: 0.0,
                        kink: Some(slopes.map(|s| up * s)),
                        partial: false,
                        grad_scale: up.abs(),
                    };
                }
                // A step within the input's own side of 0: the difference is exact there.
                let step = h.min(0.5 * x.abs());
                let (plus, minus, sp, sm) = super::steps(x, step);
                let (fp, fm) = (self.apply(plus), self.apply(minus));
                let change = fp - fm;
                let estimate = up * change / (sp + sm);
                Probe {
                    estimate,
                    noise: up.abs() * U * (fp.abs() + fm.abs() + change.abs()) / (sp + sm)
                        + 2.0 * U * estimate.abs(),
                    truncation: 0.0,
                    kink: None,
                    partial: false,
                    grad_scale: up.abs() * (1.0 + self.alpha.abs()),
                }
            })
            .collect()
    }

    fn kink_site(&self) -> Option<[&'static str; 3]> {
        self.activation()
            .conventions()
            .map(|c| c.map(|(name, _)| name))
    }
}
