//! cs231n's `conv_forward_naive`: x (N, C, H, W), w (F, C, HH, WW), b (F,), `stride`,
//! `pad` (zeros); out (N, F, 1 + (H + 2·pad − HH)/stride, 1 + (W + 2·pad − WW)/stride).
//! Linear in each input: no truncation. A step in `x` moves every output window that
//! holds it, in `w` one output channel of every example, in `b` the same.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct Conv {
    stride: usize,
    pad: usize,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("w", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// The shapes of one convolution.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    f: usize,
    hh: usize,
    ww: usize,
    oh: usize,
    ow: usize,
}

impl Conv {
    pub fn new(stride: f64, pad: f64) -> Result<Self> {
        let whole = |v: f64, least: f64, name: &str| {
            if v.fract() == 0.0 && v >= least && v.is_finite() {
                Ok(v as usize)
            } else {
                Err(Error::Option(format!(
                    "conv's {name} must be a whole number ≥ {least}, got {v}"
                )))
            }
        };
        Ok(Self {
            stride: whole(stride, 1.0, "stride")?,
            pad: whole(pad, 0.0, "pad")?,
        })
    }

    fn dims(&self, arrays: &Arrays) -> Dims {
        let (x, w) = (array(arrays, "x").shape(), array(arrays, "w").shape());
        let (h, wd) = (x[2], x[3]);
        Dims {
            n: x[0],
            c: x[1],
            h,
            w: wd,
            f: w[0],
            hh: w[2],
            ww: w[3],
            oh: 1 + (h + 2 * self.pad - w[2]) / self.stride,
            ow: 1 + (wd + 2 * self.pad - w[3]) / self.stride,
        }
    }

    /// `x[n, c, i, j]` with the zero padding (`i`, `j` in padded coordinates).
    fn padded(&self, x: &[f64], d: Dims, (n, c, i, j): (usize, usize, usize, usize)) -> f64 {
        if i < self.pad || j < self.pad || i - self.pad >= d.h || j - self.pad >= d.w {
            return 0.0;
        }
        x[((n * d.c + c) * d.h + i - self.pad) * d.w + j - self.pad]
    }

    fn out(&self, arrays: &Arrays, d: Dims) -> Vec<f64> {
        self.out_bounded(arrays, d, None).0
    }

    /// The outputs and, given a bound on each element of `x` (`x_err`), a bound on each
    /// output's distance from the exact convolution (zeros without `x_err`).
    fn out_bounded(&self, arrays: &Arrays, d: Dims, x_err: Option<&[f64]>) -> (Vec<f64>, Vec<f64>) {
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let w = array(arrays, "w").as_slice().expect("standard layout");
        let b = array(arrays, "b").as_slice().expect("standard layout");
        let terms = d.c * d.hh * d.ww + 1;
        let mut out = vec![0.0; d.n * d.f * d.oh * d.ow];
        let mut err = vec![0.0; out.len()];
        let planes = d.oh * d.ow;
        out.par_chunks_mut(planes)
            .zip(err.par_chunks_mut(planes))
            .enumerate()
            .for_each(|(nf, (plane, plane_err))| {
                let (n, f) = (nf / d.f, nf % d.f);
                for p in 0..d.oh {
                    for q in 0..d.ow {
                        let (mut acc, mut size, mut moved) = (0.0, 0.0, 0.0);
                        for c in 0..d.c {
                            for kh in 0..d.hh {
                                for kw in 0..d.ww {
                                    let at = (n, c, p * self.stride + kh, q * self.stride + kw);
                                    let xv = self.padded(x, d, at);
                                    let wv = w[((f * d.c + c) * d.hh + kh) * d.ww + kw];
                                    acc += xv * wv;
                                    if let Some(e) = x_err {
                                        size += (xv * wv).abs();
                                        moved += wv.abs() * self.padded(e, d, at);
                                    }
                                }
                            }
                        }
                        plane[p * d.ow + q] = acc + b[f];
                        plane_err[p * d.ow + q] = moved + super::gamma(terms) * (size + b[f].abs());
                    }
                }
            });
        (out, err)
    }
}

impl LayerOp for Conv {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let d = self.dims(arrays);
        let (out, err) = self.out_bounded(arrays, d, Some(x_err));
        let shape = [d.n, d.f, d.oh, d.ow];
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&shape), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&shape), err).ok()?,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        format!("conv stride={} pad={}", self.stride, self.pad)
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "conv", "x")?;
        let w = shape_of(arrays, "conv", "w")?;
        let b = shape_of(arrays, "conv", "b")?;
        if x.len() != 4 || w.len() != 4 {
            return Err(mismatch(format!(
                "x has shape {x:?} and w {w:?}: conv takes x (N, C, H, W) and w (F, C, HH, WW)"
            )));
        }
        if w[1] != x[1] {
            return Err(mismatch(format!(
                "w has {} channels but x has {}: w is (F, C, HH, WW)",
                w[1], x[1]
            )));
        }
        if b != [w[0]] {
            return Err(mismatch(format!(
                "b has shape {b:?} but w has F = {} filters: b is (F,)",
                w[0]
            )));
        }
        for (size, k, name) in [(x[2], w[2], "height"), (x[3], w[3], "width")] {
            let span = size + 2 * self.pad;
            if k == 0 || k > span || !(span - k).is_multiple_of(self.stride) {
                return Err(mismatch(format!(
                    "a filter {name} of {k} does not tile {size} + 2·{} with stride {}: (H + 2·pad − HH) must be a multiple of the stride",
                    self.pad, self.stride
                )));
            }
        }
        let d = self.dims(arrays);
        Ok(vec![d.n, d.f, d.oh, d.ow])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let d = self.dims(arrays);
        ArrayD::from_shape_vec(IxDyn(&[d.n, d.f, d.oh, d.ow]), self.out(arrays, d)).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let d = self.dims(arrays);
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let w = array(arrays, "w").as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        let mut dx = vec![0.0; x.len()];
        let mut dw = vec![0.0; w.len()];
        let mut db = vec![0.0; d.f];
        for n in 0..d.n {
            for f in 0..d.f {
                for p in 0..d.oh {
                    for q in 0..d.ow {
                        let up = g[((n * d.f + f) * d.oh + p) * d.ow + q];
                        db[f] += up;
                        for c in 0..d.c {
                            for kh in 0..d.hh {
                                for kw in 0..d.ww {
                                    let (i, j) = (p * self.stride + kh, q * self.stride + kw);
                                    let wi = ((f * d.c + c) * d.hh + kh) * d.ww + kw;
                                    dw[wi] += up * self.padded(x, d, (n, c, i, j));
                                    if i >= self.pad
                                        && j >= self.pad
                                        && i - self.pad < d.h
                                        && j - self.pad < d.w
                                    {
                                        dx[((n * d.c + c) * d.h + i - self.pad) * d.w + j
                                            - self.pad] += up * w[wi];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        vec![
            ArrayD::from_shape_vec(IxDyn(&[d.n, d.c, d.h, d.w]), dx).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[d.f, d.c, d.hh, d.ww]), dw).expect("shape"),
            ArrayD::from_shape_vec(IxDyn(&[d.f]), db).expect("shape"),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let d = self.dims(arrays);
        let out = self.out(arrays, d);
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let w = array(arrays, "w").as_slice().expect("standard layout");
        let b = array(arrays, "b").as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        let at = |n: usize, f: usize, p: usize, q: usize| ((n * d.f + f) * d.oh + p) * d.ow + q;
        let probe = |theta: f64, moved: &[(usize, f64)]| {
            let moved = moved.iter().map(|&(k, slope)| (out[k], g[k], slope));
            super::linear_probe(theta, h, moved, 2)
        };
        match input {
            0 => (0..x.len())
                .into_par_iter()
                .map(|k| {
                    let (n, rest) = (k / (d.c * d.h * d.w), k % (d.c * d.h * d.w));
                    let (c, i, j) = (rest / (d.h * d.w), (rest / d.w) % d.h, rest % d.w);
                    let (i, j) = (i + self.pad, j + self.pad);
                    let mut moved = Vec::new();
                    for p in 0..d.oh {
                        for q in 0..d.ow {
                            let (top, left) = (p * self.stride, q * self.stride);
                            if i >= top && i < top + d.hh && j >= left && j < left + d.ww {
                                for f in 0..d.f {
                                    let wi = ((f * d.c + c) * d.hh + i - top) * d.ww + j - left;
                                    moved.push((at(n, f, p, q), w[wi]));
                                }
                            }
                        }
                    }
                    probe(x[k], &moved)
                })
                .collect(),
            1 => (0..w.len())
                .into_par_iter()
                .map(|k| {
                    let f = k / (d.c * d.hh * d.ww);
                    let rest = k % (d.c * d.hh * d.ww);
                    let (c, kh, kw) = (rest / (d.hh * d.ww), (rest / d.ww) % d.hh, rest % d.ww);
                    let mut moved = Vec::new();
                    for n in 0..d.n {
                        for p in 0..d.oh {
                            for q in 0..d.ow {
                                let xv = self.padded(
                                    x,
                                    d,
                                    (n, c, p * self.stride + kh, q * self.stride + kw),
                                );
                                moved.push((at(n, f, p, q), xv));
                            }
                        }
                    }
                    probe(w[k], &moved)
                })
                .collect(),
            _ => (0..d.f)
                .into_par_iter()
                .map(|f| {
                    let moved: Vec<(usize, f64)> = (0..d.n)
                        .flat_map(|n| (0..d.oh * d.ow).map(move |pq| (n, pq)))
                        .map(|(n, pq)| (at(n, f, pq / d.ow, pq % d.ow), 1.0))
                        .collect();
                    probe(b[f], &moved)
                })
                .collect(),
        }
    }
}
