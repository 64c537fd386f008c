//! A network together with its data: everything a cost evaluation needs, validated once.

use ndarray::{Array2, Dimension};

use crate::error::{Error, Result};
use crate::model::{Activation, Loss, Mlp, Model};

/// A network, what it computes ([`Model`]), its inputs `X` (`n0 × m`, examples are
/// columns) and labels `Y` (`nL × m`), whatever layout the user's arrays had.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    net: Mlp,
    model: Model,
    x: Array2<f64>,
    y: Array2<f64>,
}

impl Problem {
    /// The exercise's model (ReLU, sigmoid, cross-entropy) on `net`, `x`, `y`.
    pub fn new(net: Mlp, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
        let model = Model::classic(net.layers().len());
        Self::with_model(net, model, x, y)
    }

    /// Checks shapes, finiteness, labels (per loss) and dropout masks before anything is
    /// computed.
    pub fn with_model(net: Mlp, model: Model, x: Array2<f64>, y: Array2<f64>) -> Result<Self> {
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
        model.loss.check_outputs(net.output_width())?;
        check_labels(model.loss, &y, net.data_layout())?;
        if model.hidden.len() + 1 != net.layers().len() {
            return Err(Error::Option(format!(
                "{} hidden activations for {} hidden layers",
                model.hidden.len(),
                net.layers().len() - 1
            )));
        }
        if let Some(d) = &model.dropout {
            for (l, mask) in d.masks.iter().enumerate() {
                let want = (net.layers()[l].w.nrows(), x.ncols());
                if mask.dim() != want {
                    return Err(Error::Shape(format!(
                        "the dropout mask D{} has shape {:?} but layer {}'s activations are {:?}",
                        l + 1,
                        user_dims(mask.dim(), net.data_layout()),
                        l + 1,
                        user_dims(want, net.data_layout())
                    )));
                }
                if let Some((at, v)) = mask.indexed_iter().find(|(_, v)| **v != 0.0 && **v != 1.0) {
                    let (a, b) = user_dims(at, net.data_layout());
                    return Err(Error::Option(format!(
                        "dropout masks hold 0 or 1, but D{}[{a},{b}] is {v}",
                        l + 1
                    )));
                }
            }
        }
        Ok(Self { net, model, x, y })
    }

    /// What the network computes besides its affine layers.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The cost `J` of `net` (this problem's, or a perturbed copy) on this problem's data.
    pub fn cost_of(&self, net: &Mlp) -> f64 {
        crate::cpu::forward::cost(net, &self.model, self.x.view(), self.y.view())
    }

    /// The data term of `J` at the problem's own parameters (L2 left out, as the
    /// backends evaluate it).
    pub fn data_cost(&self) -> f64 {
        crate::cpu::forward::data_cost_of(&self.net, &self.model, self.x.view(), self.y.view())
    }

    /// The cost `J` at the problem's own parameters.
    pub fn cost(&self) -> f64 {
        self.cost_of(&self.net)
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
        let mut model = self.model.clone();
        for a in &mut model.hidden {
            if let Activation::LeakyRelu(slope) = a {
                *slope = round(slope);
            }
        }
        if let Some(d) = &mut model.dropout {
            d.keep_prob = round(&d.keep_prob);
        }
        Self {
            net: self.net.rounded_to_f32(),
            model,
            x: self.x.map(round),
            y: self.y.map(round),
        }
    }
}

/// `(rows, cols)` of an `n × m` array as the user's layout has it.
fn user_dims((a, b): (usize, usize), layout: crate::model::DataLayout) -> (usize, usize) {
    match layout {
        crate::model::DataLayout::Columns => (a, b),
        crate::model::DataLayout::Rows => (b, a),
    }
}

/// Labels each loss can take: bce in [0, 1]; softmax one-hot (or probabilities summing
/// to 1) per example; mse anything finite.
fn check_labels(loss: Loss, y: &Array2<f64>, layout: crate::model::DataLayout) -> Result<()> {
    let name = |(r, c): (usize, usize)| {
        let (a, b) = user_dims((r, c), layout);
        format!("Y[{a},{b}]")
    };
    match loss {
        Loss::Bce => {
            if let Some((at, &value)) = y.indexed_iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                return Err(Error::LabelOutOfRange {
                    at: name(at),
                    value,
                });
            }
        }
        Loss::Softmax => {
            if let Some((at, &value)) = y.indexed_iter().find(|(_, v)| !(0.0..=1.0).contains(*v)) {
                return Err(Error::LabelOutOfRange {
                    at: name(at),
                    value,
                });
            }
            for (e, column) in y.columns().into_iter().enumerate() {
                let sum: f64 = column.sum();
                if (sum - 1.0).abs() > 1e-6 {
                    let which = match layout {
                        crate::model::DataLayout::Columns => format!("column {e}"),
                        crate::model::DataLayout::Rows => format!("row {e}"),
                    };
                    return Err(Error::Labels(format!(
                        "softmax labels are one-hot (or class indices): {which} of Y sums to {sum}, not 1"
                    )));
                }
            }
        }
        Loss::Mse | Loss::MseMean | Loss::Sse => {}
    }
    Ok(())
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
