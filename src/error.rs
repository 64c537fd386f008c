//! The library's typed errors: each one names the problem in one line.

/// Everything that can go wrong in a check, from bad input to a GPU fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An array the network or data needs is absent from the input.
    #[error("missing array '{0}' in the input")]
    MissingArray(String),
    /// A network's or data's array absent, with what the input holds instead.
    #[error("missing array '{name}': the input holds {present}{hint}")]
    MissingNamed {
        name: String,
        present: String,
        hint: String,
    },
    /// A layer's input, upstream gradient or gradient absent: what, and what to give.
    #[error("missing {0}")]
    Missing(String),
    /// A saved dropout mask whose values are no mask's.
    #[error("the dropout mask: {0}")]
    Mask(String),
    /// Dropout asked for without every hidden layer's mask.
    #[error("missing dropout masks: {0}")]
    MissingMasks(String),
    /// Layer arrays are numbered 1..=L without gaps.
    #[error("layer numbering has a gap: {present} is present but {missing} are missing")]
    LayerGap { present: String, missing: String },
    /// Shapes that do not chain through the network, or gradients shaped unlike their parameters.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A NaN or infinity anywhere in the input; `at` names the entry (`W1[1,1]`).
    #[error("{array} holds a non-finite value ({value}) at {at}")]
    NonFinite {
        array: String,
        at: String,
        value: f64,
    },
    /// Binary cross-entropy needs labels in [0, 1].
    #[error("labels must lie in [0, 1]: Y has {value} at {at}")]
    LabelOutOfRange { at: String, value: f64 },
    /// Labels that the loss cannot take (softmax rows that are not one-hot, classes out
    /// of range).
    #[error("labels: {0}")]
    Labels(String),
    /// A check over zero examples has no cost to differentiate.
    #[error("no examples: X and Y have zero columns")]
    NoExamples,
    /// A layer with no units (or a network with no layers).
    #[error("invalid network: {0}")]
    Network(String),
    /// An option outside its domain (step, threshold, layer list, bug spec…).
    #[error("invalid option: {0}")]
    Option(String),
    /// The input file is not a readable npz archive of npy arrays.
    #[error("cannot read '{path}': {reason}")]
    Npz { path: String, reason: String },
    /// An array whose element type is neither float nor integer.
    #[error("array '{array}' has unsupported dtype {dtype}; use float64, float32, integer or bool arrays")]
    Dtype { array: String, dtype: String },
    /// File system errors, with the path (the cause is part of the message, not a source,
    /// so that a chain printer does not say it twice).
    #[error("{path}: {cause}")]
    Io { path: String, cause: std::io::Error },
    /// No GPU adapter matched (or none exists).
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    /// The adapter lacks something the check needs (f64, timestamp…).
    #[error("the GPU adapter '{adapter}' does not support {what}")]
    Unsupported { adapter: String, what: String },
    /// The problem does not fit in the device's limits.
    #[error("too large for the GPU: {0}")]
    TooLarge(String),
    /// The check needs more memory than its budget allows.
    #[error("too large for the memory budget: {0}")]
    Memory(String),
    /// Validation, out-of-memory or device-lost errors reported by wgpu.
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The user stopped the check (Ctrl-C); nothing was reported.
    #[error("interrupted before the check finished")]
    Cancelled,
    /// Arrays of a layer the model does not have (a normalisation layer's parameters).
    #[error("the input holds {0}")]
    ForeignLayer(String),
    /// A requested feature that this build does not provide.
    #[error("{0}")]
    NotAvailable(String),
}

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
