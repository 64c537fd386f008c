//! Batch normalisation in train mode (batch statistics): `out = γ·x̂ + β`, `x̂` each
//! column of `x` (N, D) normalised over the batch; `gamma`, `beta` (D,); cs231n's
//! `batchnorm_forward` with `bn_param['eps']`. A step in `x` moves its whole column (every
//! example): the column is recomputed.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::norm::{carried, normalise, probe_gain, probe_shift, probe_value};
use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct Batchnorm {
    eps: f64,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("gamma", Role::Differentiable),
    super::input("beta", Role::Differentiable),
];

impl Batchnorm {
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Option(format!(
                "batchnorm's eps must be a finite number ≥ 0, got {eps}"
            )));
        }
        Ok(Self { eps })
    }
}

/// x as columns, γ and β, and the upstream gradient as columns.
struct Columns {
    x: Vec<Vec<f64>>,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    up: Vec<Vec<f64>>,
    n: usize,
}

fn columns(a: &ArrayD<f64>) -> Vec<Vec<f64>> {
    let (n, d) = (a.shape()[0], a.shape()[1]);
    let s = a.as_slice().expect("standard layout");
    (0..d)
        .map(|j| (0..n).map(|i| s[i * d + j]).collect())
        .collect()
}

impl Columns {
    fn of(arrays: &Arrays, dout: &ArrayD<f64>) -> Self {
        let x = array(arrays, "x");
        Columns {
            x: columns(x),
            gamma: array(arrays, "gamma").iter().copied().collect(),
            beta: array(arrays, "beta").iter().copied().collect(),
            up: columns(dout),
            n: x.shape()[0],
        }
    }

    /// Column `j`'s `(x̂, err)` and outputs.
    fn normalised(&self, j: usize, eps: f64) -> (super::norm::Normalised, Vec<f64>) {
        let norm = normalise(&self.x[j], eps);
        let out = norm
            .xhat
            .iter()
            .map(|xh| self.gamma[j] * xh + self.beta[j])
            .collect();
        (norm, out)
    }
}

/// Rows × columns back into an (N, D) array.
fn from_columns(cols: Vec<Vec<f64>>, n: usize) -> ArrayD<f64> {
    let d = cols.len();
    let mut v = vec![0.0; n * d];
    for (j, col) in cols.iter().enumerate() {
        for (i, x) in col.iter().enumerate() {
            v[i * d + j] = *x;
        }
    }
    ArrayD::from_shape_vec(IxDyn(&[n, d]), v).expect("shape")
}

/// Checks x (N, D) against per-feature `gamma`, `beta` (D,).
pub(crate) fn check_norm_shapes(op: &str, arrays: &Arrays) -> Result<Vec<usize>> {
    let x = shape_of(arrays, op, "x")?;
    if x.len() != 2 || x[0] == 0 || x[1] == 0 {
        return Err(mismatch(format!("x has shape {x:?}: {op} takes x (N, D)")));
    }
    for name in ["gamma", "beta"] {
        let s = shape_of(arrays, op, name)?;
        if s != [x[1]] {
            return Err(mismatch(format!(
                "{name} has shape {s:?} but x has D = {} features: {name} is (D,)",
                x[1]
            )));
        }
    }
    Ok(x)
}

impl LayerOp for Batchnorm {
    fn column_shift_invariant(&self) -> bool {
        true
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let c = Columns::of(arrays, x);
        let d = c.x.len();
        let (out, err): (Vec<Vec<f64>>, Vec<Vec<f64>>) = (0..d)
            .into_par_iter()
            .map(|j| {
                let e: Vec<f64> = (0..c.n).map(|i| x_err[i * d + j]).collect();
                let (norm, out) = c.normalised(j, self.eps);
                let err = carried(&norm, &e)
                    .iter()
                    .zip(&norm.xhat)
                    .zip(&out)
                    .map(|((xe, xh), o)| {
                        c.gamma[j].abs() * xe + super::U * ((c.gamma[j] * xh).abs() + o.abs())
                    })
                    .collect();
                (out, err)
            })
            .unzip();
        Some(super::Bounded {
            out: from_columns(out, c.n),
            err: from_columns(err, c.n),
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        format!("batchnorm eps={}", super::number(self.eps))
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        check_norm_shapes("batchnorm", arrays)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let x = array(arrays, "x");
        let c = Columns::of(arrays, x);
        let out = (0..c.x.len())
            .map(|j| c.normalised(j, self.eps).1)
            .collect();
        from_columns(out, c.n)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let c = Columns::of(arrays, dout);
        let n = c.n as f64;
        let (mut dx, mut dgamma, mut dbeta) = (Vec::new(), Vec::new(), Vec::new());
        for j in 0..c.x.len() {
            let (norm, _) = c.normalised(j, self.eps);
            let up = &c.up[j];
            let sum: f64 = up.iter().sum();
            let sum_x: f64 = up.iter().zip(&norm.xhat).map(|(g, x)| g * x).sum();
            dgamma.push(sum_x);
            dbeta.push(sum);
            dx.push(
                up.iter()
                    .zip(&norm.xhat)
                    .map(|(g, x)| c.gamma[j] / (n * norm.s) * (n * g - sum - x * sum_x))
                    .collect(),
            );
        }
        let d = c.x.len();
        vec![
            from_columns(dx, c.n),
            ArrayD::from_shape_vec(IxDyn(&[d]), dgamma).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[d]), dbeta).expect("shape"),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let c = Columns::of(arrays, dout);
        let d = c.x.len();
        match input {
            0 => (0..c.n * d)
                .into_par_iter()
                .map(|at| {
                    let (i, j) = (at / d, at % d);
                    let weights: Vec<f64> = c.up[j].iter().map(|g| g * c.gamma[j]).collect();
                    probe_value(&c.x[j], i, &weights, self.eps, h)
                })
                .collect(),
            1 => (0..d)
                .into_par_iter()
                .map(|j| {
                    let (norm, _) = c.normalised(j, self.eps);
                    let members: Vec<(f64, f64, f64)> = (0..c.n)
                        .map(|i| (norm.xhat[i], norm.err[i], c.up[j][i]))
                        .collect();
                    probe_gain(c.gamma[j], &members, h)
                })
                .collect(),
            _ => (0..d)
                .into_par_iter()
                .map(|j| {
                    let (_, out) = c.normalised(j, self.eps);
                    let members: Vec<(f64, f64)> = (0..c.n).map(|i| (out[i], c.up[j][i])).collect();
                    probe_shift(c.beta[j], &members, h)
                })
                .collect(),
        }
    }
}
