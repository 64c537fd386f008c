//! deeplearning.ai Course 5's `rnn_cell_forward`, examples in columns: `a_next =
//! tanh(Wax·xt + Waa·a_prev + ba)`, xt (n_x, m), a_prev (n_a, m), Wax (n_a, n_x), Waa (n_a,
//! n_a), ba (n_a, 1); the upstream gradient `da_next`. It is cs231n's `rnn_step` seen
//! through transposes: its forward, backward and probes, their coordinates mapped back.

use ndarray::{ArrayD, IxDyn};

use super::rnn_step::RnnStep;
use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::Result;

pub struct RnnCell;

const INPUTS: [Input; 5] = [
    super::input("xt", Role::Differentiable),
    super::input("a_prev", Role::Differentiable),
    super::input("Wax", Role::Differentiable),
    super::input("Waa", Role::Differentiable),
    super::input("ba", Role::Differentiable),
];

/// The inner op's name of each input, and whether it is the transpose (`ba` is a column
/// read as a vector: the same order).
const INNER: [(&str, bool); 5] = [
    ("x", true),
    ("prev_h", true),
    ("Wx", true),
    ("Wh", true),
    ("b", false),
];

fn transposed(a: &ArrayD<f64>) -> ArrayD<f64> {
    a.t().as_standard_layout().into_owned()
}

impl RnnCell {
    fn inner(arrays: &Arrays) -> Arrays {
        INPUTS
            .iter()
            .zip(INNER)
            .map(|(outer, (name, t))| {
                let a = array(arrays, outer.name);
                let value = if t {
                    transposed(a)
                } else {
                    a.clone()
                        .into_shape_with_order(IxDyn(&[a.len()]))
                        .expect("size")
                };
                (name.to_string(), value)
            })
            .collect()
    }
}

impl LayerOp for RnnCell {
    fn describe(&self) -> String {
        "rnn_cell".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn upstream_aliases(&self) -> &'static [&'static str] {
        &["da_next"]
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let mut shapes = Vec::new();
        for input in &INPUTS {
            let s = shape_of(arrays, "rnn_cell", input.name)?;
            if s.len() != 2 {
                return Err(mismatch(format!(
                    "{} has shape {s:?}: rnn_cell takes xt (n_x, m), a_prev (n_a, m), Wax (n_a, n_x), Waa (n_a, n_a), ba (n_a, 1)",
                    input.name
                )));
            }
            shapes.push(s);
        }
        if shapes[4][1] != 1 {
            return Err(mismatch(format!(
                "ba has shape {:?}: it is a column (n_a, 1)",
                shapes[4]
            )));
        }
        let out = RnnStep.output_shape(&Self::inner(arrays))?;
        Ok(vec![out[1], out[0]])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        transposed(&RnnStep.forward(&Self::inner(arrays)))
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let g = RnnStep.backward(&Self::inner(arrays), &transposed(dout));
        g.into_iter()
            .zip(INPUTS)
            .zip(INNER)
            .map(|((g, outer), (_, t))| {
                if t {
                    transposed(&g)
                } else {
                    g.into_shape_with_order(IxDyn(array(arrays, outer.name).shape()))
                        .expect("size")
                }
            })
            .collect()
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let inner = RnnStep.probes(&Self::inner(arrays), &transposed(dout), input, h);
        if !INNER[input].1 {
            return inner;
        }
        let shape = array(arrays, INPUTS[input].name).shape();
        let (rows, cols) = (shape[0], shape[1]);
        (0..rows * cols)
            .map(|k| inner[(k % cols) * rows + k / cols])
            .collect()
    }
}
