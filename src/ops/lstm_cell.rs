//! deeplearning.ai Course 5's `lstm_cell_forward`, examples in columns, over `concat =
//! [a_prev; xt]`: `ft = σ(Wf·concat + bf)`, `it = σ(Wi·concat + bi)`,
//! `cct = tanh(Wc·concat + bc)`, `c_next = ft⊙c_prev + it⊙cct`,
//! `ot = σ(Wo·concat + bo)`, `a_next = ot⊙tanh(c_next)`; xt (n_x, m), a_prev and c_prev
//! (n_a, m), each W (n_a, n_a + n_x), each b (n_a, 1). Two outputs, so two upstream
//! gradients `da_next`, `dc_next`: the check's output is `[a_next | c_next]` (n_a, 2m). It
//! is cs231n's `lstm_step` seen through transposes, its four gates' weights gathered into
//! `Wx`, `Wh` and `b` (gates i, f, o, g); probed whole, as that cell is. The notebook's
//! prediction `yt_pred` (Wy, by) is not the cell's: its backward does not differentiate it.

use ndarray::{s, Array2, ArrayD, Axis, Ix2, IxDyn};

use super::lstm_step::LstmStep;
use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::Result;

pub struct LstmCell;

const INPUTS: [Input; 11] = [
    super::input("xt", Role::Differentiable),
    super::input("a_prev", Role::Differentiable),
    super::input("c_prev", Role::Differentiable),
    super::input("Wf", Role::Differentiable),
    super::input("bf", Role::Differentiable),
    super::input("Wi", Role::Differentiable),
    super::input("bi", Role::Differentiable),
    super::input("Wc", Role::Differentiable),
    super::input("bc", Role::Differentiable),
    super::input("Wo", Role::Differentiable),
    super::input("bo", Role::Differentiable),
];

/// The gates in cs231n's order (i, f, o, g): each one's weight and bias here.
const GATES: [(&str, &str); 4] = [("Wi", "bi"), ("Wf", "bf"), ("Wo", "bo"), ("Wc", "bc")];

fn matrix(arrays: &Arrays, name: &str) -> Array2<f64> {
    array(arrays, name)
        .clone()
        .into_dimensionality::<Ix2>()
        .expect("a matrix")
}

fn dynamic(a: Array2<f64>) -> ArrayD<f64> {
    a.as_standard_layout().into_owned().into_dyn()
}

impl LstmCell {
    fn dims(arrays: &Arrays) -> (usize, usize, usize) {
        let xt = array(arrays, "xt").shape();
        (xt[1], xt[0], array(arrays, "a_prev").shape()[0])
    }

    /// cs231n's arrays: x = xtᵀ, prev_h = a_prevᵀ, prev_c = c_prevᵀ, Wx (n_x, 4n_a) and Wh
    /// (n_a, 4n_a) from each gate's columns over xt and a_prev, b (4n_a,).
    fn inner(arrays: &Arrays) -> Arrays {
        let (_, n_x, n_a) = Self::dims(arrays);
        let (mut wx, mut wh) = (Array2::zeros((n_x, 4 * n_a)), Array2::zeros((n_a, 4 * n_a)));
        let mut b = Vec::with_capacity(4 * n_a);
        for (g, (w, bias)) in GATES.iter().enumerate() {
            let w = matrix(arrays, w);
            let block = s![.., g * n_a..(g + 1) * n_a];
            wh.slice_mut(block).assign(&w.slice(s![.., ..n_a]).t());
            wx.slice_mut(block).assign(&w.slice(s![.., n_a..]).t());
            b.extend(array(arrays, bias).iter().copied());
        }
        let t = |name| dynamic(matrix(arrays, name).reversed_axes());
        [
            ("x", t("xt")),
            ("prev_h", t("a_prev")),
            ("prev_c", t("c_prev")),
            ("Wx", dynamic(wx)),
            ("Wh", dynamic(wh)),
            (
                "b",
                ArrayD::from_shape_vec(IxDyn(&[4 * n_a]), b).expect("4n_a"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `[next_h | next_c]` rows (m, 2n_a) as `[a_next | c_next]` (n_a, 2m), and back: each
    /// half transposed, the halves side by side.
    fn columns(joined: &ArrayD<f64>) -> ArrayD<f64> {
        let j = joined
            .view()
            .into_dimensionality::<Ix2>()
            .expect("a matrix");
        let (first, second) = j.split_at(Axis(1), j.ncols() / 2);
        ndarray::concatenate(Axis(1), &[first.t(), second.t()])
            .expect("halves alike")
            .as_standard_layout()
            .into_owned()
            .into_dyn()
    }
}

impl LayerOp for LstmCell {
    fn describe(&self) -> String {
        "lstm_cell".into()
    }

    fn inputs(&self) -> &'static [Input] {
        &INPUTS
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["a_next", "c_next"]
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let s = |name| shape_of(arrays, "lstm_cell", name);
        let (xt, a, c) = (s("xt")?, s("a_prev")?, s("c_prev")?);
        let rule = "lstm_cell takes xt (n_x, m), a_prev and c_prev (n_a, m), Wf, Wi, Wc, Wo (n_a, n_a + n_x) over [a_prev; xt], bf, bi, bc, bo (n_a, 1)";
        let ok = xt.len() == 2 && a.len() == 2 && a[0] > 0 && a[1] == xt[1] && c == a;
        if !ok {
            return Err(mismatch(format!(
                "xt {xt:?}, a_prev {a:?}, c_prev {c:?}: {rule}"
            )));
        }
        for (w, b) in GATES {
            let (ws, bs) = (s(w)?, s(b)?);
            if ws != [a[0], a[0] + xt[0]] || bs != [a[0], 1] {
                return Err(mismatch(format!("{w} {ws:?}, {b} {bs:?}: {rule}")));
            }
        }
        Ok(vec![a[0], 2 * a[1]])
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        Self::columns(&LstmStep.forward(&Self::inner(arrays)))
    }

    fn forward_bounded(&self, arrays: &Arrays, x_err: &[f64]) -> Option<super::Bounded> {
        let (m, n_x, _) = Self::dims(arrays);
        // x_err follows xt (n_x, m); the inner cell's x is its transpose.
        let err = Array2::from_shape_vec((n_x, m), x_err.to_vec()).ok()?;
        let err: Vec<f64> = err.t().iter().copied().collect();
        let inner = LstmStep.forward_bounded(&Self::inner(arrays), &err)?;
        Some(super::Bounded {
            out: Self::columns(&inner.out),
            err: Self::columns(&inner.err),
            kinks: None,
        })
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let (_, _, n_a) = Self::dims(arrays);
        let inner = LstmStep.backward(&Self::inner(arrays), &Self::columns(dout));
        let t = |g: &ArrayD<f64>| {
            dynamic(
                g.view()
                    .into_dimensionality::<Ix2>()
                    .expect("a matrix")
                    .t()
                    .to_owned(),
            )
        };
        let (dwx, dwh) = (
            inner[3].view().into_dimensionality::<Ix2>().expect("Wx"),
            inner[4].view().into_dimensionality::<Ix2>().expect("Wh"),
        );
        let mut out = vec![t(&inner[0]), t(&inner[1]), t(&inner[2])];
        // dl.ai's order: Wf, bf, Wi, bi, Wc, bc, Wo, bo; cs231n's gate of each.
        for gate in [1usize, 0, 3, 2] {
            let block = s![.., gate * n_a..(gate + 1) * n_a];
            let w = ndarray::concatenate(Axis(1), &[dwh.slice(block).t(), dwx.slice(block).t()])
                .expect("n_a rows");
            out.push(dynamic(w));
            let b = inner[5].slice(s![gate * n_a..(gate + 1) * n_a]).to_owned();
            out.push(b.into_shape_with_order(IxDyn(&[n_a, 1])).expect("n_a"));
        }
        out
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        super::richardson_probes(self, arrays, dout, input, h)
    }
}
