//! Inverted dropout with a saved mask: `out = x·mask/p`, `p` the keep probability
//! (cs231n's `dropout_param['p']`). The mask may be saved 0/1 or already divided by p
//! (cs231n's `(rand < p) / p`). Linear in `x`: no truncation.

use ndarray::ArrayD;
use rayon::prelude::*;

use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::{Error, Result};

pub struct Dropout {
    p: f64,
}

/// How far from `1/p` a float32 mask's `1/p` may round.
const F32_ROUNDING: f64 = 1.2e-7;

const INPUTS: [Input; 2] = [
    super::input("x", Role::Differentiable),
    super::input("mask", Role::Mask),
];

impl Dropout {
    pub fn new(p: f64) -> Result<Self> {
        if !(p > 0.0 && p <= 1.0) {
            return Err(Error::Option(format!(
                "dropout's keep probability p must lie in (0, 1], got {p}"
            )));
        }
        Ok(Self { p })
    }

    /// Each element's factor `mask/p`, from a mask saved either way (divided by p in
    /// float64 or in float32: the factor is then the one the forward multiplied by).
    fn keep(&self, mask: &ArrayD<f64>) -> Result<ArrayD<f64>> {
        let scaled = 1.0 / self.p;
        let divided = |m: f64| (m - scaled).abs() <= F32_ROUNDING * scaled;
        if mask.iter().all(|&m| m == 0.0 || m == 1.0) {
            return Ok(mask.mapv(|m| m / self.p));
        }
        if mask.iter().all(|&m| m == 0.0 || divided(m)) {
            return Ok(mask.clone());
        }
        let odd = mask
            .iter()
            .find(|&&m| !(m == 0.0 || m == 1.0 || divided(m)))
            .copied()
            .unwrap_or_default();
        Err(Error::Mask(format!(
            "it holds {odd}: a mask holds 0 and 1, or 0 and 1/p = {scaled} (divided by the keep probability p = {})",
            self.p
        )))
    }

    fn factors(&self, arrays: &Arrays) -> ArrayD<f64> {
        self.keep(array(arrays, "mask"))
            .expect("checked by output_shape")
    }
}

impl LayerOp for Dropout {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let keep = self.factors(arrays);
        let out = array(arrays, "x") * &keep;
        let err = keep
            .iter()
            .zip(x_err)
            .zip(&out)
            .map(|((k, e), o)| k.abs() * e + 2.0 * U * o.abs())
            .collect();
        Some(super::Bounded {
            err: ArrayD::from_shape_vec(out.raw_dim(), err).ok()?,
            out,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        format!("dropout p={}", super::number(self.p))
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "dropout", "x")?;
        let mask = shape_of(arrays, "dropout", "mask")?;
        if mask != x {
            return Err(mismatch(format!(
                "mask has shape {mask:?} but x has {x:?}: one mask entry per element"
            )));
        }
        self.keep(array(arrays, "mask"))?;
        Ok(x)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        array(arrays, "x") * &self.factors(arrays)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        vec![dout * &self.factors(arrays)]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let keep = self.factors(arrays);
        let keep = keep.as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        (0..x.len())
            .into_par_iter()
            .map(|i| {
                let (plus, minus, sp, sm) = super::steps(x[i], h);
                let (fp, fm) = (plus * keep[i], minus * keep[i]);
                let change = fp - fm;
                let step = sp + sm;
                let estimate = g[i] * change / step;
                Probe {
                    estimate,
                    noise: g[i].abs() * U * (fp.abs() + fm.abs() + change.abs()) / step
                        + 2.0 * U * estimate.abs(),
                    truncation: 0.0,
                    kink: None,
                    partial: false,
                    grad_scale: 2.0 * (g[i] * keep[i]).abs(),
                }
            })
            .collect()
    }
}
