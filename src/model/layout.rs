//! The flat parameter vector: which tensor and which entry each index is, and how the
//! user names it.

use super::spec::DataLayout;

/// What a tensor is in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// How the user's arrays are laid out: with examples in rows a weight is stored
    /// transposed (`n_in × n_out`) and named by the user's indices.
    pub data_layout: DataLayout,
    /// The user's N-d shape, for a tensor that is no network's weight or bias (a layer's
    /// input): stored row-major as is, `shape` its first axis by the rest.
    pub dims: Option<Vec<usize>>,
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

    /// `W2[1,3]` or `b1[4]` for the entry at `local` (0-based within the tensor, in the
    /// internal `n_out × n_in` order), in the user's own indices.
    pub fn coordinate_name(&self, local: usize) -> String {
        if let Some(dims) = &self.dims {
            let mut rest = local;
            let mut at = vec![0; dims.len()];
            for (k, &n) in dims.iter().enumerate().rev() {
                at[k] = rest % n.max(1);
                rest /= n.max(1);
            }
            let at: Vec<String> = at.iter().map(usize::to_string).collect();
            return format!("{}[{}]", self.name, at.join(","));
        }
        match self.kind {
            TensorKind::Weight => {
                let (row, col) = (local / self.shape[1], local % self.shape[1]);
                let (a, b) = match self.data_layout {
                    DataLayout::Columns => (row, col),
                    DataLayout::Rows => (col, row),
                };
                format!("{}[{a},{b}]", self.name)
            }
            TensorKind::Bias => format!("{}[{}]", self.name, local),
        }
    }

    /// The shape as the user's arrays have it (a rows-layout weight is `n_in × n_out`).
    pub fn user_shape(&self) -> Vec<usize> {
        if let Some(dims) = &self.dims {
            return dims.clone();
        }
        match (self.kind, self.data_layout) {
            (TensorKind::Weight, DataLayout::Rows) => vec![self.shape[1], self.shape[0]],
            (TensorKind::Bias, DataLayout::Rows) => vec![1, self.shape[0]],
            _ => self.shape.to_vec(),
        }
    }

    /// A tensor of N-d shape `dims` called `name` at `offset` (a layer's input).
    pub fn with_dims(name: &str, dims: &[usize], offset: usize) -> Self {
        let len: usize = dims.iter().product();
        let rows = dims.first().copied().unwrap_or(1);
        TensorSpec {
            name: name.to_string(),
            layer: 1,
            kind: TensorKind::Weight,
            shape: [rows, len.checked_div(rows).unwrap_or(0)],
            offset,
            data_layout: DataLayout::Columns,
            dims: Some(dims.to_vec()),
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
    /// Layout of a network with widths `[n0, …, nL]`, named as the course does.
    pub fn for_widths(widths: &[usize]) -> Self {
        Self::for_widths_in(widths, DataLayout::Columns)
    }

    /// Layout of a network with widths `[n0, …, nL]` whose arrays the user lays out as
    /// `data_layout` says.
    pub fn for_widths_in(widths: &[usize], data_layout: DataLayout) -> Self {
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
                    data_layout,
                    dims: None,
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

    /// The layout of `tensors`, placed one after another from offset 0 (a layer's inputs).
    pub fn of_tensors(tensors: Vec<TensorSpec>) -> Self {
        let total = tensors.iter().map(TensorSpec::len).sum();
        Self { tensors, total }
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
        &self.tensors[self.tensor_number(index)]
    }

    /// The position in [`Self::tensors`] of the tensor holding flat index `index`.
    pub fn tensor_number(&self, index: usize) -> usize {
        self.tensors
            .partition_point(|t| t.offset + t.len() <= index)
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

    #[test]
    fn rows_layout_names_weights_by_the_users_indices() {
        let layout = ParamLayout::for_widths_in(&[4, 5, 1], DataLayout::Rows);
        // Internal W1 is 5×4; flat 5 is internal [1,1], 6 is [1,2] = the user's W1[2,1].
        assert_eq!(layout.coordinate_name(6), "W1[2,1]");
        assert_eq!(layout.tensors()[0].user_shape(), [4, 5]);
        assert_eq!(layout.tensors()[1].user_shape(), [1, 5]);
    }

    #[test]
    fn n_dimensional_tensors_are_named_by_every_index() {
        let spec = TensorSpec::with_dims("dx", &[2, 3, 4], 0);
        assert_eq!(spec.shape, [2, 12]);
        assert_eq!(spec.coordinate_name(0), "dx[0,0,0]");
        assert_eq!(spec.coordinate_name(23), "dx[1,2,3]");
        assert_eq!(spec.coordinate_name(13), "dx[1,0,1]");
        assert_eq!(
            TensorSpec::with_dims("db", &[5], 0).coordinate_name(4),
            "db[4]"
        );
    }
}
