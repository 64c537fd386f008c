//! A network together with its data: everything a cost evaluation needs, validated once.

use ndarray::{Array2, Dimension};

use crate::error::{Error, Result};
use crate::model::Mlp;

/// A network, its inputs `X` (`n0 × m`, examples are columns) and labels `Y` (`nL × m`).
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    net: Mlp,
    x: Array2<f64>,
    y: Array2<f64>,
}

impl Problem {
    /// Checks shapes, finiteness and label range before anything is computed.
    pub fn new(net: Mlp, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        if x.ncols() == 0 || y.ncols() == 0 {
            return Err(Error::NoExamples);
        }
        if x.nrows() != net.input_width() {
            return Err(Error::Shape(format!(
                "X has {} rows but W1 has {} columns",
                x.nrows(),
                net.input_width()
            )));
        }
        if y.dim() != (net.output_width(), x.ncols()) {
            return Err(Error::Shape(format!(
                "Y has shape ({}, {}) but the network expects ({}, {}): one row per output unit ({}), one column per example of X ({})",
                y.nrows(),
                y.ncols(),
                net.output_width(),
                x.ncols(),
                net.output_width(),
                x.ncols()
            )));
        }
        for (l, layer) in net.layers().iter().enumerate() {
            ensure_finite(&format!("W{}", l + 1), layer.w.view())?;
            ensure_finite(&format!("b{}", l + 1), layer.b.view())?;
        }
        ensure_finite("X", x.view())?;
        ensure_finite("Y", y.view())?;
        if let Some((at, &value)) = y.indexed_iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
            return Err(Error::LabelOutOfRange {
                at: format!("Y[{},{}]", at.0, at.1),
                value,
            });
        }
        Ok(Self { net, x, y })
    }

    pub fn net(&self) -> &Mlp {
        &self.net
    }

    pub fn x(&self) -> &Array2<f64> {
        &self.x
    }

    pub fn y(&self) -> &Array2<f64> {
        &self.y
    }

    /// Number of examples `m`.
    pub fn examples(&self) -> usize {
        self.x.ncols()
    }

    /// Where flat parameter `index` sits: layer (0-based), row, and column (`None` for a
    /// bias); an error past the last parameter.
    pub fn locate(&self, index: usize) -> Result<(usize, usize, Option<usize>)> {
        self.net.layout().locate(index).ok_or_else(|| {
            Error::Option(format!(
                "coordinate {index} out of range: the network has {} parameters",
                self.net.num_params()
            ))
        })
    }

    /// The same problem with every number rounded to f32: what an f32 device computes on.
    pub fn rounded_to_f32(&self) -> Self {
        let round = |v: &f64| *v as f32 as f64;
        Self {
            net: self.net.rounded_to_f32(),
            x: self.x.map(round),
            y: self.y.map(round),
        }
    }
}

/// Fails with the first non-finite entry of `array`, named by its indices (`W1[1,1]`).
pub fn ensure_finite<D: ndarray::Dimension>(
    name: &str,
    array: ndarray::ArrayView<f64, D>,
) -> Result<()> {
    match array
        .into_dyn()
        .indexed_iter()
        .find(|(_, v)| !v.is_finite())
    {
        Some((at, &value)) => {
            let at: Vec<String> = at.as_array_view().iter().map(usize::to_string).collect();
            Err(Error::NonFinite {
                array: format!("array '{name}'"),
                at: format!("{name}[{}]", at.join(",")),
                value,
            })
        }
        None => Ok(()),
    }
}
