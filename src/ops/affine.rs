//! `out = x·w + b` with `x` (N, d1…dk) read as (N, D), `w` (D, M), `b` (M,): cs231n's
//! `affine_forward`; and its `temporal_affine_forward`, x (N, T, D) → out (N, T, M), every
//! time step a row. Linear in each input: its central differences have no truncation,
//! and any mismatch beyond rounding is a bug.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::Result;

pub struct Affine {
    /// x (N, T, D), each of its N·T rows an example (cs231n's temporal affine).
    pub temporal: bool,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("w", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// The three inputs as matrices: x (N, D), w (D, M), b (M).
struct Parts<'a> {
    x: &'a [f64],
    w: &'a [f64],
    b: &'a [f64],
    n: usize,
    d: usize,
    m: usize,
}

impl<'a> Parts<'a> {
    fn of(arrays: &'a Arrays, temporal: bool) -> Self {
        let (x, w, b) = (array(arrays, "x"), array(arrays, "w"), array(arrays, "b"));
        let n = if temporal {
            x.shape()[0] * x.shape()[1]
        } else {
            x.shape()[0]
        };
        let (d, m) = (w.shape()[0], w.shape()[1]);
        Parts {
            x: x.as_slice().expect("standard layout"),
            w: w.as_slice().expect("standard layout"),
            b: b.as_slice().expect("standard layout"),
            n,
            d,
            m,
        }
    }

    fn out(&self) -> Vec<f64> {
        let mut out = vec![0.0; self.n * self.m];
        out.par_chunks_mut(self.m).enumerate().for_each(|(i, row)| {
            for (j, o) in row.iter_mut().enumerate() {
                let mut acc = 0.0;
                for k in 0..self.d {
                    acc += self.x[i * self.d + k] * self.w[k * self.m + j];
                }
                *o = acc + self.b[j];
            }
        });
        out
    }
}

impl LayerOp for Affine {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let p = Parts::of(arrays, self.temporal);
        let mut out = vec![0.0; p.n * p.m];
        let mut err = vec![0.0; p.n * p.m];
        out.par_chunks_mut(p.m)
            .zip(err.par_chunks_mut(p.m))
            .enumerate()
            .for_each(|(i, (row, row_err))| {
                for j in 0..p.m {
                    let (mut acc, mut size, mut moved) = (0.0, 0.0, 0.0);
                    for k in 0..p.d {
                        let w = p.w[k * p.m + j];
                        let term = p.x[i * p.d + k] * w;
                        acc += term;
                        size += term.abs();
                        moved += w.abs() * x_err[i * p.d + k];
                    }
                    row[j] = acc + p.b[j];
                    row_err[j] = moved + super::gamma(p.d + 1) * (size + p.b[j].abs());
                }
            });
        let shape = self.output_shape(arrays).ok()?;
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&shape), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&shape), err).ok()?,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        if self.temporal {
            "temporal_affine"
        } else {
            "affine"
        }
        .into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let name = self.describe();
        let x = shape_of(arrays, &name, "x")?;
        let w = shape_of(arrays, &name, "w")?;
        let b = shape_of(arrays, &name, "b")?;
        if self.temporal && x.len() != 3 {
            return Err(mismatch(format!(
                "x has shape {x:?}: temporal_affine takes x (N, T, D)"
            )));
        }
        if x.is_empty() {
            return Err(mismatch(
                "x is a scalar: affine takes x (N, d1, …, dk)".into(),
            ));
        }
        let d: usize = if self.temporal {
            x[2]
        } else {
            x[1..].iter().product()
        };
        if w.len() != 2 || w[0] != d {
            return Err(mismatch(format!(
                "w has shape {w:?} but x {x:?} has D = {d} features per row: w is (D, M)"
            )));
        }
        if b != [w[1]] {
            return Err(mismatch(format!(
                "b has shape {b:?} but w has M = {} outputs: b is (M,)",
                w[1]
            )));
        }
        Ok(if self.temporal {
            vec![x[0], x[1], w[1]]
        } else {
            vec![x[0], w[1]]
        })
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let p = Parts::of(arrays, self.temporal);
        let shape = self.output_shape(arrays).expect("checked");
        ArrayD::from_shape_vec(IxDyn(&shape), p.out()).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let p = Parts::of(arrays, self.temporal);
        let g = dout.as_slice().expect("standard layout");
        let mut dx = vec![0.0; p.n * p.d];
        let mut dw = vec![0.0; p.d * p.m];
        let mut db = vec![0.0; p.m];
        for i in 0..p.n {
            for k in 0..p.d {
                for j in 0..p.m {
                    dx[i * p.d + k] += g[i * p.m + j] * p.w[k * p.m + j];
                    dw[k * p.m + j] += p.x[i * p.d + k] * g[i * p.m + j];
                }
            }
            for j in 0..p.m {
                db[j] += g[i * p.m + j];
            }
        }
        let x_shape = array(arrays, "x").shape().to_vec();
        vec![
            ArrayD::from_shape_vec(IxDyn(&x_shape), dx).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[p.d, p.m]), dw).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[p.m]), db).expect("shape"),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let p = Parts::of(arrays, self.temporal);
        let out = p.out();
        let g = dout.as_slice().expect("standard layout");
        // Coordinate `c` moves outputs `(row, col)` by `slope·s`.
        let probe = |theta: f64, moved: &mut dyn Iterator<Item = (usize, f64)>| {
            super::linear_probe(
                theta,
                h,
                moved.map(|(at, slope)| (out[at], g[at], slope)),
                2,
            )
        };
        match input {
            0 => (0..p.n * p.d)
                .into_par_iter()
                .map(|c| {
                    let (i, k) = (c / p.d, c % p.d);
                    let mut moved = (0..p.m).map(|j| (i * p.m + j, p.w[k * p.m + j]));
                    probe(p.x[c], &mut moved)
                })
                .collect(),
            1 => (0..p.d * p.m)
                .into_par_iter()
                .map(|c| {
                    let (k, j) = (c / p.m, c % p.m);
                    let mut moved = (0..p.n).map(|i| (i * p.m + j, p.x[i * p.d + k]));
                    probe(p.w[c], &mut moved)
                })
                .collect(),
            _ => (0..p.m)
                .into_par_iter()
                .map(|j| {
                    let mut moved = (0..p.n).map(|i| (i * p.m + j, 1.0));
                    probe(p.b[j], &mut moved)
                })
                .collect(),
        }
    }
}
