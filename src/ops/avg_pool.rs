//! Average pooling (cs231n's `pool_param`, overlapping windows allowed): each output the
//! mean of its window. Linear: no truncation; an input in several windows moves each.

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::pool::Window;
use super::{array, Arrays, Input, LayerOp, Probe, Role};
use crate::error::Result;

pub struct AvgPool {
    window: Window,
}

const INPUTS: [Input; 1] = [super::input("x", Role::Differentiable)];

impl AvgPool {
    pub fn new(window: Window) -> Self {
        Self { window }
    }

    fn out(&self, x: &[f64], shape: &[usize]) -> Vec<f64> {
        let d = self.window.dims(shape);
        let area = (self.window.ph * self.window.pw) as f64;
        (0..d.n * d.c * d.oh * d.ow)
            .map(|k| {
                let (nc, pq) = (k / (d.oh * d.ow), k % (d.oh * d.ow));
                let members = self
                    .window
                    .members(d, (nc / d.c, nc % d.c, pq / d.ow, pq % d.ow));
                members.iter().map(|&i| x[i]).sum::<f64>() / area
            })
            .collect()
    }
}

impl LayerOp for AvgPool {
    /// A window's mean moves by the mean of its inputs' errors, and rounds within
    /// `γ(area + 1)` of the mean of their magnitudes.
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let xs = x.as_slice()?;
        let d = self.window.dims(x.shape());
        let shape = [d.n, d.c, d.oh, d.ow];
        let magnitudes: Vec<f64> = xs.iter().map(|v| v.abs()).collect();
        let rounding = super::gamma(self.window.ph * self.window.pw + 1);
        let err = self
            .out(x_err, x.shape())
            .iter()
            .zip(self.out(&magnitudes, x.shape()))
            .map(|(e, m)| e + rounding * m)
            .collect();
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&shape), self.out(xs, x.shape())).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&shape), err).ok()?,
            kinks: None,
        })
    }

    fn describe(&self) -> String {
        self.window.describe("avg_pool")
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        self.window.output_shape("avg_pool", arrays)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let x = array(arrays, "x");
        let d = self.window.dims(x.shape());
        let out = self.out(x.as_slice().expect("standard layout"), x.shape());
        ArrayD::from_shape_vec(IxDyn(&[d.n, d.c, d.oh, d.ow]), out).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let x = array(arrays, "x");
        let d = self.window.dims(x.shape());
        let g = dout.as_slice().expect("standard layout");
        let area = (self.window.ph * self.window.pw) as f64;
        let mut dx = vec![0.0; x.len()];
        for (k, up) in g.iter().enumerate() {
            let (nc, pq) = (k / (d.oh * d.ow), k % (d.oh * d.ow));
            for i in self
                .window
                .members(d, (nc / d.c, nc % d.c, pq / d.ow, pq % d.ow))
            {
                dx[i] += up / area;
            }
        }
        vec![ArrayD::from_shape_vec(IxDyn(x.shape()), dx).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x");
        let d = self.window.dims(x.shape());
        let xs = x.as_slice().expect("standard layout");
        let out = self.out(xs, x.shape());
        let g = dout.as_slice().expect("standard layout");
        let area = (self.window.ph * self.window.pw) as f64;
        (0..xs.len())
            .into_par_iter()
            .map(|k| {
                let (nc, ij) = (k / (d.h * d.w), k % (d.h * d.w));
                let moved = self
                    .window
                    .holding(d, ij / d.w, ij % d.w)
                    .into_iter()
                    .map(|(p, q)| (nc * d.oh + p) * d.ow + q)
                    .map(|at| (out[at], g[at], 1.0 / area));
                super::linear_probe(xs[k], h, moved, 3)
            })
            .collect()
    }
}
