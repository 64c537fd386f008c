//! What a network computes besides its affine layers: the activation after each hidden
//! layer, the output and its loss, the reduction over examples, L2 on the weights and
//! dropout with saved masks. [`ModelOptions`] is the unchecked form (flags, a file's own
//! settings); [`Model`] the checked one every method evaluates.

use std::fmt;
use std::str::FromStr;

use ndarray::Array2;
use serde::Serialize;

use super::{Mlp, TensorKind};
use crate::error::{Error, Result};

/// A hidden layer's activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    Relu,
    /// `max(z, 0) + slope·min(z, 0)`.
    LeakyRelu(f64),
    Tanh,
    Sigmoid,
    Identity,
}

impl Activation {
    /// The leaky ReLU's slope below 0 unless another is named (NNFS's and PyTorch's).
    pub const DEFAULT_LEAK: f64 = 0.01;

    pub fn apply(self, z: f64) -> f64 {
        match self {
            Activation::Relu => z.max(0.0),
            Activation::LeakyRelu(a) => {
                if z > 0.0 {
                    z
                } else {
                    a * z
                }
            }
            Activation::Tanh => z.tanh(),
            Activation::Sigmoid => sigmoid(z),
            Activation::Identity => z,
        }
    }

    /// The derivative, with the slope below the kink at 0 (`relu_backward`'s `Z > 0`).
    pub fn derivative(self, z: f64) -> f64 {
        self.derivative_with_kink(z, self.kink().map_or(0.0, |(below, _)| below))
    }

    /// [`Activation::derivative`] with `at_kink` as the derivative at 0 of a kinked one.
    /// tanh' and σ' are formed without cancellation (`4/(eᶻ + e⁻ᶻ)²`, `σ(z)·σ(−z)`): from the
    /// rounded `t = tanh z`, `1 − t²` is off by `2u/(1 − t²)` relative, 6e-4 at |z| = 15.
    pub fn derivative_with_kink(self, z: f64, at_kink: f64) -> f64 {
        match self {
            Activation::Relu | Activation::LeakyRelu(_) => {
                let (below, above) = self.slopes();
                if z > 0.0 {
                    above
                } else if z == 0.0 && self.kink().is_some() {
                    at_kink
                } else {
                    below
                }
            }
            Activation::Tanh => tanh_prime(z),
            Activation::Sigmoid => sigmoid(z) * sigmoid(-z),
            Activation::Identity => 1.0,
        }
    }

    /// The slopes below and above 0 of a piecewise-linear activation.
    fn slopes(self) -> (f64, f64) {
        match self {
            Activation::Relu => (0.0, 1.0),
            Activation::LeakyRelu(a) => (a, 1.0),
            _ => (1.0, 1.0),
        }
    }

    /// The slopes below and above 0 of an activation with a kink there (a leaky ReLU of
    /// slope 1 has none).
    pub fn kink(self) -> Option<(f64, f64)> {
        match self {
            Activation::Relu | Activation::LeakyRelu(_) => {
                let (below, above) = self.slopes();
                (below != above).then_some((below, above))
            }
            _ => None,
        }
    }

    /// Whether the activation is linear between its kinks (its second derivative is 0).
    pub fn is_piecewise_linear(self) -> bool {
        matches!(
            self,
            Activation::Relu | Activation::LeakyRelu(_) | Activation::Identity
        )
    }

    /// The derivatives at the kink that a backprop may use, named: the slope below (the
    /// course's `Z > 0` mask, `np.where(Z > 0, 1, a)`), half-way (`np.heaviside(Z, 0.5)`) and
    /// above (`Z >= 0`).
    pub fn conventions(self) -> Option<[(&'static str, f64); 3]> {
        let (below, above) = self.kink()?;
        Some(match self {
            Activation::Relu => [
                ("ReLU'(0)=0", below),
                ("ReLU'(0)=½", 0.5 * (below + above)),
                ("ReLU'(0)=1", above),
            ],
            _ => [
                ("leaky'(0)=a", below),
                ("leaky'(0)=(1+a)/2", 0.5 * (below + above)),
                ("leaky'(0)=1", above),
            ],
        })
    }

    /// The largest |first|, |second| and |third| derivative over `[lo, hi]` (a
    /// piecewise-linear one is taken on the side of the interval's middle: for an interval
    /// that crosses no kink).
    pub fn derivative_sups(self, lo: f64, hi: f64) -> [f64; 3] {
        match self {
            Activation::Tanh => {
                // tanh(z) = 2σ(2z) − 1, so the k-th derivative is 2^(k+1) times σ's at 2z.
                let s = sigmoid_derivative_sups(2.0 * lo, 2.0 * hi);
                [4.0 * s[0], 8.0 * s[1], 16.0 * s[2]]
            }
            Activation::Sigmoid => sigmoid_derivative_sups(lo, hi),
            linear => [linear.derivative(0.5 * (lo + hi)).abs(), 0.0, 0.0],
        }
    }
}

/// `tanh'(z) = 1/cosh²(z)`, without the cancellation of `1 − tanh²(z)` (0 past overflow).
pub fn tanh_prime(z: f64) -> f64 {
    let a = z.abs();
    if a > 350.0 {
        return 0.0;
    }
    let e = (-2.0 * a).exp();
    // 4e^(−2a)/(1 + e^(−2a))²
    4.0 * e / ((1.0 + e) * (1.0 + e))
}

/// σ's first three derivatives at `z`, each a product with `σ(z)σ(−z)` (no cancellation).
pub fn sigmoid_derivatives(z: f64) -> [f64; 3] {
    let (s, t) = (sigmoid(z), sigmoid(-z));
    let first = s * t;
    // 1 − 2σ = σ(−z) − σ(z); the third is σ'·(1 − 6σ').
    [first, first * (t - s), first * (1.0 - 6.0 * first)]
}

/// Where each of σ's first three derivatives has its interior extrema in absolute value
/// (the zeros of the next derivative): the first at 0; the second at ±ln(2 + √3); the
/// third at 0 and ±ln((3 + √6)/(3 − √6)).
const SIGMOID_CRITICAL: [&[f64]; 3] = [
    &[0.0],
    &[-1.316_957_896_924_816_6, 1.316_957_896_924_816_6],
    &[-2.292_431_669_561_178, 0.0, 2.292_431_669_561_178],
];

/// The largest absolute first, second and third derivatives of σ over `[lo, hi]`: at an
/// end or at an interior extremum.
pub fn sigmoid_derivative_sups(lo: f64, hi: f64) -> [f64; 3] {
    let (lo, hi) = (lo.min(hi), lo.max(hi));
    let ends = [sigmoid_derivatives(lo), sigmoid_derivatives(hi)];
    std::array::from_fn(|k| {
        let inner = SIGMOID_CRITICAL[k]
            .iter()
            .filter(|&&c| lo < c && c < hi)
            .map(|&c| sigmoid_derivatives(c)[k].abs());
        ends.iter()
            .map(|d| d[k].abs())
            .chain(inner)
            .fold(0.0, f64::max)
    })
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Activation::Relu => f.write_str("relu"),
            Activation::LeakyRelu(a) if *a == Self::DEFAULT_LEAK => f.write_str("leaky_relu"),
            Activation::LeakyRelu(a) => write!(f, "leaky_relu:{a}"),
            Activation::Tanh => f.write_str("tanh"),
            Activation::Sigmoid => f.write_str("sigmoid"),
            Activation::Identity => f.write_str("identity"),
        }
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (name, slope) = match s.split_once(':') {
            Some((name, slope)) => (name, Some(slope)),
            None => (s.as_str(), None),
        };
        let activation = match name {
            "relu" => Activation::Relu,
            "leaky_relu" | "leakyrelu" | "leaky" => {
                let a = match slope {
                    None => Self::DEFAULT_LEAK,
                    Some(text) => text.parse::<f64>().ok().filter(|a| a.is_finite()).ok_or_else(
                        || Error::Option(format!("the leaky ReLU slope '{text}' is not a finite number")),
                    )?,
                };
                return Ok(Activation::LeakyRelu(a));
            }
            "tanh" => Activation::Tanh,
            "sigmoid" | "logistic" => Activation::Sigmoid,
            "identity" | "linear" | "none" => Activation::Identity,
            other => {
                return Err(Error::Option(format!(
                    "unknown activation '{other}': use relu, leaky_relu (leaky_relu:0.2 for another slope), tanh, sigmoid or identity"
                )))
            }
        };
        match slope {
            Some(_) => Err(Error::Option(format!(
                "only leaky_relu takes a slope, not '{s}'"
            ))),
            None => Ok(activation),
        }
    }
}

/// The output layer and the loss on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Loss {
    /// Sigmoid output, binary cross-entropy: `softplus(z) − y·z` per output unit.
    #[default]
    Bce,
    /// Softmax output, categorical cross-entropy: `logsumexp(z) − y·z` per example.
    Softmax,
    /// Identity output, squared error: `½‖z − y‖²` per example (the course's, d2l's).
    Mse,
    /// Identity output, the squared error's mean over the outputs, `mean((z − y)²)` per
    /// example: with the mean over examples, PyTorch's `MSELoss()` and NNFS's
    /// `Loss_MeanSquaredError`.
    #[value(name = "mse_mean", alias = "mse-mean")]
    #[serde(rename = "mse_mean")]
    MseMean,
    /// Identity output, the sum of squared errors `‖z − y‖²` per example: with the sum
    /// over examples, PyTorch's `MSELoss(reduction='sum')`.
    Sse,
}

impl Loss {
    /// Refuses an output layer of `outputs` units this loss cannot differentiate: a
    /// softmax over one unit is the constant 1.
    pub fn check_outputs(self, outputs: usize) -> Result<()> {
        if self == Loss::Softmax && outputs < 2 {
            return Err(Error::Network(
                "a softmax over one output unit is the constant 1 (its loss is 0 whatever the weights): give the output layer at least 2 units, or use bce".into(),
            ));
        }
        Ok(())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Loss::Bce => "bce",
            Loss::Softmax => "softmax",
            Loss::Mse => "mse",
            Loss::MseMean => "mse_mean",
            Loss::Sse => "sse",
        }
    }

    /// The loss per example as a formula, for the report.
    pub fn formula(self) -> &'static str {
        match self {
            Loss::Bce => "−y·log σ(z) − (1 − y)·log(1 − σ(z))",
            Loss::Softmax => "−Σ y·log softmax(z)",
            Loss::Mse => "½‖ŷ − y‖²",
            Loss::MseMean => "mean((ŷ − y)²)",
            Loss::Sse => "‖ŷ − y‖²",
        }
    }

    /// For a squared error over `outputs` output units, its factor `f` on `Σ_o (z − y)²`
    /// per example: ½, 1/outputs or 1.
    pub fn squared_factor(self, outputs: usize) -> Option<f64> {
        match self {
            Loss::Mse => Some(0.5),
            Loss::MseMean => Some(1.0 / outputs as f64),
            Loss::Sse => Some(1.0),
            Loss::Bce | Loss::Softmax => None,
        }
    }
}

/// How the per-example losses are combined.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Reduction {
    /// Averaged over the examples (the course, cs231n, NNFS, PyTorch's default).
    #[default]
    Mean,
    /// Summed over the examples.
    Sum,
}

impl Reduction {
    pub fn as_str(self) -> &'static str {
        match self {
            Reduction::Mean => "mean",
            Reduction::Sum => "sum",
        }
    }
}

/// The normalisation layer after each hidden affine layer (cs231n's `FullyConnectedNet(
/// normalization=…)`): affine → norm → activation [→ dropout] per hidden layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// Batch normalisation in train mode (the batch's statistics).
    Batchnorm,
    /// Layer normalisation (each example's statistics).
    Layernorm,
}

impl Normalization {
    pub fn as_str(self) -> &'static str {
        match self {
            Normalization::Batchnorm => "batchnorm",
            Normalization::Layernorm => "layernorm",
        }
    }
}

/// How arrays are laid out: the course's examples in columns, or examples in rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DataLayout {
    /// X `n0 × m`, W `n_out × n_in`, b `n × 1` (the course).
    #[default]
    Columns,
    /// X `m × n0`, W `n_in × n_out`, b `(n,)` or `1 × n` (cs231n, NNFS, d2l, PyTorch data).
    Rows,
}

impl DataLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            DataLayout::Columns => "columns",
            DataLayout::Rows => "rows",
        }
    }
}

/// Inverted dropout with saved masks: `A_l ← A_l·D_l / keep_prob` after each hidden
/// activation. Fixed masks make the cost deterministic, hence checkable.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout {
    pub keep_prob: f64,
    /// Per hidden layer, `n_l × m` (examples in columns), 0 or 1.
    pub masks: Vec<Array2<f64>>,
}

/// A penalty's coefficient: one for every layer, or one per layer (NNFS sets its
/// regularisers on each `Layer_Dense`: `weight_l2=5e-4,0` regularises layer 1 alone).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Rates(Vec<f64>);

impl Default for Rates {
    fn default() -> Self {
        Rates::all(0.0)
    }
}

impl Rates {
    /// One coefficient for every layer.
    pub fn all(value: f64) -> Self {
        Rates(vec![value])
    }

    /// One coefficient per layer, in order (a single one applies to every layer).
    pub fn per_layer(values: Vec<f64>) -> Self {
        Rates(values)
    }

    /// The coefficient of layer `layer` (0-based).
    pub fn at(&self, layer: usize) -> f64 {
        match self.0.as_slice() {
            [one] => *one,
            many => many.get(layer).copied().unwrap_or(0.0),
        }
    }

    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&v| v == 0.0)
    }

    /// `0.0005` or `0.0005,0` as the settings line and flags read it.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        text.split(',')
            .map(|v| parse_number(v).map_err(|_| format!("'{}' is not a number", v.trim())))
            .collect::<std::result::Result<Vec<f64>, String>>()
            .map(Rates)
    }

    /// Checked against a network of `layers` layers: finite, ≥ 0, one or one per layer.
    fn checked(self, name: &str, layers: usize) -> Result<Self> {
        if let Some(v) = self.0.iter().find(|v| !(v.is_finite() && **v >= 0.0)) {
            return Err(Error::Option(format!(
                "the penalty {name} must be a finite number ≥ 0, got {v}"
            )));
        }
        if self.0.len() != 1 && self.0.len() != layers {
            return Err(Error::Option(format!(
                "{name}={self} gives {} coefficients for a network of {layers} layers: give one for every layer or one per layer",
                self.0.len()
            )));
        }
        Ok(self)
    }
}

impl std::fmt::Display for Rates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let values: Vec<String> = self.0.iter().map(f64::to_string).collect();
        f.write_str(&values.join(","))
    }
}

/// Penalties on the parameters themselves, added to the cost: the course's L2,
/// `λ/(2m)·Σ‖W‖²` (`l2` = λ, with the reduction's 1/m), and plain coefficients on plain
/// sums, `weight_l2·Σw² + weight_l1·Σ|w| + bias_l2·Σb² + bias_l1·Σ|b|`, each for every
/// layer or per layer (NNFS's four regularisers; cs231n's `reg·ΣW²` is `weight_l2 = reg`,
/// its `0.5·reg·ΣW²` is `weight_l2 = reg/2`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Penalty {
    pub l2: f64,
    pub weight_l2: Rates,
    pub weight_l1: Rates,
    pub bias_l2: Rates,
    pub bias_l1: Rates,
}

impl Penalty {
    /// Whether it adds nothing.
    pub fn is_none(&self) -> bool {
        self.l2 == 0.0
            && [
                &self.weight_l2,
                &self.weight_l1,
                &self.bias_l2,
                &self.bias_l1,
            ]
            .iter()
            .all(|r| r.is_zero())
    }

    /// The factors on `Σθ²` and on `Σ|θ|` of layer `layer`'s (0-based) tensor of `kind`,
    /// in a cost whose reduction scales the summed losses by `scale`.
    pub fn factors(&self, layer: usize, kind: TensorKind, scale: f64) -> (f64, f64) {
        match kind {
            TensorKind::Weight => (
                0.5 * self.l2 * scale + self.weight_l2.at(layer),
                self.weight_l1.at(layer),
            ),
            TensorKind::Bias => (self.bias_l2.at(layer), self.bias_l1.at(layer)),
        }
    }

    /// Its derivative in one parameter `theta` of layer `layer`'s tensor of `kind` (with
    /// `np.sign`'s `sign(0) = 0`).
    pub fn slope(&self, layer: usize, kind: TensorKind, scale: f64, theta: f64) -> f64 {
        let (square, absolute) = self.factors(layer, kind, scale);
        let sign = if theta == 0.0 { 0.0 } else { theta.signum() };
        2.0 * square * theta + absolute * sign
    }

    /// Its value on `net`.
    pub fn cost(&self, net: &Mlp, scale: f64) -> f64 {
        if self.is_none() {
            return 0.0;
        }
        let term = |layer, kind, values: &mut dyn Iterator<Item = f64>| {
            let (square, absolute) = self.factors(layer, kind, scale);
            let (mut squares, mut absolutes) = (0.0, 0.0);
            for v in values {
                squares += v * v;
                absolutes += v.abs();
            }
            square * squares + absolute * absolutes
        };
        net.layers()
            .iter()
            .enumerate()
            .map(|(k, l)| {
                term(k, TensorKind::Weight, &mut l.w.iter().copied())
                    + term(k, TensorKind::Bias, &mut l.b.iter().copied())
            })
            .sum()
    }

    /// `, L2 λ=0.7, weight L1 0.001` for the report (empty without penalties).
    fn describe(&self) -> String {
        let l2 = (self.l2 != 0.0).then(|| format!(", L2 λ={}", self.l2));
        let rates = [
            ("weight L2 ", &self.weight_l2),
            ("weight L1 ", &self.weight_l1),
            ("bias L2 ", &self.bias_l2),
            ("bias L1 ", &self.bias_l1),
        ]
        .into_iter()
        .filter(|(_, r)| !r.is_zero())
        .map(|(name, r)| {
            if r.0.len() == 1 {
                format!(", {name}{r}")
            } else {
                format!(", {name}{r} (per layer)")
            }
        });
        l2.into_iter().chain(rates).collect()
    }
}

/// The checked model: everything the cost is made of besides the weights and the data.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// One per hidden layer.
    pub hidden: Vec<Activation>,
    pub loss: Loss,
    pub reduction: Reduction,
    pub penalty: Penalty,
    pub dropout: Option<Dropout>,
}

impl Model {
    /// The exercise's model: ReLU hidden layers, sigmoid output, mean cross-entropy.
    pub fn classic(layers: usize) -> Self {
        Self {
            hidden: vec![Activation::Relu; layers.saturating_sub(1)],
            loss: Loss::Bce,
            reduction: Reduction::Mean,
            penalty: Penalty::default(),
            dropout: None,
        }
    }

    /// ReLU hidden layers, sigmoid cross-entropy averaged, no dropout: the model the delta
    /// method, the exact truncation bounds and the kink brackets are derived for. The
    /// penalties are added exactly and keep a model classic.
    pub fn is_classic(&self) -> bool {
        self.hidden.iter().all(|&a| a == Activation::Relu)
            && self.loss == Loss::Bce
            && self.reduction == Reduction::Mean
            && self.dropout.is_none()
    }

    /// Whether every hidden unit is linear between its kinks (ReLU, leaky ReLU, identity):
    /// a perturbation then moves the logits along the row gains exactly.
    pub fn linear_between_kinks(&self) -> bool {
        self.hidden
            .iter()
            .all(|a| !matches!(a, Activation::Tanh | Activation::Sigmoid))
    }

    /// The factor on the summed per-example losses: `1/m` or 1.
    pub fn scale(&self, examples: usize) -> f64 {
        match self.reduction {
            Reduction::Mean => 1.0 / examples as f64,
            Reduction::Sum => 1.0,
        }
    }

    /// The penalties' value on `net`, in a cost over `examples`.
    pub fn penalty_cost(&self, net: &Mlp, examples: usize) -> f64 {
        self.penalty.cost(net, self.scale(examples))
    }

    /// The penalties' derivative in parameter `theta` of layer `layer`'s (0-based) tensor
    /// of `kind`.
    pub fn penalty_slope(
        &self,
        layer: usize,
        kind: TensorKind,
        examples: usize,
        theta: f64,
    ) -> f64 {
        self.penalty.slope(layer, kind, self.scale(examples), theta)
    }

    /// The dropout factor on hidden layer `l`'s unit `row` for example `e` (1 without dropout).
    pub fn keep(&self, l: usize, row: usize, e: usize) -> f64 {
        self.dropout
            .as_ref()
            .map_or(1.0, |d| d.masks[l][[row, e]] / d.keep_prob)
    }

    /// The options that resolve to this model (the inverse of [`ModelOptions::resolve`],
    /// masks aside), with its arrays laid out as `layout`: what a file that describes itself
    /// carries. Defaults other than the loss are left unset.
    pub fn options(&self, layout: DataLayout) -> ModelOptions {
        let given = |r: &Rates| (!r.is_zero()).then(|| r.clone());
        ModelOptions {
            hidden: (!self.hidden.is_empty()).then(|| self.hidden.clone()),
            loss: Some(self.loss),
            reduction: (self.reduction != Reduction::Mean).then_some(self.reduction),
            l2: (self.penalty.l2 != 0.0).then_some(self.penalty.l2),
            weight_l2: given(&self.penalty.weight_l2),
            weight_l1: given(&self.penalty.weight_l1),
            bias_l2: given(&self.penalty.bias_l2),
            bias_l1: given(&self.penalty.bias_l1),
            keep_prob: self.dropout.as_ref().map(|d| d.keep_prob),
            layout: Some(layout),
            normalization: None,
            sequence: None,
        }
    }

    /// One line for the report: `relu,relu → sigmoid + bce (mean), L2 0.7, dropout 0.8`.
    pub fn describe(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(Activation::to_string).collect();
        let output = match self.loss {
            Loss::Bce => "sigmoid + binary cross-entropy",
            Loss::Softmax => "softmax + cross-entropy",
            Loss::Mse => "identity + squared error ½‖ŷ − y‖²",
            Loss::MseMean => "identity + mean squared error mean((ŷ − y)²)",
            Loss::Sse => "identity + sum of squared errors ‖ŷ − y‖²",
        };
        let mut text = if hidden.is_empty() {
            format!("{output} ({})", self.reduction.as_str())
        } else {
            format!(
                "{} → {output} ({})",
                hidden.join(","),
                self.reduction.as_str()
            )
        };
        text.push_str(&self.penalty.describe());
        if let Some(d) = &self.dropout {
            text.push_str(&format!(", dropout keep_prob={}", d.keep_prob));
        }
        text
    }
}

/// The model as asked for, before it meets a network: each field unset leaves the
/// default (or what a file says). Flags override a file's settings field by field.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelOptions {
    /// One activation for every hidden layer, or one per hidden layer.
    pub hidden: Option<Vec<Activation>>,
    pub loss: Option<Loss>,
    pub reduction: Option<Reduction>,
    /// The course's λ: `λ/(2m)·Σ‖W‖²`.
    pub l2: Option<f64>,
    /// Coefficients on plain sums (see [`Penalty`]).
    pub weight_l2: Option<Rates>,
    pub weight_l1: Option<Rates>,
    pub bias_l2: Option<Rates>,
    pub bias_l1: Option<Rates>,
    pub keep_prob: Option<f64>,
    /// `None`: decided by the shapes.
    pub layout: Option<DataLayout>,
    /// A normalisation layer after each hidden affine layer, with parameters `gamma<l>`,
    /// `beta<l>`.
    pub normalization: Option<Normalization>,
    /// A network's layers, in order, as ops with their hyperparameters
    /// (`conv(stride=1,pad=1),relu,max_pool(pool_height=2,pool_width=2,stride=2),affine`).
    pub sequence: Option<String>,
}

impl ModelOptions {
    /// `self`, with every field it leaves unset taken from `under` (a file's settings).
    pub fn over(&self, under: &ModelOptions) -> ModelOptions {
        ModelOptions {
            hidden: self.hidden.clone().or_else(|| under.hidden.clone()),
            loss: self.loss.or(under.loss),
            reduction: self.reduction.or(under.reduction),
            l2: self.l2.or(under.l2),
            weight_l2: self.weight_l2.clone().or_else(|| under.weight_l2.clone()),
            weight_l1: self.weight_l1.clone().or_else(|| under.weight_l1.clone()),
            bias_l2: self.bias_l2.clone().or_else(|| under.bias_l2.clone()),
            bias_l1: self.bias_l1.clone().or_else(|| under.bias_l1.clone()),
            keep_prob: self.keep_prob.or(under.keep_prob),
            layout: self.layout.or(under.layout),
            normalization: self.normalization.or(under.normalization),
            sequence: self.sequence.clone().or_else(|| under.sequence.clone()),
        }
    }

    /// Whether the network is one of ops (a layer sequence, or normalisation layers)
    /// rather than dense layers alone.
    pub fn is_network_of_ops(&self) -> bool {
        self.normalization.is_some() || self.sequence.is_some()
    }

    /// Whether anything besides the exercise's model is asked for.
    pub fn is_default(&self) -> bool {
        self == &ModelOptions::default()
    }

    /// The settings a file carries, as one line: `hidden=tanh loss=softmax l2=0.1
    /// keep_prob=0.8 layout=rows reduction=mean` (spaces, commas or semicolons between —
    /// a comma followed by a word without `=` continues a list, `hidden=relu,tanh`; a
    /// leading `--` and `-` for `_` in keys accepted, so flags can be pasted).
    pub fn parse_line(line: &str) -> Result<ModelOptions> {
        let mut opts = ModelOptions::default();
        for item in settings_items(line) {
            let item = item.as_str();
            let (key, value) = item.split_once('=').ok_or_else(|| {
                Error::Option(format!(
                    "the setting '{item}' is not key=value (like loss=softmax)"
                ))
            })?;
            let key = key.trim_start_matches('-').replace('-', "_");
            let bad = |what: &str| Error::Option(format!("the setting {key}={value}: {what}"));
            match key.as_str() {
                "hidden" | "activation" => opts.hidden = Some(parse_activations(value)?),
                "loss" => {
                    opts.loss = Some(
                        <Loss as clap::ValueEnum>::from_str(value, true)
                            .map_err(|_| bad("use bce, softmax, mse, mse_mean or sse"))?,
                    )
                }
                "reduction" => {
                    opts.reduction = Some(
                        <Reduction as clap::ValueEnum>::from_str(value, true)
                            .map_err(|_| bad("use mean or sum"))?,
                    )
                }
                "layout" => {
                    opts.layout = match value.to_ascii_lowercase().as_str() {
                        "auto" => None,
                        _ => Some(
                            <DataLayout as clap::ValueEnum>::from_str(value, true)
                                .map_err(|_| bad("use columns, rows or auto"))?,
                        ),
                    }
                }
                "l2" | "lambd" | "lambda" => {
                    opts.l2 = Some(parse_number(value).map_err(|_| bad("not a number"))?)
                }
                "weight_l2" | "weight_regularizer_l2" | "reg" => {
                    opts.weight_l2 = Some(Rates::parse(value).map_err(|e| bad(&e))?)
                }
                "weight_l1" | "weight_regularizer_l1" => {
                    opts.weight_l1 = Some(Rates::parse(value).map_err(|e| bad(&e))?)
                }
                "bias_l2" | "bias_regularizer_l2" => {
                    opts.bias_l2 = Some(Rates::parse(value).map_err(|e| bad(&e))?)
                }
                "bias_l1" | "bias_regularizer_l1" => {
                    opts.bias_l1 = Some(Rates::parse(value).map_err(|e| bad(&e))?)
                }
                "keep_prob" => {
                    opts.keep_prob = Some(parse_number(value).map_err(|_| bad("not a number"))?)
                }
                "sequence" | "layers" => opts.sequence = Some(value.to_string()),
                "normalization" => {
                    opts.normalization = match value.to_ascii_lowercase().as_str() {
                        "none" => None,
                        _ => Some(
                            <Normalization as clap::ValueEnum>::from_str(value, true)
                                .map_err(|_| bad("use batchnorm, layernorm or none"))?,
                        ),
                    }
                }
                _ => {
                    return Err(Error::Option(format!(
                    "unknown setting '{key}': use hidden, loss, reduction, l2, weight_l2, weight_l1, bias_l2, bias_l1, keep_prob, layout, normalization or sequence"
                )))
                }
            }
        }
        Ok(opts)
    }

    /// The settings as one line [`ModelOptions::parse_line`] reads back (empty for the
    /// defaults).
    pub fn to_line(&self) -> String {
        let mut words = Vec::new();
        if let Some(h) = &self.hidden {
            let names: Vec<String> = h.iter().map(ToString::to_string).collect();
            words.push(format!("hidden={}", names.join(",")));
        }
        if let Some(l) = self.loss {
            words.push(format!("loss={}", l.as_str()));
        }
        if let Some(r) = self.reduction {
            words.push(format!("reduction={}", r.as_str()));
        }
        if let Some(v) = self.l2 {
            words.push(format!("l2={v}"));
        }
        for (key, value) in [
            ("weight_l2", &self.weight_l2),
            ("weight_l1", &self.weight_l1),
            ("bias_l2", &self.bias_l2),
            ("bias_l1", &self.bias_l1),
        ] {
            if let Some(v) = value {
                words.push(format!("{key}={v}"));
            }
        }
        if let Some(p) = self.keep_prob {
            words.push(format!("keep_prob={p}"));
        }
        if let Some(l) = self.layout {
            words.push(format!("layout={}", l.as_str()));
        }
        if let Some(n) = self.normalization {
            words.push(format!("normalization={}", n.as_str()));
        }
        if let Some(s) = &self.sequence {
            words.push(format!("sequence={s}"));
        }
        words.join(" ")
    }

    /// The checked model of a network of `layers` affine layers, with `masks` (per hidden
    /// layer, examples in columns) when dropout is asked for.
    pub fn resolve(&self, layers: usize, masks: Option<Vec<Array2<f64>>>) -> Result<Model> {
        let hidden_layers = layers.saturating_sub(1);
        let hidden = match self.hidden.as_deref() {
            None => vec![Activation::Relu; hidden_layers],
            Some([one]) => vec![*one; hidden_layers],
            Some(list) if list.len() == hidden_layers => list.to_vec(),
            Some(list) => {
                return Err(Error::Option(format!(
                    "{} hidden activations for a network with {hidden_layers} hidden layers: give one for all or one per hidden layer",
                    list.len()
                )))
            }
        };
        let penalty = self.penalty(layers)?;
        let dropout = match (self.keep_prob, masks) {
            (None, None) => None,
            (Some(p), _) if !(p > 0.0 && p <= 1.0) => {
                return Err(Error::Option(format!(
                    "the keep probability must lie in (0, 1], got {p}"
                )))
            }
            (Some(_), None) => {
                return Err(Error::MissingArray(
                    "D1 (dropout masks D1 … D(L−1) go with a keep probability)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(Error::Option(
                    "dropout masks need the keep probability they were drawn with".into(),
                ))
            }
            (Some(keep_prob), Some(masks)) => {
                if masks.len() != hidden_layers {
                    return Err(Error::Option(format!(
                        "{} dropout masks for {hidden_layers} hidden layers",
                        masks.len()
                    )));
                }
                Some(Dropout { keep_prob, masks })
            }
        };
        Ok(Model {
            hidden,
            loss: self.loss.unwrap_or_default(),
            reduction: self.reduction.unwrap_or_default(),
            penalty,
            dropout,
        })
    }

    /// The penalties asked for on a network of `layers` layers, each coefficient a finite
    /// number ≥ 0, one for every layer or one per layer; the course's `l2` and `weight_l2`
    /// are two conventions for one term, so not both.
    pub fn penalty(&self, layers: usize) -> Result<Penalty> {
        let l2 = self.l2.unwrap_or(0.0);
        if !(l2.is_finite() && l2 >= 0.0) {
            return Err(Error::Option(format!(
                "the penalty l2 must be a finite number ≥ 0, got {l2}"
            )));
        }
        if let (Some(l2), Some(w)) = (self.l2, &self.weight_l2) {
            return Err(Error::Option(format!(
                "l2={l2} and weight_l2={w} are two conventions for the same term (λ/(2m)·Σ‖W‖² and a plain coefficient on Σ‖W‖²): give one"
            )));
        }
        let rates = |name: &str, value: &Option<Rates>| {
            value.clone().unwrap_or_default().checked(name, layers)
        };
        Ok(Penalty {
            l2,
            weight_l2: rates("weight_l2", &self.weight_l2)?,
            weight_l1: rates("weight_l1", &self.weight_l1)?,
            bias_l2: rates("bias_l2", &self.bias_l2)?,
            bias_l1: rates("bias_l1", &self.bias_l1)?,
        })
    }
}

/// The `key=value` items of a settings line: separated by spaces, tabs, newlines,
/// semicolons or commas, where a comma-separated part without `=` continues the item
/// before it (`hidden=relu,tanh, loss=softmax` is two items).
fn settings_items(line: &str) -> Vec<String> {
    // Separators inside parentheses belong to a layer's hyperparameters
    // (`sequence=conv(stride=1, pad=1),relu`): hidden while splitting, restored after.
    let mut depth = 0usize;
    let hidden: String = line
        .chars()
        .map(|c| match c {
            '(' => {
                depth += 1;
                c
            }
            ')' => {
                depth = depth.saturating_sub(1);
                c
            }
            ' ' | ';' | '\n' | '\t' | ',' | '=' if depth > 0 => match c {
                ',' => '\u{1}',
                '=' => '\u{2}',
                _ => '\u{3}',
            },
            c => c,
        })
        .collect();
    let restore = |s: &str| {
        s.replace('\u{1}', ",")
            .replace('\u{2}', "=")
            .replace('\u{3}', " ")
    };
    let mut items: Vec<String> = Vec::new();
    for word in hidden.split([' ', ';', '\n', '\t']) {
        for (k, part) in word.split(',').enumerate() {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            match items.last_mut() {
                Some(last) if !part.contains('=') && (k > 0 || last.ends_with('=')) => {
                    if !last.ends_with('=') {
                        last.push(',');
                    }
                    last.push_str(part);
                }
                _ => items.push(part.to_string()),
            }
        }
    }
    items.iter().map(|i| restore(i)).collect()
}

/// `tanh` or `relu,tanh,leaky_relu:0.2`.
pub fn parse_activations(text: &str) -> Result<Vec<Activation>> {
    text.split(',').map(str::parse).collect()
}

fn parse_number(text: &str) -> std::result::Result<f64, std::num::ParseFloatError> {
    text.trim().parse::<f64>()
}

/// The logistic function, stable for large |z|.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activations_parse_and_print_back() {
        for text in [
            "relu",
            "leaky_relu",
            "leaky_relu:0.2",
            "tanh",
            "sigmoid",
            "identity",
        ] {
            let a: Activation = text.parse().unwrap();
            assert_eq!(a.to_string(), text);
        }
        assert!("relu:0.2".parse::<Activation>().is_err());
        assert!("swish".parse::<Activation>().is_err());
    }

    #[test]
    fn a_settings_line_reads_like_the_flags_and_flags_win() {
        let file = ModelOptions::parse_line(
            "hidden=tanh loss=softmax; l2=0.5 --keep-prob=0.8 layout=rows",
        )
        .unwrap();
        assert_eq!(file.hidden, Some(vec![Activation::Tanh]));
        assert_eq!(file.loss, Some(Loss::Softmax));
        assert_eq!(file.keep_prob, Some(0.8));
        assert_eq!(file.layout, Some(DataLayout::Rows));
        let flags = ModelOptions {
            l2: Some(0.1),
            ..Default::default()
        };
        assert_eq!(ModelOptions::parse_line(&file.to_line()).unwrap(), file);
        let merged = flags.over(&file);
        assert_eq!(merged.l2, Some(0.1));
        assert_eq!(merged.loss, Some(Loss::Softmax));
        assert!(ModelOptions::parse_line("loss=hinge").is_err());
        assert!(ModelOptions::parse_line("depth=3").is_err());
        // Commas between settings, as between a list's entries.
        let commas = ModelOptions::parse_line("hidden=relu,tanh, loss=softmax,l2=0.1").unwrap();
        assert_eq!(
            commas.hidden,
            Some(vec![Activation::Relu, Activation::Tanh])
        );
        assert_eq!(commas.loss, Some(Loss::Softmax));
        assert_eq!(commas.l2, Some(0.1));
        let spaced = ModelOptions::parse_line("hidden=tanh, loss=softmax, l2=0.1").unwrap();
        assert_eq!(spaced.hidden, Some(vec![Activation::Tanh]));
        assert_eq!(spaced.l2, Some(0.1));
    }

    #[test]
    fn resolving_checks_counts_and_ranges() {
        let opts = ModelOptions {
            hidden: Some(vec![Activation::Tanh, Activation::Relu]),
            ..Default::default()
        };
        assert!(opts.resolve(3, None).is_ok());
        assert!(opts.resolve(4, None).is_err());
        let neg = ModelOptions {
            l2: Some(-1.0),
            ..Default::default()
        };
        assert!(neg.resolve(2, None).is_err());
        let keep = ModelOptions {
            keep_prob: Some(0.8),
            ..Default::default()
        };
        assert!(matches!(keep.resolve(2, None), Err(Error::MissingArray(_))));
    }
}
