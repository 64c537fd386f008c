//! cs231n's `word_embedding_forward`: integer x (N, T) of word indices into W (V, D), out
//! (N, T, D) = W[x]. Linear in W; a word that appears several times moves each of its
//! outputs, so its gradient accumulates (np.add.at).

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, gamma, mismatch, shape_of, steps, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::{Error, Result};

pub struct WordEmbedding;

const INPUTS: [Input; 2] = [
    super::input("x", Role::Labels),
    super::input("W", Role::Differentiable),
];

/// The word indices, checked.
fn words(arrays: &Arrays) -> Result<Vec<usize>> {
    let (x, w) = (array(arrays, "x"), array(arrays, "W"));
    let vocabulary = w.shape()[0];
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v >= 0.0 && (v as usize) < vocabulary {
                Ok(v as usize)
            } else {
                Err(Error::Labels(format!(
                    "x's entry {i} is {v}: word indices are integers in 0 … {}",
                    vocabulary - 1
                )))
            }
        })
        .collect()
}

impl LayerOp for WordEmbedding {
    fn describe(&self) -> String {
        "word_embedding".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "word_embedding", "x")?;
        let w = shape_of(arrays, "word_embedding", "W")?;
        if x.len() != 2 || w.len() != 2 || w[0] == 0 {
            return Err(mismatch(format!(
                "x has shape {x:?} and W {w:?}: word_embedding takes integer x (N, T) and W (V, D)"
            )));
        }
        words(arrays)?;
        Ok(vec![x[0], x[1], w[1]])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let w = array(arrays, "W");
        let d = w.shape()[1];
        let ws = w.as_slice().expect("standard layout");
        let out: Vec<f64> = words(arrays)
            .expect("checked")
            .iter()
            .flat_map(|&v| ws[v * d..(v + 1) * d].iter().copied())
            .collect();
        let shape = self.output_shape(arrays).expect("checked");
        ArrayD::from_shape_vec(IxDyn(&shape), out).expect("shape")
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let w = array(arrays, "W");
        let d = w.shape()[1];
        let g = dout.as_slice().expect("standard layout");
        let mut dw = vec![0.0; w.len()];
        for (k, &v) in words(arrays).expect("checked").iter().enumerate() {
            for j in 0..d {
                dw[v * d + j] += g[k * d + j];
            }
        }
        vec![ArrayD::from_shape_vec(IxDyn(w.shape()), dw).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let w = array(arrays, "W");
        let d = w.shape()[1];
        let ws = w.as_slice().expect("standard layout");
        let g = dout.as_slice().expect("standard layout");
        let words = words(arrays).expect("checked");
        (0..ws.len())
            .into_par_iter()
            .map(|c| {
                let (v, j) = (c / d, c % d);
                let (plus, minus, sp, sm) = steps(ws[c], h);
                let (mut diff, mut noise, mut size, mut uses) = (0.0, 0.0, 0.0, 0usize);
                for (k, _) in words.iter().enumerate().filter(|(_, &x)| x == v) {
                    let up = g[k * d + j];
                    let change = plus - minus;
                    diff += up * change;
                    noise += up.abs() * U * change.abs();
                    size += (up * change).abs();
                    uses += 1;
                }
                let step = sp + sm;
                let estimate = diff / step;
                Probe {
                    estimate,
                    noise: (noise + gamma(uses + 1) * size) / step + 2.0 * U * estimate.abs(),
                    truncation: 0.0,
                    kink: None,
                    partial: false,
                    grad_scale: (uses + 2) as f64 * size / step,
                }
            })
            .collect()
    }
}
