//! cs231n's `rnn_step_forward`: `next_h = tanh(x·Wx + prev_h·Wh + b)`, x (N, D), prev_h
//! (N, H), Wx (D, H), Wh (H, H), b (H,). A step moves pre-activations linearly (a row for
//! x and prev_h, a column for the weights and b); each moved unit's change is taken on
//! the small side of tanh, `|tanh'''| ≤ 4·sech²` bounds the truncation.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, gamma, mismatch, shape_of, steps, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;
use crate::model::spec::sigmoid;

pub struct RnnStep;

const INPUTS: [Input; 5] = [
    super::input("x", Role::Differentiable),
    super::input("prev_h", Role::Differentiable),
    super::input("Wx", Role::Differentiable),
    super::input("Wh", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// A bound on the rounding of `sigmoid`, relative to its value.
const SIGMOID_ROUNDING: f64 = 4.0 * U;

/// `sech²(t) = 4σ(2t)σ(−2t)`.
fn sech2(t: f64) -> f64 {
    4.0 * sigmoid(2.0 * t) * sigmoid(-2.0 * t)
}

struct Parts<'a> {
    x: &'a [f64],
    h0: &'a [f64],
    wx: &'a [f64],
    wh: &'a [f64],
    b: &'a [f64],
    n: usize,
    d: usize,
    h: usize,
}

impl<'a> Parts<'a> {
    fn of(arrays: &'a Arrays) -> Self {
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        let (x, wx) = (array(arrays, "x"), array(arrays, "Wx"));
        Parts {
            x: slice("x"),
            h0: slice("prev_h"),
            wx: slice("Wx"),
            wh: slice("Wh"),
            b: slice("b"),
            n: x.shape()[0],
            d: x.shape()[1],
            h: wx.shape()[1],
        }
    }

    /// The pre-activations and a bound on each one's rounding.
    fn pre(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut a, mut err) = (vec![0.0; self.n * self.h], vec![0.0; self.n * self.h]);
        for i in 0..self.n {
            for j in 0..self.h {
                let (mut acc, mut size) = (0.0, 0.0);
                for k in 0..self.d {
                    let t = self.x[i * self.d + k] * self.wx[k * self.h + j];
                    acc += t;
                    size += t.abs();
                }
                for k in 0..self.h {
                    let t = self.h0[i * self.h + k] * self.wh[k * self.h + j];
                    acc += t;
                    size += t.abs();
                }
                a[i * self.h + j] = acc + self.b[j];
                err[i * self.h + j] = gamma(self.d + self.h + 2) * (size + self.b[j].abs());
            }
        }
        (a, err)
    }
}

impl LayerOp for RnnStep {
    fn describe(&self) -> String {
        "rnn_step".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let s = |name| shape_of(arrays, "rnn_step", name);
        let (x, h0, wx, wh, b) = (s("x")?, s("prev_h")?, s("Wx")?, s("Wh")?, s("b")?);
        let ok = x.len() == 2
            && wx.len() == 2
            && wx[0] == x[1]
            && h0 == [x[0], wx[1]]
            && wh == [wx[1], wx[1]]
            && b == [wx[1]];
        if !ok {
            return Err(mismatch(format!(
                "x {x:?}, prev_h {h0:?}, Wx {wx:?}, Wh {wh:?}, b {b:?}: rnn_step takes x (N, D), prev_h (N, H), Wx (D, H), Wh (H, H), b (H,)"
            )));
        }
        Ok(vec![x[0], wx[1]])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let p = Parts::of(arrays);
        let out = p.pre().0.iter().map(|a| a.tanh()).collect();
        ArrayD::from_shape_vec(IxDyn(&[p.n, p.h]), out).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let p = Parts::of(arrays);
        let g = dout.as_slice().expect("standard layout");
        let da: Vec<f64> = p
            .pre()
            .0
            .iter()
            .zip(g)
            .map(|(a, up)| up * sech2(*a))
            .collect();
        let (mut dx, mut dh0) = (vec![0.0; p.n * p.d], vec![0.0; p.n * p.h]);
        let (mut dwx, mut dwh, mut db) =
            (vec![0.0; p.d * p.h], vec![0.0; p.h * p.h], vec![0.0; p.h]);
        for i in 0..p.n {
            for j in 0..p.h {
                let a = da[i * p.h + j];
                db[j] += a;
                for k in 0..p.d {
                    dx[i * p.d + k] += a * p.wx[k * p.h + j];
                    dwx[k * p.h + j] += p.x[i * p.d + k] * a;
                }
                for k in 0..p.h {
                    dh0[i * p.h + k] += a * p.wh[k * p.h + j];
                    dwh[k * p.h + j] += p.h0[i * p.h + k] * a;
                }
            }
        }
        let make = |shape: &[usize], v| ArrayD::from_shape_vec(IxDyn(shape), v).expect("shape");
        vec![
            make(&[p.n, p.d], dx),
            make(&[p.n, p.h], dh0),
            make(&[p.d, p.h], dwx),
            make(&[p.h, p.h], dwh),
            make(&[p.h], db),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let p = Parts::of(arrays);
        let (pre, pre_err) = p.pre();
        let g = dout.as_slice().expect("standard layout");
        // Each moved unit `(at, slope)`: tanh(a + slope·s₊) − tanh(a − slope·s₋).
        let probe = |theta: f64, moved: &[(usize, f64)]| {
            let (_, _, sp, sm) = steps(theta, h);
            let step = sp + sm;
            let (mut diff, mut noise, mut trunc, mut grad) = (0.0, 0.0, 0.0, 0.0);
            for &(at, slope) in moved {
                let (a, up) = (pre[at], g[at]);
                let (hi, lo) = (a + slope * sp, a - slope * sm);
                let (x1, x2) = if a > 0.0 {
                    (sigmoid(-2.0 * lo), sigmoid(-2.0 * hi))
                } else {
                    (sigmoid(2.0 * hi), sigmoid(2.0 * lo))
                };
                let change = 2.0 * (x1 - x2);
                diff += up * change;
                let reach = (a.abs() - (slope * h.max(sp).max(sm)).abs()).max(0.0);
                noise += up.abs()
                    * (2.0 * SIGMOID_ROUNDING * (x1 + x2)
                        + 2.0 * U * change.abs()
                        // the rounding of a and of a ± slope·s moves where tanh is taken
                        + 2.0 * (pre_err[at] + U * (hi.abs() + lo.abs())) * 0.8 * (slope * step).abs());
                trunc += up.abs()
                    * (slope.abs().powi(3) * h * h / 6.0 * 4.0 * sech2(reach)
                        + 0.4 * slope * slope * (sp - sm).abs());
                let t = a.tanh();
                grad += (up * slope).abs()
                    * ((4.0 * t * t + 2.0) + (moved.len() + 2) as f64 * sech2(a));
            }
            let estimate = diff / step;
            Probe {
                estimate,
                noise: noise / step
                    + gamma(moved.len() + 1) * estimate.abs()
                    + 2.0 * U * estimate.abs(),
                truncation: trunc,
                kink: None,
                partial: false,
                grad_scale: grad,
            }
        };
        let (n, d, hh) = (p.n, p.d, p.h);
        match input {
            0 => (0..n * d)
                .into_par_iter()
                .map(|c| {
                    let (i, k) = (c / d, c % d);
                    let moved: Vec<_> = (0..hh).map(|j| (i * hh + j, p.wx[k * hh + j])).collect();
                    probe(p.x[c], &moved)
                })
                .collect(),
            1 => (0..n * hh)
                .into_par_iter()
                .map(|c| {
                    let (i, k) = (c / hh, c % hh);
                    let moved: Vec<_> = (0..hh).map(|j| (i * hh + j, p.wh[k * hh + j])).collect();
                    probe(p.h0[c], &moved)
                })
                .collect(),
            2 => (0..d * hh)
                .into_par_iter()
                .map(|c| {
                    let (k, j) = (c / hh, c % hh);
                    let moved: Vec<_> = (0..n).map(|i| (i * hh + j, p.x[i * d + k])).collect();
                    probe(p.wx[c], &moved)
                })
                .collect(),
            3 => (0..hh * hh)
                .into_par_iter()
                .map(|c| {
                    let (k, j) = (c / hh, c % hh);
                    let moved: Vec<_> = (0..n).map(|i| (i * hh + j, p.h0[i * hh + k])).collect();
                    probe(p.wh[c], &moved)
                })
                .collect(),
            _ => (0..hh)
                .into_par_iter()
                .map(|j| {
                    let moved: Vec<_> = (0..n).map(|i| (i * hh + j, 1.0)).collect();
                    probe(p.b[j], &moved)
                })
                .collect(),
        }
    }
}
