//! The layers students write by hand and check one at a time (cs231n's `layers.py`): each
//! op in its own file with its f64 forward, its reference backward, and its *probe* — the
//! central difference of `L = Σ f(inputs)·dout` in one input coordinate, evaluated over
//! the outputs that coordinate reaches, with bounds on its round-off and truncation and
//! on the round-off a correct backward of its own carries.
//!
//! A probe recomputes only the coordinate's footprint (a row for affine's `x`, a column
//! for batchnorm's `x`, one element for an activation) and differences the footprint's
//! outputs directly, so its round-off is relative to the change, not to `L`.

pub mod affine;
pub mod avg_pool;
pub mod batchnorm;
pub mod channels_last;
pub mod conv;
pub mod dropout;
pub mod layernorm;
pub mod lstm;
pub mod lstm_cell;
pub mod lstm_step;
pub mod max_pool;
mod norm;
pub mod pool;
pub mod relu;
pub mod rnn;
pub mod rnn_cell;
pub mod rnn_step;
pub mod sigmoid;
pub mod softmax_loss;
pub mod spatial_batchnorm;
pub mod spatial_groupnorm;
pub mod svm_loss;
pub mod tanh;
pub mod word_embedding;

use std::collections::BTreeMap;

use ndarray::ArrayD;

use crate::error::{Error, Result};

/// float64's unit round-off.
pub(crate) const U: f64 = f64::EPSILON / 2.0;

/// An op's named arrays (its inputs, in the course's argument names).
pub type Arrays = BTreeMap<String, ArrayD<f64>>;

/// What an input of an op is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Real-valued, with a gradient `d` + its name.
    Differentiable,
    /// Integer class labels: no gradient.
    Labels,
    /// A saved 0/1 mask: no gradient.
    Mask,
}

/// One input of an op.
#[derive(Clone, Copy, Debug)]
pub struct Input {
    pub name: &'static str,
    pub role: Role,
}

const fn input(name: &'static str, role: Role) -> Input {
    Input { name, role }
}

/// One coordinate's central difference and what bounds its distance from the derivative.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Probe {
    /// `(L(θ + s₊) − L(θ − s₋)) / (s₊ + s₋)`, over the steps actually taken.
    pub estimate: f64,
    /// A bound on the estimate's round-off.
    pub noise: f64,
    /// A bound on its truncation (0 where `L` is linear over the step).
    pub truncation: f64,
    /// At a kink (a ReLU input or an SVM margin exactly at 0): the derivative under each
    /// convention a backward may use there (below, half-way, above), which stands in for
    /// the finite difference.
    pub kink: Option<[f64; 3]>,
    /// Whether conventions other than those three exist there: a gradient matching none
    /// is then undecided, not failed (a max-pool tie split evenly).
    pub partial: bool,
    /// A correct backward's own round-off, in units of its arithmetic's unit round-off.
    pub grad_scale: f64,
}

/// An op's forward pass inside a network, with a bound on how far each output can be from
/// the exact op applied to the exact `x` (known to within its own bound) and the exact
/// parameters: what the arithmetic of a whole network's finite differences is bounded by.
#[derive(Clone, Debug)]
pub struct Bounded {
    pub out: ArrayD<f64>,
    /// Per output, the bound on its distance from the exact value.
    pub err: ArrayD<f64>,
    /// The arguments whose sign switches a branch (a ReLU's inputs, an SVM's margins),
    /// with their bounds: where the network's cost has kinks.
    pub kinks: Option<(Vec<f64>, Vec<f64>)>,
}

/// An op of the layer-level check.
pub trait LayerOp: Send + Sync {
    /// Its name and hyperparameters as the report gives them (`batchnorm eps=1e-5`).
    fn describe(&self) -> String;
    /// Its inputs, in the course's argument order.
    fn inputs(&self) -> &'static [Input];
    /// The names of its outputs where it has several (`next_h`, `next_c`): its output is
    /// then theirs joined along the last axis, and its upstream gradient is `d` + each
    /// name's, joined alike. Empty for one output (`dout`).
    fn outputs(&self) -> &'static [&'static str] {
        &[]
    }
    /// Other names its course gives the upstream gradient (deeplearning.ai's `dZ`, `dA`,
    /// `da_next`), read where `dout` is not given.
    fn upstream_aliases(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether it takes an upstream gradient `dout` (a loss's output is the scalar loss).
    fn takes_dout(&self) -> bool {
        true
    }
    /// The output's shape, after checking the inputs' shapes against each other.
    fn output_shape(&self, arrays: &Arrays) -> Result<Vec<usize>>;
    /// The forward pass (a loss: a 0-d array).
    fn forward(&self, arrays: &Arrays) -> ArrayD<f64>;
    /// The reference backward: the gradient of `Σ f·dout` in each differentiable input,
    /// in [`LayerOp::inputs`] order.
    fn backward(&self, arrays: &Arrays, dout: &ArrayD<f64>) -> Vec<ArrayD<f64>>;
    /// The probes of every coordinate of input `input` (its position in `inputs()`) with
    /// step `h`, in the array's (row-major) order.
    fn probes(&self, arrays: &Arrays, dout: &ArrayD<f64>, input: usize, h: f64) -> Vec<Probe>;
    /// The site its kinks are judged at (one convention for the whole op) and the names of
    /// the conventions: `None` for an op without kinks.
    fn kink_site(&self) -> Option<[&'static str; 3]> {
        None
    }
    /// Whether adding a constant to a column of `x` leaves the output unchanged (a batch
    /// norm): a per-column shift feeding it (an affine bias) has a zero derivative.
    fn column_shift_invariant(&self) -> bool {
        false
    }
    /// The forward pass with its rounding bounded (see [`Bounded`]), given a bound on
    /// each element of `x`: `None` for an op not yet usable inside a network.
    fn forward_bounded(&self, _arrays: &Arrays, _x_err: &[f64]) -> Option<Bounded> {
        None
    }
}

/// The hyperparameters op `name` takes.
fn hyperparameters(name: &str) -> Result<&'static [&'static str]> {
    Ok(match name {
        "affine"
        | "relu"
        | "sigmoid"
        | "tanh"
        | "softmax_loss"
        | "svm_loss"
        | "temporal_affine"
        | "word_embedding"
        | "temporal_softmax_loss"
        | "rnn_step"
        | "rnn"
        | "lstm_step"
        | "lstm"
        | "rnn_cell"
        | "lstm_cell" => &[],
        "leaky_relu" => &["alpha"],
        "dropout" => &["p"],
        "batchnorm" | "layernorm" | "spatial_batchnorm" => &["eps"],
        "spatial_groupnorm" => &["G", "eps"],
        "conv" => &["stride", "pad"],
        "max_pool" | "avg_pool" => &["pool_height", "pool_width", "stride"],
        _ => {
            return Err(Error::Option(format!(
                "unknown op '{name}': use {}",
                OPS.join(", ")
            )))
        }
    })
}

/// The inputs of op `name` that have gradients, in its argument order (whatever its
/// hyperparameters: the order of the tuple its backward returns).
pub fn gradient_inputs(name: &str) -> Result<Vec<&'static str>> {
    let placeholder = hyperparameters(name)?
        .iter()
        .map(|k| (k.to_string(), 1.0))
        .collect();
    Ok(op(name, &placeholder)?
        .inputs()
        .iter()
        .filter(|i| i.role == Role::Differentiable)
        .map(|i| i.name)
        .collect())
}

/// The outputs of op `name` where it has several (`next_h`, `next_c`), empty for one.
pub fn output_names(name: &str) -> Result<Vec<&'static str>> {
    let placeholder = hyperparameters(name)?
        .iter()
        .map(|k| (k.to_string(), 1.0))
        .collect();
    Ok(op(name, &placeholder)?.outputs().to_vec())
}

/// Every op's name.
pub const OPS: [&str; 24] = [
    "affine",
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "softmax_loss",
    "svm_loss",
    "dropout",
    "batchnorm",
    "layernorm",
    "conv",
    "max_pool",
    "avg_pool",
    "spatial_batchnorm",
    "spatial_groupnorm",
    "temporal_affine",
    "word_embedding",
    "temporal_softmax_loss",
    "rnn_step",
    "rnn",
    "lstm_step",
    "lstm",
    "rnn_cell",
    "lstm_cell",
];

/// The ops by name, with their hyperparameters (`key → value`); an unknown op or
/// hyperparameter is an error naming the known ones.
pub fn op(name: &str, hparams: &BTreeMap<String, f64>) -> Result<Box<dyn LayerOp>> {
    let known = hyperparameters(name)?;
    if let Some(key) = hparams.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(Error::Option(format!(
            "{name} has no hyperparameter '{key}'{}",
            if known.is_empty() {
                String::new()
            } else {
                format!(" (it takes {})", known.join(", "))
            }
        )));
    }
    let get = |key: &str| hparams.get(key).copied();
    Ok(match name {
        "affine" => Box::new(affine::Affine { temporal: false }),
        "temporal_affine" => Box::new(affine::Affine { temporal: true }),
        "word_embedding" => Box::new(word_embedding::WordEmbedding),
        "relu" => Box::new(relu::Relu::new(0.0)?),
        "leaky_relu" => Box::new(relu::Relu::new(get("alpha").unwrap_or(0.01))?),
        "sigmoid" => Box::new(sigmoid::Sigmoid),
        "tanh" => Box::new(tanh::Tanh),
        "softmax_loss" => Box::new(softmax_loss::SoftmaxLoss { temporal: false }),
        "rnn_step" => Box::new(rnn_step::RnnStep),
        "lstm_step" => Box::new(lstm_step::LstmStep),
        "rnn" => Box::new(rnn::Rnn),
        "lstm" => Box::new(lstm::Lstm),
        "rnn_cell" => Box::new(rnn_cell::RnnCell),
        "lstm_cell" => Box::new(lstm_cell::LstmCell),
        "temporal_softmax_loss" => Box::new(softmax_loss::SoftmaxLoss { temporal: true }),
        "svm_loss" => Box::new(svm_loss::SvmLoss),
        "dropout" => Box::new(dropout::Dropout::new(get("p").ok_or_else(|| {
            Error::Option(
                "dropout needs its keep probability p (cs231n's dropout_param['p'])".into(),
            )
        })?)?),
        "batchnorm" => Box::new(batchnorm::Batchnorm::new(get("eps").unwrap_or(1e-5))?),
        "spatial_batchnorm" => Box::new(spatial_batchnorm::SpatialBatchnorm::new(
            get("eps").unwrap_or(1e-5),
        )?),
        "spatial_groupnorm" => Box::new(spatial_groupnorm::SpatialGroupnorm::new(
            get("G"),
            get("eps").unwrap_or(1e-5),
        )?),
        "conv" => Box::new(conv::Conv::new(
            get("stride").unwrap_or(1.0),
            get("pad").unwrap_or(0.0),
        )?),
        "max_pool" | "avg_pool" => {
            let window =
                pool::Window::new(name, get("pool_height"), get("pool_width"), get("stride"))?;
            if name == "max_pool" {
                Box::new(max_pool::MaxPool::new(window))
            } else {
                Box::new(avg_pool::AvgPool::new(window))
            }
        }
        _ => Box::new(layernorm::Layernorm::new(get("eps").unwrap_or(1e-5))?),
    })
}

/// A hyperparameter as a person writes it: `1e-5`, `0.6`.
pub(crate) fn number(v: f64) -> String {
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}

/// The array `name`, which [`LayerOp::output_shape`] has checked is there.
pub(crate) fn array<'a>(arrays: &'a Arrays, name: &str) -> &'a ArrayD<f64> {
    arrays.get(name).expect("checked by output_shape")
}

/// Array `name`'s shape, or an error saying it is missing.
pub(crate) fn shape_of(arrays: &Arrays, op: &str, name: &str) -> Result<Vec<usize>> {
    arrays
        .get(name)
        .map(|a| a.shape().to_vec())
        .ok_or_else(|| Error::Missing(format!("input {name} of {op}")))
}

/// A shape mismatch between two inputs, in one line.
pub(crate) fn mismatch(what: String) -> Error {
    Error::Shape(what)
}

/// `x ± h` as computed, and the steps actually taken (`s₊ = (x + h) − x`).
pub(crate) fn steps(x: f64, h: f64) -> (f64, f64, f64, f64) {
    let (plus, minus) = (x + h, x - h);
    (plus, minus, plus - x, x - minus)
}

/// The probe of a coordinate that moves outputs linearly (affine, conv, the average
/// pool): each moved output `(out, upstream, slope)` moves by `slope·s`, and its difference
/// is taken directly, so its own base rounding cancels. A correct backward sums the moved
/// terms with `extra` roundings besides.
pub(crate) fn linear_probe(
    theta: f64,
    h: f64,
    moved: impl Iterator<Item = (f64, f64, f64)>,
    extra: usize,
) -> Probe {
    let (_, _, sp, sm) = steps(theta, h);
    let (mut diff, mut noise, mut size, mut grad_size) = (0.0, 0.0, 0.0, 0.0);
    let mut terms = 0;
    for (o, up, slope) in moved {
        let (plus, minus) = (o + slope * sp, o - slope * sm);
        let change = plus - minus;
        diff += up * change;
        noise += up.abs() * U * (plus.abs() + minus.abs() + change.abs());
        size += (up * change).abs();
        grad_size += (up * slope).abs();
        terms += 1;
    }
    let step = sp + sm;
    let estimate = diff / step;
    Probe {
        estimate,
        noise: (noise + gamma(terms + 1) * size) / step + 2.0 * U * estimate.abs(),
        truncation: 0.0,
        kink: None,
        partial: false,
        grad_scale: (terms + extra) as f64 * grad_size,
    }
}

/// How far from Richardson's 4 the ratio of successive differences may be for the steps to
/// count as small (their error dominated by its `h²` term).
const ASYMPTOTIC: (f64, f64) = (2.0, 8.0);

/// A bound on the truncation of the central difference at `h`, from the estimates at `h`,
/// `2h`, `4h` and their noise bounds: Richardson's (successive differences are three times
/// the leading error term, twelve times at `h` for the second pair), doubled, where the
/// differences grow by about 4 per doubling or are lost in the noise; where they do not,
/// the steps are not small for this function and only the spread of the three is left.
pub(crate) fn richardson_truncation(d: [f64; 3], n: [f64; 3]) -> f64 {
    let (r1, r2) = ((d[1] - d[0]).abs(), (d[2] - d[1]).abs());
    let within_noise = r1 <= n[0] + n[1] && r2 <= n[1] + n[2];
    if within_noise || (ASYMPTOTIC.0..=ASYMPTOTIC.1).contains(&(r2 / r1)) {
        2.0 * ((r1 + n[0] + n[1]) / 3.0).max((r2 + n[1] + n[2]) / 12.0)
    } else {
        r1 + r2 + n[0] + n[1] + n[2]
    }
}

/// The probes of input `input` by central differences of the whole op at `h`, `2h`, `4h`
/// (for ops whose structure gives no probe of its own: gated cells), the round-off from
/// its bounded forward weighted by `|dout|`, the truncation Richardson's
/// ([`richardson_truncation`]). A correct backward's rounding is taken as a sum over the
/// op's widest reduction times the gradient's scale: an estimate, not a bound.
pub(crate) fn richardson_probes(
    op: &dyn LayerOp,
    arrays: &Arrays,
    dout: &ArrayD<f64>,
    input: usize,
    h: f64,
) -> Vec<Probe> {
    use rayon::prelude::*;
    let name = op.inputs()[input].name;
    let up = dout.as_slice().expect("standard layout");
    let exact = vec![0.0; array(arrays, op.inputs()[0].name).len()];
    let value = |a: &Arrays| {
        let b = op
            .forward_bounded(a, &exact)
            .expect("an op probed whole bounds its forward");
        let (mut sum, mut size, mut err) = (0.0, 0.0, 0.0);
        for ((o, e), g) in b.out.iter().zip(b.err.iter()).zip(up) {
            sum += o * g;
            size += (o * g).abs();
            err += e * g.abs();
        }
        (sum, 2.0 * err + gamma(up.len() + 1) * size)
    };
    let theta = array(arrays, name);
    let widest = arrays
        .values()
        .flat_map(|a| a.shape().iter().copied())
        .max()
        .unwrap_or(1);
    let mut probes: Vec<Probe> = (0..theta.len())
        .into_par_iter()
        .map(|i| {
            let mut moved = arrays.clone();
            let at = theta.as_slice().expect("standard layout")[i];
            let mut eval = |v: f64| {
                moved
                    .get_mut(name)
                    .expect("present")
                    .as_slice_mut()
                    .expect("standard")[i] = v;
                value(&moved)
            };
            let mut d = [0.0; 3];
            let mut n = [0.0; 3];
            let mut unequal = 0.0;
            for (k, scale) in [1.0, 2.0, 4.0].into_iter().enumerate() {
                let (plus, minus, sp, sm) = steps(at, scale * h);
                let ((lp, ep), (lm, em)) = (eval(plus), eval(minus));
                d[k] = (lp - lm) / (sp + sm);
                n[k] = (ep + em + U * (lp - lm).abs()) / (sp + sm) + 2.0 * U * d[k].abs();
                if k == 0 {
                    unequal = (sp - sm).abs() / (sp + sm);
                }
            }
            Probe {
                estimate: d[0],
                noise: n[0],
                truncation: richardson_truncation(d, n) + unequal * (d[0].abs() + n[0]),
                kink: None,
                partial: false,
                grad_scale: 0.0,
            }
        })
        .collect();
    scaled_grad_rounding(&mut probes, (4 * widest + 16) as f64);
    probes
}

/// Sets each probe's estimate of a correct backward's own rounding: `count` roundings of
/// the gradient's scale (the coordinate's estimate, or the tensor's RMS where larger: a
/// coordinate that cancels to nearly nothing still sums terms of the tensor's size).
pub(crate) fn scaled_grad_rounding(probes: &mut [Probe], count: f64) {
    let rms = (probes.iter().map(|p| p.estimate * p.estimate).sum::<f64>()
        / probes.len().max(1) as f64)
        .sqrt();
    for p in probes {
        p.grad_scale = count * p.estimate.abs().max(rms);
    }
}

/// `γ_n = n·u/(1 − n·u)`: the relative bound on a sum or product of `n` roundings.
pub(crate) fn gamma(n: usize) -> f64 {
    let nu = n as f64 * U;
    nu / (1.0 - nu)
}

/// Integer labels `y` (N,) for `n` rows of `classes` classes, checked.
pub(crate) fn labels(y: &ArrayD<f64>, n: usize, classes: usize) -> Result<Vec<usize>> {
    if y.shape() != [n] {
        return Err(mismatch(format!(
            "y has shape {:?} but x has {n} rows: give one class index per row, shape ({n},)",
            y.shape()
        )));
    }
    y.iter()
        .enumerate()
        .map(|(i, &v)| {
            if v.fract() == 0.0 && v >= 0.0 && (v as usize) < classes {
                Ok(v as usize)
            } else {
                Err(Error::Labels(format!(
                    "y[{i}] is {v}: class indices are integers in 0 … {}",
                    classes - 1
                )))
            }
        })
        .collect()
}
