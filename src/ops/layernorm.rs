//! Layer normalisation: `out = γ·x̂ + β`, `x̂` each row of `x` (N, D) normalised over its
//! features; `gamma`, `beta` (D,); cs231n's `layernorm_forward` with `ln_param['eps']`. A
//! step in `x` moves its row: the row is recomputed.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::batchnorm::check_norm_shapes;
use super::norm::{carried, normalise, probe_gain, probe_shift, probe_value, Normalised};
use super::{array, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct Layernorm {
    eps: f64,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("gamma", Role::Differentiable),
    super::input("beta", Role::Differentiable),
];

impl Layernorm {
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Option(format!(
                "layernorm's eps must be a finite number ≥ 0, got {eps}"
            )));
        }
        Ok(Self { eps })
    }

    fn rows(&self, arrays: &Arrays) -> (Vec<Normalised>, usize, usize) {
        let x = array(arrays, "x");
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let xs = x.as_slice().expect("standard layout");
        let rows = xs
            .par_chunks(d)
            .map(|row| normalise(row, self.eps))
            .collect();
        (rows, n, d)
    }
}

impl LayerOp for Layernorm {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let (rows, n, d) = self.rows(arrays);
        let (gamma, beta) = (array(arrays, "gamma"), array(arrays, "beta"));
        let (mut out, mut err) = (Vec::with_capacity(n * d), Vec::with_capacity(n * d));
        for (i, row) in rows.iter().enumerate() {
            let xe = carried(row, &x_err[i * d..(i + 1) * d]);
            for (k, xh) in row.xhat.iter().enumerate() {
                let o = gamma[k] * xh + beta[k];
                out.push(o);
                err.push(gamma[k].abs() * xe[k] + super::U * ((gamma[k] * xh).abs() + o.abs()));
            }
        }
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&[n, d]), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&[n, d]), err).ok()?,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        format!("layernorm eps={}", super::number(self.eps))
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        check_norm_shapes("layernorm", arrays)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let (rows, n, d) = self.rows(arrays);
        let (gamma, beta) = (array(arrays, "gamma"), array(arrays, "beta"));
        let mut out = Vec::with_capacity(n * d);
        for row in &rows {
            for (k, xh) in row.xhat.iter().enumerate() {
                out.push(gamma[k] * xh + beta[k]);
            }
        }
        ArrayD::from_shape_vec(IxDyn(&[n, d]), out).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let (rows, n, d) = self.rows(arrays);
        let gamma: Vec<f64> = array(arrays, "gamma").iter().copied().collect();
        let g = dout.as_slice().expect("standard layout");
        let (mut dx, mut dgamma, mut dbeta) = (Vec::new(), vec![0.0; d], vec![0.0; d]);
        let k = d as f64;
        for (i, row) in rows.iter().enumerate() {
            let up = &g[i * d..(i + 1) * d];
            let dxhat: Vec<f64> = up.iter().zip(&gamma).map(|(u, gm)| u * gm).collect();
            let sum: f64 = dxhat.iter().sum();
            let sum_x: f64 = dxhat.iter().zip(&row.xhat).map(|(a, b)| a * b).sum();
            for j in 0..d {
                dx.push((k * dxhat[j] - sum - row.xhat[j] * sum_x) / (k * row.s));
                dgamma[j] += up[j] * row.xhat[j];
                dbeta[j] += up[j];
            }
        }
        vec![
            ArrayD::from_shape_vec(IxDyn(&[n, d]), dx).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[d]), dgamma).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[d]), dbeta).expect("shape"),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x");
        let (n, d) = (x.shape()[0], x.shape()[1]);
        let xs = x.as_slice().expect("standard layout");
        let gamma: Vec<f64> = array(arrays, "gamma").iter().copied().collect();
        let beta: Vec<f64> = array(arrays, "beta").iter().copied().collect();
        let g = dout.as_slice().expect("standard layout");
        match input {
            0 => (0..n * d)
                .into_par_iter()
                .map(|at| {
                    let (i, j) = (at / d, at % d);
                    let weights: Vec<f64> = (0..d).map(|k| g[i * d + k] * gamma[k]).collect();
                    probe_value(&xs[i * d..(i + 1) * d], j, &weights, self.eps, h)
                })
                .collect(),
            _ => {
                let (rows, _, _) = self.rows(arrays);
                (0..d)
                    .into_par_iter()
                    .map(|j| {
                        if input == 1 {
                            let members: Vec<(f64, f64, f64)> = (0..n)
                                .map(|i| (rows[i].xhat[j], rows[i].err[j], g[i * d + j]))
                                .collect();
                            probe_gain(gamma[j], &members, h)
                        } else {
                            let members: Vec<(f64, f64)> = (0..n)
                                .map(|i| (gamma[j] * rows[i].xhat[j] + beta[j], g[i * d + j]))
                                .collect();
                            probe_shift(beta[j], &members, h)
                        }
                    })
                    .collect()
            }
        }
    }
}
