//! Max pooling (cs231n's `pool_param`, overlapping windows allowed): each output its
//! window's maximum. Piecewise linear: the step shrinks so that no window changes its
//! winner, and then the difference is exact; an input tied for a window's maximum is a
//! kink, judged by the conventions a backward may use there — the first maximum
//! (`np.argmax`), every maximum (`x == max` as a mask), the last — and, since splitting
//! evenly is a fourth, a gradient matching none of these is undecided, not failed.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::pool::Window;
use super::{array, steps, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;

pub struct MaxPool {
    window: Window,
}

const INPUTS: [Input; 1] = [super::input("x", Role::Differentiable)];

/// The conventions at a tie, in the kink's order.
const AT_TIE: [&str; 3] = ["first maximum", "every maximum", "last maximum"];

impl MaxPool {
    pub fn new(window: Window) -> Self {
        Self { window }
    }

    fn windows(&self, shape: &[usize]) -> usize {
        let d = self.window.dims(shape);
        d.n * d.c * d.oh * d.ow
    }

    fn members(&self, shape: &[usize], k: usize) -> Vec<usize> {
        let d = self.window.dims(shape);
        let (nc, pq) = (k / (d.oh * d.ow), k % (d.oh * d.ow));
        self.window
            .members(d, (nc / d.c, nc % d.c, pq / d.ow, pq % d.ow))
    }
}

impl LayerOp for MaxPool {
    /// A maximum moves by at most its window's largest input error. Its kinks: per window
    /// member, how far it leads the rest of the window (positive for the winner only), so
    /// that a step changing a winner changes a sign.
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let xs = x.as_slice()?;
        let d = self.window.dims(x.shape());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let (mut leads, mut lead_err) = (Vec::new(), Vec::new());
        for k in 0..self.windows(x.shape()) {
            let members = self.members(x.shape(), k);
            let top = members
                .iter()
                .map(|&i| xs[i])
                .fold(f64::NEG_INFINITY, f64::max);
            out.push(top);
            err.push(members.iter().map(|&i| x_err[i]).fold(0.0, f64::max));
            for &i in &members {
                let rest = members
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| xs[j])
                    .fold(f64::NEG_INFINITY, f64::max);
                leads.push(xs[i] - rest);
                lead_err.push(if rest.is_finite() {
                    2.0 * x_err[i].max(err[k]) + U * (xs[i].abs() + rest.abs())
                } else {
                    0.0
                });
            }
        }
        let shape = [d.n, d.c, d.oh, d.ow];
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&shape), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&shape), err).ok()?,
            kinks: Some((leads, lead_err)),
        })
    }

    fn describe(&self) -> String {
        self.window.describe("max_pool")
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        self.window.output_shape("max_pool", arrays)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let x = array(arrays, "x");
        let xs = x.as_slice().expect("standard layout");
        let d = self.window.dims(x.shape());
        let out = (0..self.windows(x.shape()))
            .map(|k| {
                self.members(x.shape(), k)
                    .iter()
                    .map(|&i| xs[i])
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        ArrayD::from_shape_vec(IxDyn(&[d.n, d.c, d.oh, d.ow]), out).expect("shape")
    }

    /// cs231n's: each window's gradient to its first maximum.
    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let x = array(arrays, "x");
        let xs = x.as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        let mut dx = vec![0.0; xs.len()];
        for (k, up) in g.iter().enumerate() {
            let members = self.members(x.shape(), k);
            let first = members
                .iter()
                .copied()
                .reduce(|a, b| if xs[b] > xs[a] { b } else { a })
                .expect("a nonempty window");
            dx[first] += up;
        }
        vec![ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x");
        let shape = x.shape().to_vec();
        let d = self.window.dims(&shape);
        let xs = x.as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        (0..xs.len())
            .into_par_iter()
            .map(|k| {
                let (nc, ij) = (k / (d.h * d.w), k % (d.h * d.w));
                let windows: Vec<(usize, Vec<usize>)> = self
                    .window
                    .holding(d, ij / d.w, ij % d.w)
                    .into_iter()
                    .map(|(p, q)| {
                        let at = (nc * d.oh + p) * d.ow + q;
                        (at, self.members(&shape, at))
                    })
                    .collect();
                // Per window: the largest of the others, and whether x ties it.
                let (mut room, mut tie) = (f64::INFINITY, false);
                let mut kink = [0.0; 3];
                for (at, members) in &windows {
                    let others = members
                        .iter()
                        .filter(|&&i| i != k)
                        .map(|&i| xs[i])
                        .fold(f64::NEG_INFINITY, f64::max);
                    let up = g[*at];
                    if others == xs[k] {
                        tie = true;
                        let tied: Vec<usize> = members
                            .iter()
                            .copied()
                            .filter(|&i| xs[i] == xs[k])
                            .collect();
                        kink[0] += if tied.first() == Some(&k) { up } else { 0.0 };
                        kink[1] += up;
                        kink[2] += if tied.last() == Some(&k) { up } else { 0.0 };
                    } else {
                        room = room.min(0.5 * (others - xs[k]).abs());
                        if xs[k] > others {
                            kink.iter_mut().for_each(|v| *v += up);
                        }
                    }
                }
                if tie {
                    return Probe {
                        estimate: kink[0],
                        noise: 0.0,
                        truncation: 0.0,
                        kink: Some(kink),
                        partial: true,
                        grad_scale: kink.iter().map(|v| v.abs()).fold(0.0, f64::max)
                            * (windows.len() + 1) as f64,
                    };
                }
                // A step that changes no window's winner: the difference is exact.
                let (plus, minus, sp, sm) = steps(xs[k], h.min(room));
                let (mut diff, mut noise, mut grad_size) = (0.0, 0.0, 0.0);
                for (at, members) in &windows {
                    let value = |v: f64| {
                        members
                            .iter()
                            .map(|&i| if i == k { v } else { xs[i] })
                            .fold(f64::NEG_INFINITY, f64::max)
                    };
                    let (mp, mm) = (value(plus), value(minus));
                    diff += g[*at] * (mp - mm);
                    noise += g[*at].abs() * U * (mp - mm).abs();
                    grad_size += if mp != mm { g[*at].abs() } else { 0.0 };
                }
                let step = sp + sm;
                let estimate = diff / step;
                Probe {
                    estimate,
                    noise: noise / step + 2.0 * U * estimate.abs(),
                    truncation: 0.0,
                    kink: None,
                    partial: false,
                    grad_scale: (windows.len() + 1) as f64 * grad_size,
                }
            })
            .collect()
    }

    fn kink_site(&self) -> Option<[&'static str; 3]> {
        Some(AT_TIE)
    }
}
