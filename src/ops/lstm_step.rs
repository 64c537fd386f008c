//! cs231n's `lstm_step_forward`: `a = x·Wx + prev_h·Wh + b` (N, 4H), gates `i, f, o =
//! σ(a)` and `g = tanh(a)` in that order, `next_c = f⊙prev_c + i⊙g`, `next_h =
//! o⊙tanh(next_c)`; x (N, D), prev_h, prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,). Two
//! outputs, so two upstream gradients `dnext_h`, `dnext_c`: the check's output is
//! `[next_h | next_c]` (N, 2H). Its probes are Richardson's over the whole cell
//! ([`super::richardson_probes`]), its rounding bounded by [`LstmStep::cell`].

use ndarray::{ArrayD, IxDyn};

use super::{array, gamma, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;
use crate::model::spec::sigmoid;

pub struct LstmStep;

const INPUTS: [Input; 6] = [
    super::input("x", Role::Differentiable),
    super::input("prev_h", Role::Differentiable),
    super::input("prev_c", Role::Differentiable),
    super::input("Wx", Role::Differentiable),
    super::input("Wh", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

/// `σ'` and `tanh'` over `[a − e, a + e]`, at their largest.
fn sigmoid_slope(a: f64, e: f64) -> f64 {
    let t = (a.abs() - e).max(0.0);
    sigmoid(t) * sigmoid(-t)
}

fn tanh_slope(a: f64, e: f64) -> f64 {
    let t = (a.abs() - e).max(0.0);
    4.0 * sigmoid(2.0 * t) * sigmoid(-2.0 * t)
}

/// The cell's values for one row and hidden unit.
pub(super) struct Unit {
    pub gates: [f64; 4],
    pub next_c: f64,
    pub next_h: f64,
}

/// The cell's weights: Wx (D, 4H), Wh (H, 4H), b (4H,).
#[derive(Clone, Copy)]
pub(super) struct Weights<'a> {
    pub wx: &'a [f64],
    pub wh: &'a [f64],
    pub b: &'a [f64],
    pub d: usize,
    pub h: usize,
}

/// One step of the cell over every row: `(x, its bound)` (N·D), `(prev_h, bound)`,
/// `(prev_c, bound)` (N·H); every unit, and bounds on `next_h` and `next_c`.
pub(super) fn cell_step(
    w: Weights<'_>,
    (x, x_err): (&[f64], &[f64]),
    (h0, h0_err): (&[f64], &[f64]),
    (c0, c0_err): (&[f64], &[f64]),
) -> (Vec<Unit>, Vec<f64>, Vec<f64>) {
    let (d, h) = (w.d, w.h);
    let n = h0.len() / h;
    let (mut units, mut err_h, mut err_c) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..n {
        for j in 0..h {
            let (mut gates, mut gate_err) = ([0.0; 4], [0.0; 4]);
            for q in 0..4 {
                let col = q * h + j;
                let (mut acc, mut size, mut moved) = (0.0, 0.0, 0.0);
                for k in 0..d {
                    let t = x[r * d + k] * w.wx[k * 4 * h + col];
                    acc += t;
                    size += t.abs();
                    moved += w.wx[k * 4 * h + col].abs() * x_err[r * d + k];
                }
                for k in 0..h {
                    let t = h0[r * h + k] * w.wh[k * 4 * h + col];
                    acc += t;
                    size += t.abs();
                    moved += w.wh[k * 4 * h + col].abs() * h0_err[r * h + k];
                }
                let a = acc + w.b[col];
                let e = moved + gamma(d + h + 2) * (size + w.b[col].abs());
                (gates[q], gate_err[q]) = if q == 3 {
                    let g = a.tanh();
                    (g, tanh_slope(a, e) * e + 4.0 * U * g.abs())
                } else {
                    let s = sigmoid(a);
                    (s, sigmoid_slope(a, e) * e + 4.0 * U * s)
                };
            }
            let [i, f, o, g] = gates;
            let [ei, ef, eo, eg] = gate_err;
            let prev = c0[r * h + j];
            let next_c = f * prev + i * g;
            let ec = prev.abs() * ef
                + (f.abs() + ef) * c0_err[r * h + j]
                + g.abs() * ei
                + i.abs() * eg
                + ef * eg.max(ei)
                + 3.0 * U * ((f * prev).abs() + (i * g).abs());
            let tc = next_c.tanh();
            let next_h = o * tc;
            let eh = tc.abs() * eo
                + (o.abs() + eo) * (tanh_slope(next_c, ec) * ec + 4.0 * U * tc.abs())
                + U * next_h.abs();
            units.push(Unit {
                gates,
                next_c,
                next_h,
            });
            err_h.push(eh);
            err_c.push(ec);
        }
    }
    (units, err_h, err_c)
}

/// One step's backward over every row: from the step's units, its inputs and the
/// gradients reaching `next_h`, `next_c` (N·H each), the gate pre-activations' gradient
/// `da` (N·4H) and `dprev_c`.
pub(super) fn cell_backward(
    units: &[Unit],
    prev_c: &[f64],
    (dnext_h, dnext_c): (&[f64], &[f64]),
    h: usize,
) -> (Vec<f64>, Vec<f64>) {
    let n = units.len() / h;
    let mut da = vec![0.0; n * 4 * h];
    let mut dprev_c = vec![0.0; n * h];
    for r in 0..n {
        for j in 0..h {
            let u = &units[r * h + j];
            let [i, f, o, g] = u.gates;
            let (dh, dc) = (dnext_h[r * h + j], dnext_c[r * h + j]);
            let tc = u.next_c.tanh();
            let dc = dc + dh * o * (1.0 - tc * tc);
            dprev_c[r * h + j] = dc * f;
            let row = &mut da[r * 4 * h..(r + 1) * 4 * h];
            row[j] = dc * g * i * (1.0 - i);
            row[h + j] = dc * prev_c[r * h + j] * f * (1.0 - f);
            row[2 * h + j] = dh * tc * o * (1.0 - o);
            row[3 * h + j] = dc * i * (1.0 - g * g);
        }
    }
    (da, dprev_c)
}

/// `da`'s reach back through `a = x·Wx + prev_h·Wh + b`: adds to `dWx`, `dWh`, `db` and
/// returns `(dx, dprev_h)`.
pub(super) fn affine_backward(
    w: Weights<'_>,
    da: &[f64],
    (x, prev_h): (&[f64], &[f64]),
    (dwx, dwh, db): (&mut [f64], &mut [f64], &mut [f64]),
) -> (Vec<f64>, Vec<f64>) {
    let (d, h) = (w.d, w.h);
    let n = prev_h.len() / h;
    let (mut dx, mut dh0) = (vec![0.0; n * d], vec![0.0; n * h]);
    for r in 0..n {
        for col in 0..4 * h {
            let g = da[r * 4 * h + col];
            for k in 0..d {
                dx[r * d + k] += g * w.wx[k * 4 * h + col];
                dwx[k * 4 * h + col] += x[r * d + k] * g;
            }
            for k in 0..h {
                dh0[r * h + k] += g * w.wh[k * 4 * h + col];
                dwh[k * 4 * h + col] += prev_h[r * h + k] * g;
            }
            db[col] += g;
        }
    }
    (dx, dh0)
}

impl LstmStep {
    fn dims(arrays: &Arrays) -> (usize, usize, usize) {
        let x = array(arrays, "x").shape();
        (x[0], x[1], array(arrays, "prev_h").shape()[1])
    }

    /// Every unit, and bounds on `next_h` and `next_c` given a bound on each element of
    /// `x` (`x_err`).
    fn cell(arrays: &Arrays, x_err: &[f64]) -> (Vec<Unit>, Vec<f64>, Vec<f64>) {
        let (n, d, h) = Self::dims(arrays);
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        let zeros = vec![0.0; n * h];
        cell_step(
            Weights {
                wx: slice("Wx"),
                wh: slice("Wh"),
                b: slice("b"),
                d,
                h,
            },
            (slice("x"), x_err),
            (slice("prev_h"), &zeros),
            (slice("prev_c"), &zeros),
        )
    }

    /// `[next_h | next_c]` rows, from per-unit values.
    fn joined(n: usize, h: usize, of_h: &[f64], of_c: &[f64]) -> ArrayD<f64> {
        let mut out = Vec::with_capacity(2 * n * h);
        for r in 0..n {
            out.extend_from_slice(&of_h[r * h..(r + 1) * h]);
            out.extend_from_slice(&of_c[r * h..(r + 1) * h]);
        }
        ArrayD::from_shape_vec(IxDyn(&[n, 2 * h]), out).expect("shape")
    }
}

impl LayerOp for LstmStep {
    fn describe(&self) -> String {
        "lstm_step".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["next_h", "next_c"]
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let s = |name| shape_of(arrays, "lstm_step", name);
        let (x, h0, c0) = (s("x")?, s("prev_h")?, s("prev_c")?);
        let (wx, wh, b) = (s("Wx")?, s("Wh")?, s("b")?);
        let h = h0.get(1).copied().unwrap_or(0);
        let ok = x.len() == 2
            && h > 0
            && h0 == [x[0], h]
            && c0 == h0
            && wx == [x[1], 4 * h]
            && wh == [h, 4 * h]
            && b == [4 * h];
        if !ok {
            return Err(mismatch(format!(
                "x {x:?}, prev_h {h0:?}, prev_c {c0:?}, Wx {wx:?}, Wh {wh:?}, b {b:?}: lstm_step takes x (N, D), prev_h and prev_c (N, H), Wx (D, 4H), Wh (H, 4H), b (4H,)"
            )));
        }
        Ok(vec![x[0], 2 * h])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let (n, d, h) = Self::dims(arrays);
        let (units, _, _) = Self::cell(arrays, &vec![0.0; n * d]);
        let of_h: Vec<f64> = units.iter().map(|u| u.next_h).collect();
        let of_c: Vec<f64> = units.iter().map(|u| u.next_c).collect();
        Self::joined(n, h, &of_h, &of_c)
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let (n, _, h) = Self::dims(arrays);
        let (_, err_h, err_c) = Self::cell(arrays, x_err);
        Some(super::Bounded {
            out: self.forward(arrays),
            err: Self::joined(n, h, &err_h, &err_c),
            kinks: None,
        })
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let (n, d, h) = Self::dims(arrays);
        let (units, _, _) = Self::cell(arrays, &vec![0.0; n * d]);
        let slice = |name| array(arrays, name).as_slice().expect("standard layout");
        let up = dout.as_slice().expect("standard layout");
        let (mut dnext_h, mut dnext_c) = (Vec::new(), Vec::new());
        for r in 0..n {
            dnext_h.extend_from_slice(&up[r * 2 * h..r * 2 * h + h]);
            dnext_c.extend_from_slice(&up[r * 2 * h + h..(r + 1) * 2 * h]);
        }
        let (da, dprev_c) = cell_backward(&units, slice("prev_c"), (&dnext_h, &dnext_c), h);
        let weights = Weights {
            wx: slice("Wx"),
            wh: slice("Wh"),
            b: slice("b"),
            d,
            h,
        };
        let (mut dwx, mut dwh, mut db) =
            (vec![0.0; d * 4 * h], vec![0.0; h * 4 * h], vec![0.0; 4 * h]);
        let (dx, dh0) = affine_backward(
            weights,
            &da,
            (slice("x"), slice("prev_h")),
            (&mut dwx, &mut dwh, &mut db),
        );
        let shaped = |v: Vec<f64>, s: &[usize]| ArrayD::from_shape_vec(IxDyn(s), v).expect("shape");
        vec![
            shaped(dx, &[n, d]),
            shaped(dh0, &[n, h]),
            shaped(dprev_c, &[n, h]),
            shaped(dwx, &[d, 4 * h]),
            shaped(dwh, &[h, 4 * h]),
            shaped(db, &[4 * h]),
        ]
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        super::richardson_probes(self, arrays, dout, input, h)
    }
}
