//! The multiclass hinge loss `L = (1/N)·Σ_n Σ_(j ≠ y_n) max(0, x_nj − x_(n,y_n) + 1)`,
//! cs231n's `svm_loss` (x (N, C), integer y (N,)). Piecewise linear: the step shrinks
//! to stay between the margins' kinks, and a margin exactly at 0 is a kink, judged by the
//! conventions a backward may use (`margins > 0`, cs231n's, counts it as 0).

use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

use super::{array, labels, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role, U};
use crate::error::Result;

pub struct SvmLoss;

const INPUTS: [Input; 2] = [
    super::input("x", Role::Differentiable),
    super::input("y", Role::Labels),
];

/// The conventions for a margin at 0: not counted (`margins > 0`), half, counted (`>= 0`).
const AT_ZERO: [(&str, f64); 3] = [
    ("margin>0", 0.0),
    ("margin=0 as ½", 0.5),
    ("margin>=0", 1.0),
];

/// A margin `x_j − x_y + 1` and a bound on its rounding.
fn margin(xj: f64, xy: f64) -> (f64, f64) {
    (xj - xy + 1.0, 2.0 * U * (xj.abs() + xy.abs() + 1.0))
}

impl LayerOp for SvmLoss {
    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).ok()?;
        let xs = x.as_slice()?;
        let (mut loss, mut err) = (0.0, 0.0);
        let (mut margins, mut margin_err) = (Vec::new(), Vec::new());
        for i in 0..n {
            for j in (0..c).filter(|&j| j != y[i]) {
                let (m, own) = margin(xs[i * c + j], xs[i * c + y[i]]);
                let e = own + x_err[i * c + j] + x_err[i * c + y[i]];
                loss += m.max(0.0);
                if m + e > 0.0 {
                    err += e + super::gamma(n * c) * m.abs();
                }
                margins.push(m);
                margin_err.push(e);
            }
        }
        let loss = loss / n as f64;
        Some(super::Bounded {
            out: ArrayD::from_elem(IxDyn(&[]), loss),
            err: ArrayD::from_elem(IxDyn(&[]), err / n as f64 + 2.0 * U * loss.abs()),
            kinks: Some((margins, margin_err)),
        })
    }

    fn describe(&self) -> String {
        "svm_loss".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn takes_dout(&self) -> bool {
        false
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let x = shape_of(arrays, "svm_loss", "x")?;
        if x.len() != 2 || x[1] == 0 {
            return Err(mismatch(format!(
                "x has shape {x:?}: svm_loss takes scores x (N, C)"
            )));
        }
        shape_of(arrays, "svm_loss", "y")?;
        labels(array(arrays, "y"), x[0], x[1])?;
        Ok(Vec::new())
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let xs = x.as_slice().expect("standard layout");
        let mut loss = 0.0;
        for i in 0..n {
            for j in (0..c).filter(|&j| j != y[i]) {
                loss += margin(xs[i * c + j], xs[i * c + y[i]]).0.max(0.0);
            }
        }
        ArrayD::from_elem(IxDyn(&[]), loss / n as f64)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let xs = x.as_slice().expect("standard layout");
        let up = dout.iter().next().copied().unwrap_or(1.0) / n as f64;
        let mut dx = vec![0.0; n * c];
        for i in 0..n {
            for j in (0..c).filter(|&j| j != y[i]) {
                if margin(xs[i * c + j], xs[i * c + y[i]]).0 > 0.0 {
                    dx[i * c + j] += up;
                    dx[i * c + y[i]] -= up;
                }
            }
        }
        vec![ArrayD::from_shape_vec(IxDyn(&[n, c]), dx).expect("shape")]
    }

    fn probes(&self, arrays: &Arrays, _dout: &ArrayD<f64>, _input: usize, h: f64) -> Vec<Probe> {
        let x = array(arrays, "x");
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let y = labels(array(arrays, "y"), n, c).expect("checked");
        let xs = x.as_slice().expect("standard layout");
        let scale = 1.0 / n as f64;
        (0..n * c)
            .into_par_iter()
            .map(|at| {
                let (i, k) = (at / c, at % c);
                let row = &xs[i * c..(i + 1) * c];
                let yi = y[i];
                // The margins this coordinate moves, and by which sign of the step.
                let moved: Vec<(usize, f64)> = if k == yi {
                    (0..c).filter(|&j| j != yi).map(|j| (j, -1.0)).collect()
                } else {
                    vec![(k, 1.0)]
                };
                let margins: Vec<(f64, f64)> = moved
                    .iter()
                    .map(|&(j, _)| margin(row[j], row[yi]))
                    .collect();
                // Margins within their own rounding of 0 are kinks.
                let at_kink = |(m, err): (f64, f64)| m.abs() <= err;
                let (mut above, mut zero) = (0.0, 0.0);
                for (&(_, sign), &m) in moved.iter().zip(&margins) {
                    if at_kink(m) {
                        zero += sign;
                    } else if m.0 > 0.0 {
                        above += sign;
                    }
                }
                if zero != 0.0 {
                    let kink = AT_ZERO.map(|(_, s)| (above + s * zero) * scale);
                    return Probe {
                        estimate: kink[0],
                        noise: 0.0,
                        truncation: 0.0,
                        kink: Some(kink),
                        partial: false,
                        grad_scale: kink[2].abs().max(kink[0].abs()),
                    };
                }
                // A step that crosses no margin's kink: the difference is exact.
                let room = margins
                    .iter()
                    .map(|&(m, _)| 0.5 * m.abs())
                    .fold(f64::INFINITY, f64::min);
                let step_h = h.min(room);
                let (plus, minus, sp, sm) = super::steps(xs[at], step_h);
                let (mut change, mut noise) = (0.0, 0.0);
                for &(j, _) in &moved {
                    let (xj_p, xy_p, xj_m, xy_m) = if k == yi {
                        (row[j], plus, row[j], minus)
                    } else {
                        (plus, row[yi], minus, row[yi])
                    };
                    let (mp, ep) = margin(xj_p, xy_p);
                    let (mm, em) = margin(xj_m, xy_m);
                    change += mp.max(0.0) - mm.max(0.0);
                    noise += ep + em;
                }
                let step = sp + sm;
                let estimate = change / step * scale;
                Probe {
                    estimate,
                    noise: (noise + U * change.abs()) / step * scale + 2.0 * U * estimate.abs(),
                    truncation: 0.0,
                    kink: None,
                    partial: false,
                    grad_scale: 2.0 * estimate.abs(),
                }
            })
            .collect()
    }

    fn kink_site(&self) -> Option<[&'static str; 3]> {
        Some(AT_ZERO.map(|(name, _)| name))
    }
}
