//! Reading a network of ops: its layer sequence — given as a settings word
//! (`sequence=conv(stride=1,pad=1),relu,max_pool(pool_height=2,pool_width=2,stride=2),affine,relu,affine`)
//! or cs231n's `FullyConnectedNet` with `normalization=batchnorm|layernorm` (affine → norm →
//! activation [→ dropout] per hidden layer, then affine) — ending in the softmax loss; its
//! parameters named as cs231n names them (`W1, b1` per conv or affine layer in order,
//! `gamma1, beta1` for the norm after layer 1, the dropout mask `D1`), examples in rows,
//! integer labels `y`; the gradients keyed like the parameters (cs231n's `grads`) or `dW1`.

use std::collections::{BTreeMap, BTreeSet};

use ndarray::{ArrayD, IxDyn};

use super::{Network, Node, Tensor};
use crate::error::{Error, Result};
use crate::io::{gradient_names, is_intermediate_gradient, NamedArrays, SETTINGS_ARRAY};
use crate::model::{Activation, DataLayout, Loss, ModelOptions, Normalization, Reduction};
use crate::ops::{self, Arrays};
use crate::options::Precision;

/// A network read for its check, with the gradients on trial.
pub struct NetworkInput {
    pub network: Network,
    /// Per tensor (in the network's order), the gradient given: `(array name, values)`.
    pub grads: Vec<Option<(String, ArrayD<f64>)>>,
    /// Arrays of the input the check does not use.
    pub unused: Vec<String>,
    /// How the report names the gradients' source.
    pub source: String,
}

/// One layer of a sequence: an op and its hyperparameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub op: String,
    pub hparams: BTreeMap<String, f64>,
}

impl Spec {
    fn new(op: &str, hparams: &[(&str, f64)]) -> Self {
        Spec {
            op: op.to_string(),
            hparams: hparams.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }
}

/// `conv(stride=1,pad=1),relu,max_pool(pool_height=2,pool_width=2,stride=2),affine`: the
/// layers, each op with its hyperparameters in parentheses.
pub fn parse_sequence(text: &str) -> Result<Vec<Spec>> {
    let mut specs = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let end = rest.find([',', '(']).unwrap_or(rest.len());
        let op = rest[..end].trim().to_string();
        rest = &rest[end..];
        let mut hparams = BTreeMap::new();
        if let Some(inner) = rest.strip_prefix('(') {
            let close = inner.find(')').ok_or_else(|| {
                Error::Option(format!("the sequence's {op}( has no closing parenthesis"))
            })?;
            for item in inner[..close]
                .split([',', ' ', ';'])
                .filter(|i| !i.is_empty())
            {
                let (k, v) = item.split_once('=').ok_or_else(|| {
                    Error::Option(format!("{op}'s '{item}' is not key=value (like stride=1)"))
                })?;
                let v: f64 = v
                    .trim()
                    .parse()
                    .map_err(|_| Error::Option(format!("{op}'s {k}={v}: not a number")))?;
                hparams.insert(k.trim().to_string(), v);
            }
            rest = &inner[close + 1..];
        }
        rest = rest
            .trim_start()
            .strip_prefix(',')
            .unwrap_or(rest)
            .trim_start();
        if op.is_empty() {
            return Err(Error::Option(format!(
                "an empty layer in the sequence '{text}'"
            )));
        }
        specs.push(Spec { op, hparams });
    }
    if specs.is_empty() {
        return Err(Error::Option("the sequence names no layers".into()));
    }
    Ok(specs)
}

/// The layers of cs231n's `FullyConnectedNet` of `depth` affine layers.
fn fc_net(
    depth: usize,
    norm: Normalization,
    hidden: &[Activation],
    keep_prob: Option<f64>,
) -> Vec<Spec> {
    let mut specs = Vec::new();
    for activation in hidden.iter().take(depth - 1) {
        specs.push(Spec::new("affine", &[]));
        specs.push(Spec::new(norm.as_str(), &[]));
        match *activation {
            Activation::Identity => {}
            Activation::Relu => specs.push(Spec::new("relu", &[])),
            Activation::LeakyRelu(a) => specs.push(Spec::new("leaky_relu", &[("alpha", a)])),
            Activation::Tanh => specs.push(Spec::new("tanh", &[])),
            Activation::Sigmoid => specs.push(Spec::new("sigmoid", &[])),
        }
        if let Some(p) = keep_prob {
            specs.push(Spec::new("dropout", &[("p", p)]));
        }
    }
    specs.push(Spec::new("affine", &[]));
    specs
}

/// Reads the network of `arrays` (a file's or a notebook's) with `settings`, and its
/// gradients from `grads` (keyed like the parameters or `dW1`) or from `arrays` itself
/// (`dW1`, `W1_grad`, `grad_W1`); `label` names the gradients' source.
pub fn read_network(
    arrays: &NamedArrays,
    grads: Option<&NamedArrays>,
    settings: &ModelOptions,
    label: &str,
) -> Result<NetworkInput> {
    if settings.layout == Some(DataLayout::Columns) {
        return Err(Error::Option(
            "a network of ops is read with examples in rows (cs231n's X (N, D), W (in, out)); layout=columns is not supported with it".into(),
        ));
    }
    if !matches!(settings.loss, None | Some(Loss::Softmax)) {
        return Err(Error::Option(format!(
            "a network of ops ends in softmax (cs231n's nets); loss={} is not supported with it yet",
            settings.loss.map(Loss::as_str).unwrap_or_default()
        )));
    }
    if settings.reduction == Some(Reduction::Sum) {
        return Err(Error::Option(
            "a network of ops averages its loss over the examples (reduction=mean)".into(),
        ));
    }
    let names: BTreeSet<String> = arrays.keys().cloned().collect();
    let depth = crate::io::layer_count(&names)?;
    let (specs, penalty) = match (&settings.sequence, settings.normalization) {
        (Some(_), Some(_)) => return Err(Error::Option(
            "give the layer sequence or the normalization, not both (a sequence names its norms)"
                .into(),
        )),
        (Some(text), None) => {
            if settings.hidden.is_some() {
                return Err(Error::Option(
                    "a layer sequence names its own activations: leave hidden unset".into(),
                ));
            }
            (parse_sequence(text)?, settings.penalty(depth)?)
        }
        (None, Some(norm)) => {
            let saved: Vec<String> = (1..depth)
                .map(|l| format!("D{l}"))
                .filter(|d| names.contains(d))
                .collect();
            if settings.keep_prob.is_none() && !saved.is_empty() {
                return Err(Error::Option(format!(
                    "{} look like dropout masks, but no keep probability is set: give keep_prob, the one they were drawn with",
                    saved.join(", ")
                )));
            }
            let masks = settings
                .keep_prob
                .map(|_| vec![ndarray::Array2::<f64>::zeros((0, 0)); depth - 1]);
            let model = settings.resolve(depth, masks)?;
            (
                fc_net(depth, norm, &model.hidden, settings.keep_prob),
                model.penalty,
            )
        }
        (None, None) => {
            return Err(Error::Option(
                "a network of ops needs its layer sequence or its normalization".into(),
            ))
        }
    };
    if !(penalty.weight_l1.is_zero() && penalty.bias_l2.is_zero() && penalty.bias_l1.is_zero()) {
        return Err(Error::Option(
            "a network of ops takes an L2 penalty on its weights (l2 or weight_l2) only".into(),
        ));
    }
    let get = |name: &str| {
        arrays
            .get(name)
            .map(|(a, _)| a)
            .ok_or_else(|| Error::MissingArray(name.into()))
    };
    let x_name = crate::io::data_name(&names, "X")?;
    let y_name = crate::io::data_name(&names, "Y")?;
    let x = get(x_name)?.as_standard_layout().into_owned();
    if x.ndim() < 2 || x.shape()[0] == 0 {
        return Err(Error::Shape(format!(
            "{x_name} has shape {:?}: examples in rows, (N, D) or (N, C, H, W)",
            x.shape()
        )));
    }
    let n = x.shape()[0];
    let weight_l2 = |l: usize| penalty.weight_l2.at(l) + penalty.l2 / (2.0 * n as f64);
    let mut used: BTreeSet<String> = [x_name, y_name, SETTINGS_ARRAY]
        .into_iter()
        .map(String::from)
        .collect();
    let mut network = Network {
        nodes: Vec::new(),
        tensors: Vec::new(),
        input: x.clone(),
        description: String::new(),
        widths: vec![x.len() / n],
        examples: n,
    };
    let mut h = x;
    let mut layer = 0;
    for (k, spec) in specs.iter().enumerate() {
        let mut hparams = spec.hparams.clone();
        if let (true, Some(p)) = (spec.op == "dropout", settings.keep_prob) {
            hparams.entry("p".into()).or_insert(p);
        }
        let op = ops::op(&spec.op, &hparams)?;
        let mut fixed = Arrays::new();
        let mut params: Vec<(&'static str, String)> = Vec::new();
        match spec.op.as_str() {
            "affine" | "conv" => {
                layer += 1;
                params.push(("w", format!("W{layer}")));
                params.push(("b", format!("b{layer}")));
            }
            "batchnorm" | "layernorm" | "spatial_batchnorm" | "spatial_groupnorm" => {
                params.push(("gamma", format!("gamma{layer}")));
                params.push(("beta", format!("beta{layer}")));
            }
            "dropout" => {
                let name = format!("D{layer}");
                let mask = get(&name).map_err(|_| {
                    Error::MissingMasks(format!(
                        "{name} is not in the input: the dropout after layer {layer} needs its saved mask"
                    ))
                })?;
                fixed.insert("mask".into(), mask.clone());
                used.insert(name);
            }
            "relu" | "leaky_relu" | "tanh" | "sigmoid" | "max_pool" | "avg_pool" => {}
            other => {
                return Err(Error::Option(format!(
                    "{other} cannot be a layer of a network yet: use affine, conv, batchnorm, layernorm, spatial_batchnorm, spatial_groupnorm, relu, leaky_relu, tanh, sigmoid, dropout, max_pool, avg_pool"
                )))
            }
        }
        let mut arrays = fixed.clone();
        for (argument, name) in &params {
            let value = get(name)?;
            let value = match *argument {
                // cs231n's biases and norms' scales are (M,); (1, M) is the same.
                "b" | "gamma" | "beta" if value.ndim() == 2 && value.shape()[0] == 1 => value
                    .clone()
                    .into_shape_with_order(IxDyn(&[value.len()]))
                    .expect("size"),
                _ => value.as_standard_layout().into_owned(),
            };
            arrays.insert(argument.to_string(), value);
        }
        arrays.insert("x".into(), h);
        op.output_shape(&arrays).map_err(|e| match e {
            Error::Shape(text) => Error::Shape(format!(
                "layer {} ({}{}): {text}",
                k + 1,
                spec.op,
                params
                    .iter()
                    .map(|(_, n)| format!(" {n}"))
                    .collect::<String>()
            )),
            e => e,
        })?;
        let shift_invariant = op.column_shift_invariant();
        let node = network.nodes.len();
        h = op.forward(&arrays);
        network.nodes.push(Node { op, fixed });
        if shift_invariant && k > 0 && ["affine", "conv"].contains(&specs[k - 1].op.as_str()) {
            if let Some(bias) = network.tensors.iter_mut().rev().find(|t| t.argument == "b") {
                let what = if spec.op == "batchnorm" {
                    "column"
                } else {
                    "channel"
                };
                bias.invariant = Some(format!(
                    "the cost does not depend on {}: {} removes each {what}'s mean, and {} shifts {what}s",
                    bias.name, spec.op, bias.name
                ));
            }
        }
        for (argument, name) in params {
            let value = arrays.remove(argument).expect("inserted");
            let penalty = if argument == "w" {
                weight_l2(layer - 1)
            } else {
                0.0
            };
            used.insert(name.clone());
            network.tensors.push(Tensor {
                name,
                value,
                node,
                argument,
                penalty,
                invariant: None,
            });
        }
        if matches!(spec.op.as_str(), "affine" | "conv") {
            network.widths.push(h.len() / n);
        }
    }
    if layer != depth {
        return Err(Error::Network(format!(
            "the sequence has {layer} conv and affine layers but the input has W1 … W{depth}"
        )));
    }
    if let Some(stray) = names
        .iter()
        .find(|n| (n.starts_with("gamma") || n.starts_with("beta")) && !used.contains(*n))
    {
        return Err(Error::Network(format!(
            "{stray} belongs to no normalisation layer of this network (gamma<l>, beta<l> go with the norm after layer l)"
        )));
    }
    let classes = *h.shape().last().unwrap_or(&0);
    if h.ndim() != 2 {
        return Err(Error::Shape(format!(
            "the last layer's output has shape {:?}: the scores are (N, C), so end the sequence with affine",
            h.shape()
        )));
    }
    let y = labels(get(y_name)?, y_name, n, classes)?;
    network.nodes.push(Node {
        op: ops::op("softmax_loss", &BTreeMap::new())?,
        fixed: Arrays::from([("y".to_string(), y)]),
    });
    network.description = describe(&specs);

    let (grads, noted) = gradients(&network, arrays, grads, &mut used)?;
    let mut unused: Vec<String> = names
        .iter()
        .filter(|n| !used.contains(*n))
        .cloned()
        .collect();
    unused.extend(noted);
    Ok(NetworkInput {
        network,
        grads,
        unused,
        source: format!("gradients from {label}"),
    })
}

/// Integer labels `y` (N,), or one-hot rows (N, C) read as their classes.
fn labels(y: &ArrayD<f64>, name: &str, n: usize, classes: usize) -> Result<ArrayD<f64>> {
    if y.shape() == [n, classes] && classes > 1 {
        let values: Vec<f64> = y.iter().copied().collect();
        let rows: Option<Vec<f64>> = values
            .chunks(classes)
            .map(|row| {
                let ones: Vec<usize> = (0..classes).filter(|&c| row[c] == 1.0).collect();
                (ones.len() == 1 && row.iter().all(|&v| v == 0.0 || v == 1.0))
                    .then(|| ones[0] as f64)
            })
            .collect();
        return rows
            .map(|r| ArrayD::from_shape_vec(IxDyn(&[n]), r).expect("size"))
            .ok_or_else(|| {
                Error::Labels(format!(
                    "{name} is ({n}, {classes}) but not one-hot: give integer class indices ({n},)"
                ))
            });
    }
    let flat = y.iter().copied().collect::<Vec<_>>();
    if y.len() != n || y.ndim() > 2 {
        return Err(Error::Shape(format!(
            "{name} has shape {:?}: one class index per example, ({n},)",
            y.shape()
        )));
    }
    let flat = ArrayD::from_shape_vec(IxDyn(&[n]), flat).expect("size");
    ops::labels(&flat, n, classes)?;
    Ok(flat)
}

/// `(affine → batchnorm → relu) ×2 → affine → softmax + cross-entropy (mean)`.
fn describe(specs: &[Spec]) -> String {
    let mut words: Vec<String> = specs
        .iter()
        .map(|s| {
            ops::op(&s.op, &s.hparams)
                .map(|o| o.describe())
                .unwrap_or_default()
        })
        .collect();
    words.push("softmax + cross-entropy (mean)".into());
    // Repeated runs of layers, once with a count (a FullyConnectedNet's hidden layers).
    for size in (1..=words.len() / 2).rev() {
        let mut i = 0;
        while i + 2 * size <= words.len() {
            let mut count = 1;
            while i + (count + 1) * size <= words.len()
                && words[i..i + size] == words[i + count * size..i + (count + 1) * size]
            {
                count += 1;
            }
            if count > 1 {
                let group = format!("({}) ×{count}", words[i..i + size].join(" → "));
                words.splice(i..i + count * size, [group]);
            }
            i += 1;
        }
    }
    words.join(" → ")
}

/// A tensor's gradient as given: the array's name and its values.
type Given = Option<(String, ArrayD<f64>)>;

/// Each tensor's gradient, from `grads` (keyed like the parameters, or `dW1`…) or from
/// the network's own arrays (`dW1`, `W1_grad`, `grad_W1`), float32 gradients refused; and
/// the intermediate gradients `grads` holds besides (`dX`: not used).
fn gradients(
    network: &Network,
    arrays: &NamedArrays,
    grads: Option<&NamedArrays>,
    used: &mut BTreeSet<String>,
) -> Result<(Vec<Given>, Vec<String>)> {
    let mut found = Vec::new();
    for tensor in network.tensors() {
        let spellings = gradient_names(&tensor.name);
        let hit = match grads {
            Some(g) => std::iter::once(tensor.name.clone())
                .chain(spellings.iter().cloned())
                .find_map(|k| g.get(&k).map(|v| (k, v))),
            None => spellings
                .iter()
                .find_map(|k| arrays.get(k).map(|v| (k.clone(), v))),
        };
        let Some((key, (value, precision))) = hit else {
            found.push(None);
            continue;
        };
        if grads.is_none() {
            used.insert(key.clone());
        }
        if *precision == Precision::F32 {
            return Err(Error::Option(format!(
                "{key} is float32: the float32 round-off of a network of ops' backward is not bounded yet, so its gradients are judged in float64 only; compute the backward in float64 (or check each layer's backward with the layer check)"
            )));
        }
        if value.len() != tensor.value.len() {
            return Err(Error::Shape(format!(
                "the gradient {key} has shape {:?} but the parameter {} has {:?}: a gradient is shaped like its parameter",
                value.shape(),
                tensor.name,
                tensor.value.shape()
            )));
        }
        let value = value
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order(tensor.value.raw_dim())
            .map_err(|e| Error::Shape(e.to_string()))?;
        found.push(Some((key, value)));
    }
    let mut noted = Vec::new();
    if let Some(g) = grads {
        let keys: BTreeSet<&String> = found.iter().flatten().map(|(k, _)| k).collect();
        let others: Vec<&String> = g.keys().filter(|k| !keys.contains(k)).collect();
        let (intermediate, unknown): (Vec<&String>, Vec<&String>) = others
            .into_iter()
            .partition(|k| is_intermediate_gradient(k));
        noted.extend(intermediate.into_iter().cloned());
        if !unknown.is_empty() {
            return Err(Error::Option(format!(
                "the gradients hold {}, which is no parameter's gradient (the parameters: {})",
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                network
                    .tensors()
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok((found, noted))
}
