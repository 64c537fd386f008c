//! The windows both pools share: x (N, C, H, W), `pool_height`, `pool_width`, `stride`
//! (cs231n's `pool_param`; overlapping windows allowed), out (N, C, 1 + (H − ph)/stride,
//! 1 + (W − pw)/stride).

use super::{mismatch, shape_of, Arrays};
use crate::error::{Error, Result};

/// A pool's window and stride.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub ph: usize,
    pub pw: usize,
    pub stride: usize,
}

/// The shapes of one pooling.
#[derive(Clone, Copy, Debug)]
pub struct Dims {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Window {
    pub fn new(op: &str, ph: Option<f64>, pw: Option<f64>, stride: Option<f64>) -> Result<Self> {
        let whole = |v: Option<f64>, name: &str| match v {
            Some(v) if v.fract() == 0.0 && v >= 1.0 && v.is_finite() => Ok(v as usize),
            Some(v) => Err(Error::Option(format!(
                "{op}'s {name} must be a whole number ≥ 1, got {v}"
            ))),
            None => Err(Error::Option(format!(
                "{op} needs {name} (cs231n's pool_param['{name}'])"
            ))),
        };
        Ok(Self {
            ph: whole(ph, "pool_height")?,
            pw: whole(pw, "pool_width")?,
            stride: whole(stride, "stride")?,
        })
    }

    pub fn describe(&self, op: &str) -> String {
        format!(
            "{op} pool_height={} pool_width={} stride={}",
            self.ph, self.pw, self.stride
        )
    }

    /// The output's shape, after checking that the windows tile x.
    pub fn output_shape(&self, op: &str, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, op, "x")?;
        if x.len() != 4 {
            return Err(mismatch(format!(
                "x has shape {x:?}: {op} takes x (N, C, H, W)"
            )));
        }
        for (size, k, name) in [
            (x[2], self.ph, "pool_height"),
            (x[3], self.pw, "pool_width"),
        ] {
            if k > size || !(size - k).is_multiple_of(self.stride) {
                return Err(mismatch(format!(
                    "a {name} of {k} does not tile {size} with stride {}: (H − pool_height) must be a multiple of the stride",
                    self.stride
                )));
            }
        }
        let d = self.dims(&x);
        Ok(vec![d.n, d.c, d.oh, d.ow])
    }

    pub fn dims(&self, x: &[usize]) -> Dims {
        Dims {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            oh: 1 + (x[2] - self.ph) / self.stride,
            ow: 1 + (x[3] - self.pw) / self.stride,
        }
    }

    /// The flat indices of window `(n, c, p, q)`'s inputs, row by row.
    pub fn members(&self, d: Dims, (n, c, p, q): (usize, usize, usize, usize)) -> Vec<usize> {
        let mut m = Vec::with_capacity(self.ph * self.pw);
        for a in 0..self.ph {
            for b in 0..self.pw {
                let (i, j) = (p * self.stride + a, q * self.stride + b);
                m.push(((n * d.c + c) * d.h + i) * d.w + j);
            }
        }
        m
    }

    /// The windows `(p, q)` that hold input `(i, j)`.
    pub fn holding(&self, d: Dims, i: usize, j: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for p in 0..d.oh {
            for q in 0..d.ow {
                let (top, left) = (p * self.stride, q * self.stride);
                if i >= top && i < top + self.ph && j >= left && j < left + self.pw {
                    out.push((p, q));
                }
            }
        }
        out
    }
}
