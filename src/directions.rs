//! Directional checks (`--directions K`), as PyTorch's gradcheck fast_mode does them: K
//! random unit directions v, each compared as `(J(θ+εv) − J(θ−εv)) / 2ε` against `g·v`.
//! Each direction lies in one tensor, the tensors taken in turn, so a failing direction
//! names its tensor; K directions cost 2K forward passes whatever the parameter count.

use rand::SeedableRng;

use crate::error::{Error, Result};
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};

use crate::model::{ParamLayout, TensorKind};

/// A unit vector over the coordinates of one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Direction {
    /// Index into the layout's tensors.
    pub tensor: usize,
    /// Its entries, in the tensor's flat order (row-major for weights).
    pub values: Vec<f64>,
}

impl Direction {
    /// `g·v` for the flat gradient `grad`.
    pub fn project(&self, layout: &ParamLayout, grad: &[f64]) -> f64 {
        let offset = layout.tensors()[self.tensor].offset;
        self.values
            .iter()
            .zip(&grad[offset..offset + self.values.len()])
            .map(|(v, g)| v * g)
            .sum()
    }

    /// The change of its layer's pre-activations per unit step along it (`n_p × m`):
    /// `V·A` for a weight direction, with `A` the layer's input, or `v` in every column
    /// for a bias direction.
    pub fn layer_change(&self, layout: &ParamLayout, input: ArrayView2<f64>) -> Array2<f64> {
        let spec = &layout.tensors()[self.tensor];
        match spec.kind {
            TensorKind::Weight => {
                ArrayView2::from_shape((spec.shape[0], spec.shape[1]), &self.values)
                    .expect("a direction spans its tensor")
                    .dot(&input)
            }
            TensorKind::Bias => ArrayView1::from(&self.values[..])
                .insert_axis(Axis(1))
                .broadcast((spec.shape[0], input.ncols()))
                .expect("a bias spans its layer")
                .to_owned(),
        }
    }

    /// `|v|·bound`: how far per-coordinate errors within `bound` can move `g·v`.
    pub fn project_abs(&self, layout: &ParamLayout, bound: &[f64]) -> f64 {
        let offset = layout.tensors()[self.tensor].offset;
        self.values
            .iter()
            .zip(&bound[offset..offset + self.values.len()])
            .map(|(v, b)| v.abs() * b)
            .sum()
    }
}

/// `k` seeded directions: tensor `i mod T` for direction i, a Gaussian vector scaled to
/// unit length. Every error pattern of the tensor then shows along it with probability 1:
/// directions of ±1/√n entries miss two swapped entries half of the time each.
pub fn draw(layout: &ParamLayout, k: usize, seed: u64) -> Result<Vec<Direction>> {
    use rand_distr::{Distribution, StandardNormal};
    let tensors = layout.tensors();
    if k < tensors.len() {
        return Err(Error::Option(format!(
            "{k} directions cannot cover all {} tensors; use at least {}",
            tensors.len(),
            tensors.len()
        )));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    Ok((0..k)
        .map(|i| {
            let tensor = i % tensors.len();
            let n = tensors[tensor].shape[0] * tensors[tensor].shape[1];
            let mut values: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
            let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
            values.iter_mut().for_each(|v| *v /= norm);
            Direction { tensor, values }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::NetworkSpec;

    #[test]
    fn directions_are_unit_seeded_and_cover_the_tensors_in_turn() {
        let p = NetworkSpec::new(vec![6, 5, 1], 3, 1).unwrap().generate();
        let layout = p.net().layout();
        let d = draw(layout, 9, 3).unwrap();
        assert_eq!(d, draw(layout, 9, 3).unwrap());
        assert_ne!(d, draw(layout, 9, 4).unwrap());
        let tensors: Vec<usize> = d.iter().map(|d| d.tensor).collect();
        assert_eq!(tensors, [0, 1, 2, 3, 0, 1, 2, 3, 0]);
        for dir in &d {
            let norm: f64 = dir.values.iter().map(|v| v * v).sum();
            assert!((norm - 1.0).abs() < 1e-12);
        }
        let grad: Vec<f64> = (0..layout.len()).map(|i| i as f64).collect();
        let b1 = &d[1];
        let expected: f64 = b1
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| v * (30 + i) as f64)
            .sum();
        assert_eq!(b1.project(layout, &grad), expected);
        assert!(draw(layout, 3, 1).is_err());
    }
}
