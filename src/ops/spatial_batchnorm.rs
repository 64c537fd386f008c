//! Spatial batch normalisation (cs231n's `spatial_batchnorm_forward`, train mode): x (N,
//! C, H, W) normalised per channel over (N, H, W); `gamma`, `beta` (C,); `eps`.

use ndarray::ArrayD;

use super::norm::Grouped;
use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct SpatialBatchnorm {
    eps: f64,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("gamma", Role::Differentiable),
    super::input("beta", Role::Differentiable),
];

impl SpatialBatchnorm {
    pub fn new(eps: f64) -> Result<Self> {
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Option(format!(
                "spatial_batchnorm's eps must be a finite number ≥ 0, got {eps}"
            )));
        }
        Ok(Self { eps })
    }

    fn grouped<'a>(&self, arrays: &'a Arrays) -> Grouped<'a> {
        let x = array(arrays, "x");
        let (n, c, hw) = (x.shape()[0], x.shape()[1], x.shape()[2] * x.shape()[3]);
        let groups = (0..c)
            .map(|ch| {
                (0..n)
                    .flat_map(|e| (0..hw).map(move |p| (e * c + ch) * hw + p))
                    .collect()
            })
            .collect();
        Grouped {
            x: x.as_slice().expect("standard layout"),
            groups,
            gain_of: (0..x.len()).map(|i| (i / hw) % c).collect(),
            gains: array(arrays, "gamma").as_slice().expect("standard layout"),
            shifts: array(arrays, "beta").as_slice().expect("standard layout"),
            eps: self.eps,
        }
    }
}

impl LayerOp for SpatialBatchnorm {
    fn column_shift_invariant(&self) -> bool {
        true
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        self.grouped(arrays)
            .forward_bounded_shaped(x_err, array(arrays, "x").shape())
    }

    fn describe(&self) -> String {
        format!("spatial_batchnorm eps={}", super::number(self.eps))
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "spatial_batchnorm", "x")?;
        if x.len() != 4 || x.contains(&0) {
            return Err(mismatch(format!(
                "x has shape {x:?}: spatial_batchnorm takes x (N, C, H, W)"
            )));
        }
        for name in ["gamma", "beta"] {
            let s = shape_of(arrays, "spatial_batchnorm", name)?;
            if s != [x[1]] {
                return Err(mismatch(format!(
                    "{name} has shape {s:?} but x has C = {} channels: {name} is (C,)",
                    x[1]
                )));
            }
        }
        Ok(x)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        self.grouped(arrays)
            .forward_shaped(array(arrays, "x").shape())
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let shape = array(arrays, "x").shape();
        let c = shape[1];
        self.grouped(arrays).backward_shaped(dout, shape, &[c])
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        self.grouped(arrays)
            .probes(dout.as_slice().expect("standard layout"), input, h)
    }
}
