//! cs231n's `lstm_forward`: the LSTM cell ([`super::lstm_step`]) over the T steps of x
//! (N, T, D) from h0 (N, H) and c0 = 0; out h (N, T, H). A weight's step moves every
//! time step, so the recurrence is differenced whole ([`super::richardson_probes`]), its
//! rounding bounded step by step through h and c.

use ndarray::{ArrayD, IxDyn};

use super::lstm_step::{affine_backward, cell_backward, cell_step, Unit, Weights};
use super::{array, Arrays, Input, LayerOp, Probe, Role};
use crate::error::Result;

pub struct Lstm;

const INPUTS: [Input; 5] = [
    super::input("x", Role::Differentiable),
    super::input("h0", Role::Differentiable),
    super::input("Wx", Role::Differentiable),
    super::input("Wh", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// Every step's units, inputs and bounds, in time order.
struct Run {
    units: Vec<Vec<Unit>>,
    /// Per step: the rows' x_t, prev_h, prev_c (N·D, N·H, N·H).
    inputs: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)>,
    /// h (N, T, H) and its bound.
    h: Vec<f64>,
    err: Vec<f64>,
}

impl Lstm {
    fn dims(arrays: &Arrays) -> (usize, usize, usize, usize) {
        let x = array(arrays, "x").shape();
        (x[0], x[1], x[2], array(arrays, "h0").shape()[1])
    }

    fn weights(arrays: &Arrays) -> Weights<'_> {
        let (_, _, d, h) = Self::dims(arrays);
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        Weights {
            wx: slice("Wx"),
            wh: slice("Wh"),
            b: slice("b"),
            d,
            h,
        }
    }

    fn run(arrays: &Arrays, x_err: &[f64]) -> Run {
        let (n, t, d, h) = Self::dims(arrays);
        let x = array(arrays, "x").as_slice().expect("standard layout");
        let w = Self::weights(arrays);
        let mut prev_h = array(arrays, "h0")
            .as_slice()
            .expect("standard layout")
            .to_vec();
        let (mut prev_c, mut prev_h_err, mut prev_c_err) =
            (vec![0.0; n * h], vec![0.0; n * h], vec![0.0; n * h]);
        let mut run = Run {
            units: Vec::new(),
            inputs: Vec::new(),
            h: vec![0.0; n * t * h],
            err: vec![0.0; n * t * h],
        };
        for s in 0..t {
            let rows = |v: &[f64]| -> Vec<f64> {
                (0..n)
                    .flat_map(|r| v[(r * t + s) * d..(r * t + s + 1) * d].iter().copied())
                    .collect()
            };
            let (xt, xt_err) = (rows(x), rows(x_err));
            let (units, err_h, err_c) = cell_step(
                w,
                (&xt, &xt_err),
                (&prev_h, &prev_h_err),
                (&prev_c, &prev_c_err),
            );
            let next_h: Vec<f64> = units.iter().map(|u| u.next_h).collect();
            let next_c: Vec<f64> = units.iter().map(|u| u.next_c).collect();
            for r in 0..n {
                let at = (r * t + s) * h;
                run.h[at..at + h].copy_from_slice(&next_h[r * h..(r + 1) * h]);
                run.err[at..at + h].copy_from_slice(&err_h[r * h..(r + 1) * h]);
            }
            run.inputs.push((xt, prev_h, prev_c));
            run.units.push(units);
            (prev_h, prev_c, prev_h_err, prev_c_err) = (next_h, next_c, err_h, err_c);
        }
        run
    }
}

impl LayerOp for Lstm {
    fn describe(&self) -> String {
        "lstm".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        super::rnn::sequence_shape("lstm", arrays, 4)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let (n, t, d, h) = Self::dims(arrays);
        let run = Self::run(arrays, &vec![0.0; n * t * d]);
        ArrayD::from_shape_vec(IxDyn(&[n, t, h]), run.h).expect("shape")
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let (n, t, _, h) = Self::dims(arrays);
        let run = Self::run(arrays, x_err);
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&[n, t, h]), run.h).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&[n, t, h]), run.err).ok()?,
            kinks: None,
        })
    }

    /// Backpropagation through time: each step's state gradient is its upstream one plus
    /// what the next step sends back through h and c.
    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let (n, t, d, h) = Self::dims(arrays);
        let run = Self::run(arrays, &vec![0.0; n * t * d]);
        let w = Self::weights(arrays);
        let up = dout.as_slice().expect("standard layout");
        let mut dx = vec![0.0; n * t * d];
        let (mut dwx, mut dwh, mut db) =
            (vec![0.0; d * 4 * h], vec![0.0; h * 4 * h], vec![0.0; 4 * h]);
        let (mut carry_h, mut carry_c) = (vec![0.0; n * h], vec![0.0; n * h]);
        for s in (0..t).rev() {
            let dnext_h: Vec<f64> = (0..n * h)
                .map(|k| up[((k / h) * t + s) * h + k % h] + carry_h[k])
                .collect();
            let (xt, prev_h, prev_c) = &run.inputs[s];
            let (da, dprev_c) = cell_backward(&run.units[s], prev_c, (&dnext_h, &carry_c), h);
            let (dxt, dprev_h) =
                affine_backward(w, &da, (xt, prev_h), (&mut dwx, &mut dwh, &mut db));
            for r in 0..n {
                dx[(r * t + s) * d..(r * t + s + 1) * d].copy_from_slice(&dxt[r * d..(r + 1) * d]);
            }
            (carry_h, carry_c) = (dprev_h, dprev_c);
        }
        let shaped = |v: Vec<f64>, s: &[usize]| ArrayD::from_shape_vec(IxDyn(s), v).expect("shape");
        vec![
            shaped(dx, &[n, t, d]),
            shaped(carry_h, &[n, h]),
            shaped(dwx, &[d, 4 * h]),
            shaped(dwh, &[h, 4 * h]),
            shaped(db, &[4 * h]),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        super::richardson_probes(self, arrays, dout, input, h)
    }
}
