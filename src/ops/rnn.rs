//! cs231n's `rnn_forward`: `h_t = tanh(x_t·Wx + h_(t−1)·Wh + b)` over the T steps of x
//! (N, T, D) from h0 (N, H); out h (N, T, H). A weight's step moves every time step, so
//! the recurrence is differenced whole ([`super::richardson_probes`]), its rounding
//! bounded step by step through the recurrence ([`Rnn::run`]).

use ndarray::{ArrayD, IxDyn};

use super::{array, gamma, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;
use crate::model::spec::sigmoid;

pub struct Rnn;

const INPUTS: [Input; 5] = [
    super::input("x", Role::Differentiable),
    super::input("h0", Role::Differentiable),
    super::input("Wx", Role::Differentiable),
    super::input("Wh", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// `tanh'` over `[a − e, a + e]`, at its largest.
fn tanh_slope(a: f64, e: f64) -> f64 {
    let t = (a.abs() - e).max(0.0);
    4.0 * sigmoid(2.0 * t) * sigmoid(-2.0 * t)
}

impl Rnn {
    fn dims(arrays: &Arrays) -> (usize, usize, usize, usize) {
        let x = array(arrays, "x").shape();
        (x[0], x[1], x[2], array(arrays, "h0").shape()[1])
    }

    /// Every hidden state (N, T, H) and a bound on each, given a bound on each element of
    /// `x` (`x_err`): each step's rounding and the previous state's bound carried by `Wh`.
    fn run(arrays: &Arrays, x_err: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let (n, t, d, h) = Self::dims(arrays);
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        let (x, h0, wx, wh, b) = (
            slice("x"),
            slice("h0"),
            slice("Wx"),
            slice("Wh"),
            slice("b"),
        );
        let (mut out, mut err) = (vec![0.0; n * t * h], vec![0.0; n * t * h]);
        for r in 0..n {
            let mut prev: Vec<f64> = h0[r * h..(r + 1) * h].to_vec();
            let mut prev_err = vec![0.0; h];
            for s in 0..t {
                let row = (r * t + s) * d;
                let (mut next, mut next_err) = (vec![0.0; h], vec![0.0; h]);
                for j in 0..h {
                    let (mut acc, mut size, mut moved) = (0.0, 0.0, 0.0);
                    for k in 0..d {
                        let term = x[row + k] * wx[k * h + j];
                        acc += term;
                        size += term.abs();
                        moved += wx[k * h + j].abs() * x_err[row + k];
                    }
                    for k in 0..h {
                        let term = prev[k] * wh[k * h + j];
                        acc += term;
                        size += term.abs();
                        moved += wh[k * h + j].abs() * prev_err[k];
                    }
                    let a = acc + b[j];
                    let e = moved + gamma(d + h + 2) * (size + b[j].abs());
                    next[j] = a.tanh();
                    next_err[j] = tanh_slope(a, e) * e + 4.0 * U * next[j].abs();
                }
                let at = (r * t + s) * h;
                out[at..at + h].copy_from_slice(&next);
                err[at..at + h].copy_from_slice(&next_err);
                (prev, prev_err) = (next, next_err);
            }
        }
        (out, err)
    }
}

/// The shapes of a recurrence over x (N, T, D) from h0 (N, H) with `gates` blocks of H
/// pre-activations (1 for the RNN, 4 for the LSTM): Wx (D, gates·H), Wh (H, gates·H), b
/// (gates·H,); out h (N, T, H).
pub(super) fn sequence_shape(op: &str, arrays: &Arrays, gates: usize) -> Result<Vec<usize>> {
    let s = |name| shape_of(arrays, op, name);
    let (x, h0, wx, wh, b) = (s("x")?, s("h0")?, s("Wx")?, s("Wh")?, s("b")?);
    let h = h0.get(1).copied().unwrap_or(0);
    let g = gates * h;
    let ok =
        x.len() == 3 && h > 0 && h0 == [x[0], h] && wx == [x[2], g] && wh == [h, g] && b == [g];
    if !ok {
        let k = if gates == 1 {
            String::new()
        } else {
            gates.to_string()
        };
        return Err(mismatch(format!(
            "x {x:?}, h0 {h0:?}, Wx {wx:?}, Wh {wh:?}, b {b:?}: {op} takes x (N, T, D), h0 (N, H), Wx (D, {k}H), Wh (H, {k}H), b ({k}H,)"
        )));
    }
    Ok(vec![x[0], x[1], h])
}

impl LayerOp for Rnn {
    fn describe(&self) -> String {
        "rnn".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        sequence_shape("rnn", arrays, 1)
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let (n, t, d, h) = Self::dims(arrays);
        let (out, _) = Self::run(arrays, &vec![0.0; n * t * d]);
        ArrayD::from_shape_vec(IxDyn(&[n, t, h]), out).expect("shape")
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let (n, t, _, h) = Self::dims(arrays);
        let (out, err) = Self::run(arrays, x_err);
        Some(super::Bounded {
            out: ArrayD::from_shape_vec(IxDyn(&[n, t, h]), out).ok()?,
            err: ArrayD::from_shape_vec(IxDyn(&[n, t, h]), err).ok()?,
            kinks: None,
        })
    }

    /// Backpropagation through time, the gradient of every step's state accumulated.
    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let (n, t, d, h) = Self::dims(arrays);
        let (states, _) = Self::run(arrays, &vec![0.0; n * t * d]);
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        let (x, h0, wx, wh) = (slice("x"), slice("h0"), slice("Wx"), slice("Wh"));
        let up = dout.as_slice().expect("standard layout");
        let mut dx = vec![0.0; n * t * d];
        let mut dh0 = vec![0.0; n * h];
        let (mut dwx, mut dwh, mut db) = (vec![0.0; d * h], vec![0.0; h * h], vec![0.0; h]);
        for r in 0..n {
            let mut carry = vec![0.0; h];
            for s in (0..t).rev() {
                let at = (r * t + s) * h;
                let prev = if s == 0 {
                    &h0[r * h..(r + 1) * h]
                } else {
                    &states[at - h..at]
                };
                let da: Vec<f64> = (0..h)
                    .map(|j| (up[at + j] + carry[j]) * (1.0 - states[at + j] * states[at + j]))
                    .collect();
                let row = (r * t + s) * d;
                let mut next_carry = vec![0.0; h];
                for (j, &g) in da.iter().enumerate() {
                    for k in 0..d {
                        dx[row + k] += g * wx[k * h + j];
                        dwx[k * h + j] += x[row + k] * g;
                    }
                    for k in 0..h {
                        next_carry[k] += g * wh[k * h + j];
                        dwh[k * h + j] += prev[k] * g;
                    }
                    db[j] += g;
                }
                carry = next_carry;
            }
            dh0[r * h..(r + 1) * h].copy_from_slice(&carry);
        }
        let shaped = |v: Vec<f64>, s: &[usize]| ArrayD::from_shape_vec(IxDyn(s), v).expect("shape");
        vec![
            shaped(dx, &[n, t, d]),
            shaped(dh0, &[n, h]),
            shaped(dwx, &[d, h]),
            shaped(dwh, &[h, h]),
            shaped(db, &[h]),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        super::richardson_probes(self, arrays, dout, input, h)
    }
}
