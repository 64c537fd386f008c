//! Spatial group normalisation (cs231n's `spatial_groupnorm_forward`): x (N, C, H, W)
//! normalised per example over each of `G` groups of C/G channels and the spatial axes;
//! `gamma`, `beta` (1, C, 1, 1); `eps`.

use ndarray::ArrayD;

use super::norm::Grouped;
use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct SpatialGroupnorm {
    groups: usize,
    eps: f64,
}

const INPUTS: [Input; 3] = [
    super::input("x", Role::Differentiable),
    super::input("gamma", Role::Differentiable),
    super::input("beta", Role::Differentiable),
];

impl SpatialGroupnorm {
    pub fn new(groups: Option<f64>, eps: f64) -> Result<Self> {
        let groups = match groups {
            Some(g) if g.fract() == 0.0 && g >= 1.0 && g.is_finite() => g as usize,
            Some(g) => {
                return Err(Error::Option(format!(
                    "spatial_groupnorm's G must be a whole number ≥ 1, got {g}"
                )))
            }
            None => {
                return Err(Error::Option(
                    "spatial_groupnorm needs G, the number of groups".into(),
                ))
            }
        };
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(Error::Option(format!(
                "spatial_groupnorm's eps must be a finite number ≥ 0, got {eps}"
            )));
        }
        Ok(Self { groups, eps })
    }

    fn grouped<'a>(&self, arrays: &'a Arrays) -> Grouped<'a> {
        let x = array(arrays, "x");
        let (n, c, hw) = (x.shape()[0], x.shape()[1], x.shape()[2] * x.shape()[3]);
        let per = c / self.groups;
        let groups = (0..n * self.groups)
            .map(|ng| {
                let (e, g) = (ng / self.groups, ng % self.groups);
                (g * per..(g + 1) * per)
                    .flat_map(|ch| (0..hw).map(move |p| (e * c + ch) * hw + p))
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

impl LayerOp for SpatialGroupnorm {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        self.grouped(arrays)
            .forward_bounded_shaped(x_err, array(arrays, "x").shape())
    }

    fn describe(&self) -> String {
        format!(
            "spatial_groupnorm G={} eps={}",
            self.groups,
            super::number(self.eps)
        )
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "spatial_groupnorm", "x")?;
        if x.len() != 4 || x.contains(&0) {
            return Err(mismatch(format!(
                "x has shape {x:?}: spatial_groupnorm takes x (N, C, H, W)"
            )));
        }
        if x[1] % self.groups != 0 {
            return Err(mismatch(format!(
                "x has C = {} channels, which G = {} groups do not divide",
                x[1], self.groups
            )));
        }
        for name in ["gamma", "beta"] {
            let s = shape_of(arrays, "spatial_groupnorm", name)?;
            if s != [1, x[1], 1, 1] {
                return Err(mismatch(format!(
                    "{name} has shape {s:?} but x has C = {} channels: {name} is (1, C, 1, 1)",
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
        self.grouped(arrays)
            .backward_shaped(dout, shape, &[1, c, 1, 1])
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        self.grouped(arrays)
            .probes(dout.as_slice().expect("standard layout"), input, h)
    }
}
