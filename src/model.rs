//! The network (an MLP of any depth) and the flat parameter layout shared by every method.

use ndarray::{Array1, Array2};

use crate::error::{Error, Result};

/// One affine layer: `Z = W A + b`. `w` is `n_out × n_in`, `b` has `n_out` entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
}

/// A multilayer perceptron: ReLU after every layer but the last, sigmoid on the last.
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
            if layer.b.len() != rows {
                return Err(Error::Shape(format!(
                    "b{n} has {} entries but W{n} has {rows} rows",
                    layer.b.len()
                )));
            }
            if l > 0 {
                let prev = layers[l - 1].w.nrows();
                if cols != prev {
                    return Err(Error::Shape(format!(
                        "W{n} has {cols} columns but layer {} has {prev} units",
                        n - 1
                    )));
                }
            }
        }
        let layout = ParamLayout::for_widths(&widths_of(&layers));
        Ok(Self { layers, layout })
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

/// What a tensor is in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    Weight,
    Bias,
}

/// One parameter tensor's place in the flat vector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// `W1`, `b1`, `W2`, …
    pub name: String,
    /// 1-based layer number.
    pub layer: usize,
    pub kind: TensorKind,
    /// `[rows, cols]`; biases are `[n, 1]` as in the exercise.
    pub shape: [usize; 2],
    /// First flat index.
    pub offset: usize,
}

impl TensorSpec {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.shape[0] * self.shape[1]
    }

    /// Always false: layers have no zero widths.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Flat index range.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }

    /// `W2[1,3]` or `b1[4]` for the entry at `local` (0-based within the tensor).
    pub fn coordinate_name(&self, local: usize) -> String {
        match self.kind {
            TensorKind::Weight => {
                format!(
                    "{}[{},{}]",
                    self.name,
                    local / self.shape[1],
                    local % self.shape[1]
                )
            }
            TensorKind::Bias => format!("{}[{}]", self.name, local),
        }
    }
}

/// The flat parameter order and a name for every flat index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    tensors: Vec<TensorSpec>,
    total: usize,
}

impl ParamLayout {
    /// Layout of a network with widths `[n0, …, nL]`.
    pub fn for_widths(widths: &[usize]) -> Self {
        let mut tensors = Vec::with_capacity(2 * widths.len().saturating_sub(1));
        let mut offset = 0;
        for (l, pair) in widths.windows(2).enumerate() {
            let (n_in, n_out) = (pair[0], pair[1]);
            for (kind, prefix, shape) in [
                (TensorKind::Weight, "W", [n_out, n_in]),
                (TensorKind::Bias, "b", [n_out, 1]),
            ] {
                let spec = TensorSpec {
                    name: format!("{prefix}{}", l + 1),
                    layer: l + 1,
                    kind,
                    shape,
                    offset,
                };
                offset += spec.len();
                tensors.push(spec);
            }
        }
        Self {
            tensors,
            total: offset,
        }
    }

    /// The tensors in flat order.
    pub fn tensors(&self) -> &[TensorSpec] {
        &self.tensors
    }

    /// Total parameter count.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True for a layout without parameters (never for a valid network).
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The tensor holding flat index `index`.
    pub fn tensor_of(&self, index: usize) -> &TensorSpec {
        let pos = self
            .tensors
            .partition_point(|t| t.offset + t.len() <= index);
        &self.tensors[pos]
    }

    /// Where flat index `index` sits: layer (0-based), row, and column (`None` for a
    /// bias); `None` past the last parameter. The one map from flat indices to tensors
    /// (the kernels' copy walks the same layer table, `gpu::dispatch::layer_table`).
    pub fn locate(&self, index: usize) -> Option<(usize, usize, Option<usize>)> {
        if index >= self.total {
            return None;
        }
        let t = self.tensor_of(index);
        let local = index - t.offset;
        Some(match t.kind {
            TensorKind::Weight => (t.layer - 1, local / t.shape[1], Some(local % t.shape[1])),
            TensorKind::Bias => (t.layer - 1, local, None),
        })
    }

    /// The name of flat index `index`, e.g. `W2[1,3]`.
    pub fn coordinate_name(&self, index: usize) -> String {
        let t = self.tensor_of(index);
        t.coordinate_name(index - t.offset)
    }

    /// The tensor called `name` (`W2`, `b1`; a leading `d` as in `dW2` is accepted).
    pub fn tensor_named(&self, name: &str) -> Option<&TensorSpec> {
        let bare = name.strip_prefix('d').unwrap_or(name);
        self.tensors.iter().find(|t| t.name == bare)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_exercise_order_and_names() {
        let layout = ParamLayout::for_widths(&[4, 5, 3, 1]);
        let names: Vec<_> = layout.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["W1", "b1", "W2", "b2", "W3", "b3"]);
        assert_eq!(layout.len(), 47);
        assert_eq!(layout.coordinate_name(0), "W1[0,0]");
        assert_eq!(layout.coordinate_name(5), "W1[1,1]");
        assert_eq!(layout.coordinate_name(24), "b1[4]");
        assert_eq!(layout.coordinate_name(25 + 8), "W2[1,3]");
        assert_eq!(layout.coordinate_name(46), "b3[0]");
        assert_eq!(layout.tensor_named("dW2").unwrap().offset, 25);
    }
}
