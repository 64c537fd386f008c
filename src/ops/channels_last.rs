//! deeplearning.ai's Course 4 convention for convolution and pooling: channels last —
//! `A_prev` (m, n_H_prev, n_W_prev, n_C_prev), `W` (f, f, n_C_prev, n_C), `b` (1, 1, 1,
//! n_C), hyperparameters `stride`, `pad` (conv) or `f`, `stride` (pools); the upstream
//! gradient `dZ` (conv) or `dA` (pools). The op is cs231n's (channels first) seen through
//! the transposes: its forward, backward and probes, their coordinates mapped back.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};

use super::{array, mismatch, shape_of, Arrays, Input, LayerOp, Probe, Role};
use crate::error::{Error, Result};

pub struct ChannelsLast {
    inner: Box<dyn LayerOp>,
    conv: bool,
    /// The name the report gives it (`max_pool f=2 stride=2`).
    name: String,
}

const CONV_INPUTS: [Input; 3] = [
    super::input("A_prev", Role::Differentiable),
    super::input("W", Role::Differentiable),
    super::input("b", Role::Differentiable),
];

const POOL_INPUTS: [Input; 1] = [super::input("A_prev", Role::Differentiable)];

/// Channels last → first: (m, H, W, C) → (m, C, H, W); a filter (f, f, C_prev, C) →
/// (C, C_prev, f, f).
const TO_FIRST: [usize; 4] = [0, 3, 1, 2];
const FILTER_TO_FIRST: [usize; 4] = [3, 2, 0, 1];
/// And back.
const TO_LAST: [usize; 4] = [0, 2, 3, 1];
const FILTER_TO_LAST: [usize; 4] = [2, 3, 1, 0];

fn permuted(a: &ArrayD<f64>, axes: [usize; 4]) -> ArrayD<f64> {
    a.clone()
        .permuted_axes(IxDyn(&axes))
        .as_standard_layout()
        .into_owned()
}

impl ChannelsLast {
    /// Op `name` (`conv`, `max_pool`, `avg_pool`) in deeplearning.ai's convention, with its
    /// hyperparameters as the course names them.
    pub fn new(name: &str, hparams: &BTreeMap<String, f64>) -> Result<Self> {
        let conv = name == "conv";
        let known: &[&str] = if conv {
            &["stride", "pad"]
        } else {
            &["f", "stride"]
        };
        if let Some(key) = hparams.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(Error::Option(format!(
                "{name} with A_prev (deeplearning.ai's convention) has no hyperparameter '{key}' (it takes {})",
                known.join(", ")
            )));
        }
        let inner = if conv {
            super::op("conv", hparams)?
        } else {
            let f = hparams.get("f").copied().ok_or_else(|| {
                Error::Option(format!(
                    "{name} with A_prev needs f, the window's side (hparameters['f'])"
                ))
            })?;
            let stride = hparams.get("stride").copied().unwrap_or(f);
            let inner: BTreeMap<String, f64> = [
                ("pool_height".to_string(), f),
                ("pool_width".to_string(), f),
                ("stride".to_string(), stride),
            ]
            .into();
            super::op(name, &inner)?
        };
        let mut words: Vec<String> = hparams
            .iter()
            .map(|(k, v)| format!("{k}={}", super::number(*v)))
            .collect();
        words.insert(0, name.to_string());
        words.push("(channels last)".into());
        Ok(Self {
            inner,
            conv,
            name: words.join(" "),
        })
    }

    /// The inner op's arrays: x, w, b channels first.
    fn inner(&self, arrays: &Arrays) -> Arrays {
        let mut inner = Arrays::new();
        inner.insert("x".into(), permuted(array(arrays, "A_prev"), TO_FIRST));
        if self.conv {
            inner.insert("w".into(), permuted(array(arrays, "W"), FILTER_TO_FIRST));
            let b = array(arrays, "b");
            inner.insert(
                "b".into(),
                b.clone()
                    .into_shape_with_order(IxDyn(&[b.len()]))
                    .expect("size"),
            );
        }
        inner
    }

    /// For each element of input `input` in its own (channels-last) order, its flat index
    /// in the inner op's array.
    fn inner_index(&self, arrays: &Arrays, input: usize) -> Vec<usize> {
        let outer = array(arrays, self.inputs()[input].name);
        let (to_first, to_last) = match input {
            0 => (TO_FIRST, TO_LAST),
            1 => (FILTER_TO_FIRST, FILTER_TO_LAST),
            _ => return (0..outer.len()).collect(),
        };
        let inner_shape: Vec<usize> = to_first.iter().map(|&a| outer.shape()[a]).collect();
        let index = ArrayD::from_shape_vec(
            IxDyn(&inner_shape),
            (0..outer.len()).map(|i| i as f64).collect(),
        )
        .expect("size");
        permuted(&index, to_last)
            .iter()
            .map(|&i| i as usize)
            .collect()
    }
}

impl LayerOp for ChannelsLast {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn inputs(&self) -> &'static [Input] {
        if self.conv {
            &CONV_INPUTS
        } else {
            &POOL_INPUTS
        }
    }

    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>> {
        let a = shape_of(arrays, &self.name, "A_prev")?;
        if a.len() != 4 {
            return Err(mismatch(format!(
                "A_prev has shape {a:?}: it is (m, n_H_prev, n_W_prev, n_C_prev)"
            )));
        }
        if self.conv {
            let (w, b) = (
                shape_of(arrays, &self.name, "W")?,
                shape_of(arrays, &self.name, "b")?,
            );
            if w.len() != 4 || b.len() != 4 || b[..3] != [1, 1, 1] || b[3] != w[3] {
                return Err(mismatch(format!(
                    "W has shape {w:?} and b {b:?}: W is (f, f, n_C_prev, n_C) and b (1, 1, 1, n_C)"
                )));
            }
        }
        let out = self.inner.output_shape(&self.inner(arrays))?;
        Ok(TO_LAST.iter().map(|&a| out[a]).collect())
    }

    fn forward(&self, arrays: &Arrays) -> ArrayD<f64> {
        permuted(&self.inner.forward(&self.inner(arrays)), TO_LAST)
    }

    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let g = self
            .inner
            .backward(&self.inner(arrays), &permuted(dout, TO_FIRST));
        let mut out = vec![permuted(&g[0], TO_LAST)];
        if self.conv {
            out.push(permuted(&g[1], FILTER_TO_LAST));
            out.push(
                g[2].clone()
                    .into_shape_with_order(IxDyn(&[1, 1, 1, g[2].len()]))
                    .expect("size"),
            );
        }
        out
    }

    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe> {
        let inner = self
            .inner
            .probes(&self.inner(arrays), &permuted(dout, TO_FIRST), input, h);
        self.inner_index(arrays, input)
            .into_iter()
            .map(|i| inner[i])
            .collect()
    }

    fn kink_site(&self) -> Option<[&'static str; 3]> {
        self.inner.kink_site()
    }

    fn upstream_aliases(&self) -> &'static [&'static str] {
        if self.conv {
            &["dZ"]
        } else {
            &["dA"]
        }
    }
}
