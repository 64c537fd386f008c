//! The network: its affine layers ([`Mlp`]), what runs between and after them
//! ([`spec`]: activations, loss, L2, dropout), and the flat parameter layout every method
//! shares ([`layout`]).

pub mod layout;
pub mod spec;

pub use layout::{ParamLayout, TensorKind, TensorSpec};
pub use spec::{
    sigmoid_derivative_sups, Activation, DataLayout, Dropout, Loss, Model, ModelOptions,
    Normalization, Penalty, Rates, Reduction,
};

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};

/// One affine layer: `Z = W A + b`. `w` is `n_out × n_in`, `b` has `n_out` entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
}

/// A multilayer perceptron's affine layers (what runs between them is a [`Model`]).
///
/// Construction checks that the layers chain, so every method can trust the shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    layers: Vec<Layer>,
    /// Built once: every flat-index lookup goes through it.
    layout: ParamLayout,
}

impl Mlp {
    /// Builds a network from its layers, refusing empty networks, zero widths and broken chains.
    pub fn new(layers: Vec<Layer>) -> Result<Self> {
        if layers.is_empty() {
            return Err(Error::Network("the network has no layers".into()));
        }
        for (l, layer) in layers.iter().enumerate() {
            let n = l + 1;
            let (rows, cols) = layer.w.dim();
            if rows == 0 || cols == 0 {
                return Err(Error::Network(format!(
                    "W{n} has a zero dimension ({rows}×{cols})"
                )));
            }
            let transposed = |fits: bool| {
                if fits {
                    format!(": W{n} transposed?")
                } else {
                    String::new()
                }
            };
            if layer.b.len() != rows {
                return Err(Error::Shape(format!(
                    "b{n} has {} entries but W{n} has {rows} rows{}",
                    layer.b.len(),
                    transposed(layer.b.len() == cols)
                )));
            }
            if l > 0 {
                let prev = layers[l - 1].w.nrows();
                if cols != prev {
                    return Err(Error::Shape(format!(
                        "W{n} has {cols} columns but layer {} has {prev} units{}",
                        n - 1,
                        transposed(rows == prev)
                    )));
                }
            }
        }
        let layout = ParamLayout::for_widths(&widths_of(&layers));
        Ok(Self { layers, layout })
    }

    /// The same network, its coordinates named as `data_layout` lays out the user's arrays.
    pub fn in_layout(mut self, data_layout: DataLayout) -> Self {
        self.layout = ParamLayout::for_widths_in(&self.widths(), data_layout);
        self
    }

    /// How the user lays out this network's arrays.
    pub fn data_layout(&self) -> DataLayout {
        self.layout.tensors()[0].data_layout
    }

    /// The layers, input side first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// Layer widths `[n0, n1, …, nL]`, input first.
    pub fn widths(&self) -> Vec<usize> {
        widths_of(&self.layers)
    }

    /// Number of input features `n0`.
    pub fn input_width(&self) -> usize {
        self.layers[0].w.ncols()
    }

    /// Number of output units `nL`.
    pub fn output_width(&self) -> usize {
        self.layers[self.layers.len() - 1].w.nrows()
    }

    /// The flat parameter layout (W1, b1, W2, …).
    pub fn layout(&self) -> &ParamLayout {
        &self.layout
    }

    /// Total number of parameters.
    pub fn num_params(&self) -> usize {
        self.layers.iter().map(|l| l.w.len() + l.b.len()).sum()
    }

    /// Parameters flattened in the exercise's order: W1 row-major, b1, W2, b2, …
    pub fn flatten(&self) -> Vec<f64> {
        let mut theta = Vec::with_capacity(self.num_params());
        for layer in &self.layers {
            theta.extend(layer.w.iter());
            theta.extend(layer.b.iter());
        }
        theta
    }

    /// The same network with every parameter rounded to f32, so the CPU reference sees
    /// exactly the numbers an f32 GPU run sees.
    pub fn rounded_to_f32(&self) -> Self {
        let round = |v: &f64| *v as f32 as f64;
        Self {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    w: l.w.map(round),
                    b: l.b.map(round),
                })
                .collect(),
            layout: self.layout.clone(),
        }
    }

    /// Mutable access to flat parameter `index`, for perturbing one coordinate in place.
    pub fn param_mut(&mut self, index: usize) -> &mut f64 {
        let (l, row, col) = self
            .layout
            .locate(index)
            .unwrap_or_else(|| panic!("parameter index {index} out of range"));
        let layer = &mut self.layers[l];
        match col {
            Some(col) => &mut layer.w[[row, col]],
            None => &mut layer.b[row],
        }
    }
}

/// `[n0, n1, …, nL]` of chained layers.
fn widths_of(layers: &[Layer]) -> Vec<usize> {
    std::iter::once(layers[0].w.ncols())
        .chain(layers.iter().map(|l| l.w.nrows()))
        .collect()
}
