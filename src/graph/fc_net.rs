//! cs231n's `FullyConnectedNet` with `normalization='batchnorm'|'layernorm'`, as a
//! sequence: affine → norm → activation [→ dropout] per hidden layer, then affine →
//! softmax loss; parameters `W1, b1, gamma1, beta1, …, WL, bL` with examples in rows
//! (`X` (N, D), `W` (in, out)), integer labels `y`, gradients keyed like the parameters
//! (cs231n's `grads`) or as `dW1`.

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

/// Reads the network of `arrays` (a file's or a notebook's) with `settings`, and its
/// gradients from `grads` (keyed like the parameters or `dW1`) or from `arrays` itself
/// (`dW1`, `W1_grad`, `grad_W1`); `label` names the gradients' source.
pub fn read_fc_net(
    arrays: &NamedArrays,
    grads: Option<&NamedArrays>,
    settings: &ModelOptions,
    label: &str,
) -> Result<NetworkInput> {
    let norm = settings.normalization.ok_or_else(|| {
        Error::Option("a network of ops needs its normalization (batchnorm or layernorm)".into())
    })?;
    if settings.layout == Some(DataLayout::Columns) {
        return Err(Error::Option(
            "a network with normalisation layers is read with examples in rows (cs231n's X (N, D), W (in, out)); layout=columns is not supported with it".into(),
        ));
    }
    if !matches!(settings.loss, None | Some(Loss::Softmax)) {
        return Err(Error::Option(format!(
            "a network with normalisation layers ends in softmax (cs231n's FullyConnectedNet); loss={} is not supported with it yet",
            settings.loss.map(Loss::as_str).unwrap_or_default()
        )));
    }
    if settings.reduction == Some(Reduction::Sum) {
        return Err(Error::Option(
            "a network with normalisation layers averages its loss over the examples (reduction=mean)".into(),
        ));
    }
    let names: BTreeSet<String> = arrays.keys().cloned().collect();
    let depth = crate::io::layer_count(&names)?;
    let get = |name: &str| {
        arrays
            .get(name)
            .map(|(a, _)| a)
            .ok_or_else(|| Error::MissingArray(name.into()))
    };
    let mut used: BTreeSet<String> = BTreeSet::new();
    let x_name = crate::io::data_name(&names, "X")?;
    let y_name = crate::io::data_name(&names, "Y")?;
    let x = get(x_name)?;
    if x.ndim() < 2 || x.shape()[0] == 0 {
        return Err(Error::Shape(format!(
            "{x_name} has shape {:?}: examples in rows, (N, D) or (N, d1, …, dk)",
            x.shape()
        )));
    }
    let n = x.shape()[0];
    let d: usize = x.shape()[1..].iter().product();
    let x = x
        .clone()
        .into_shape_with_order(IxDyn(&[n, d]))
        .map_err(|e| Error::Shape(e.to_string()))?;
    used.extend([x_name.to_string(), y_name.to_string()]);

    let masks = match settings.keep_prob {
        Some(_) => Some(
            (1..depth)
                .map(|l| {
                    let name = format!("D{l}");
                    used.insert(name.clone());
                    arrays.get(&name).map(|(a, _)| a.clone()).ok_or_else(|| {
                        Error::MissingMasks(format!(
                            "{name} is not in the input; dropout needs one mask per hidden layer, D1 … D{}, each (N, width)",
                            depth - 1
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        None => None,
    };
    let model = settings.resolve(
        depth,
        masks.as_ref().map(|m| {
            m.iter()
                .map(|_| ndarray::Array2::<f64>::zeros((0, 0)))
                .collect()
        }),
    )?;
    let p = &model.penalty;
    if !(p.weight_l1.is_zero() && p.bias_l2.is_zero() && p.bias_l1.is_zero()) {
        return Err(Error::Option(
            "a network with normalisation layers takes an L2 penalty on its weights (l2 or weight_l2) only".into(),
        ));
    }
    let weight_l2 = |l: usize| p.weight_l2.at(l) + p.l2 / (2.0 * n as f64);

    let mut network = Network {
        nodes: Vec::new(),
        tensors: Vec::new(),
        input: x,
        description: String::new(),
        widths: vec![d],
        examples: n,
    };
    let mut width = d;
    for l in 1..=depth {
        let w_name = format!("W{l}");
        let b_name = format!("b{l}");
        let w = get(&w_name)?;
        if w.ndim() != 2 || w.shape()[0] != width {
            return Err(Error::Shape(format!(
                "{w_name} has shape {:?} but its input has {width} features: W{l} is ({width}, out), examples in rows",
                w.shape()
            )));
        }
        let out = w.shape()[1];
        let vector = |name: &str| -> Result<ArrayD<f64>> {
            let v = get(name)?;
            if v.len() != out || !(v.ndim() == 1 || (v.ndim() == 2 && v.shape()[0] == 1)) {
                return Err(Error::Shape(format!(
                    "{name} has shape {:?}: layer {l} has {out} units, so {name} is ({out},)",
                    v.shape()
                )));
            }
            Ok(v.clone()
                .into_shape_with_order(IxDyn(&[out]))
                .expect("size"))
        };
        let b = vector(&b_name)?;
        let node = network.nodes.len();
        network.nodes.push(op_node("affine", &[], Arrays::new())?);
        network.push(w_name, w.clone(), node, "w", weight_l2(l - 1));
        network.push(b_name, b, node, "b", 0.0);
        network.widths.push(out);
        width = out;
        if l == depth {
            for stray in [format!("gamma{l}"), format!("beta{l}")] {
                if names.contains(&stray) {
                    return Err(Error::Network(format!(
                        "{stray} belongs to the output layer, which has no normalisation (gamma1 … gamma{}, one per hidden layer)",
                        depth - 1
                    )));
                }
            }
            break;
        }
        let node = network.nodes.len();
        network
            .nodes
            .push(op_node(norm.as_str(), &[], Arrays::new())?);
        let (g_name, beta_name) = (format!("gamma{l}"), format!("beta{l}"));
        let (gamma, beta) = (vector(&g_name)?, vector(&beta_name)?);
        if network.nodes[node].op.column_shift_invariant() {
            let bias = network.tensors.len() - 1;
            network.tensors[bias].invariant = Some(format!(
                "the cost does not depend on b{l}: {} removes each column's mean, and b{l} shifts columns",
                norm.as_str()
            ));
        }
        network.push(g_name, gamma, node, "gamma", 0.0);
        network.push(beta_name, beta, node, "beta", 0.0);
        match model.hidden[l - 1] {
            Activation::Identity => {}
            Activation::Relu => network.nodes.push(op_node("relu", &[], Arrays::new())?),
            Activation::LeakyRelu(a) => {
                network
                    .nodes
                    .push(op_node("leaky_relu", &[("alpha", a)], Arrays::new())?)
            }
            Activation::Tanh => network.nodes.push(op_node("tanh", &[], Arrays::new())?),
            Activation::Sigmoid => network.nodes.push(op_node("sigmoid", &[], Arrays::new())?),
        }
        if let (Some(masks), Some(p)) = (&masks, settings.keep_prob) {
            let mask = &masks[l - 1];
            if mask.shape() != [n, out] {
                return Err(Error::Shape(format!(
                    "D{l} has shape {:?} but layer {l}'s activations are ({n}, {out})",
                    mask.shape()
                )));
            }
            let fixed = Arrays::from([("mask".to_string(), mask.clone())]);
            network.nodes.push(op_node("dropout", &[("p", p)], fixed)?);
        }
    }
    let y = labels(get(y_name)?, y_name, n, width)?;
    network.nodes.push(op_node(
        "softmax_loss",
        &[],
        Arrays::from([("y".to_string(), y)]),
    )?);
    network.description = describe(&model.hidden, norm, settings.keep_prob, depth);
    used.extend(network.tensors.iter().map(|t| t.name.clone()));
    used.insert(SETTINGS_ARRAY.into());

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

impl Network {
    fn push(
        &mut self,
        name: String,
        value: ArrayD<f64>,
        node: usize,
        argument: &'static str,
        penalty: f64,
    ) {
        self.tensors.push(Tensor {
            name,
            value: value.as_standard_layout().into_owned(),
            node,
            argument,
            penalty,
            invariant: None,
        });
    }
}

/// A node of op `name` with its hyperparameters and fixed arrays.
fn op_node(name: &str, hparams: &[(&str, f64)], fixed: Arrays) -> Result<Node> {
    let hparams: BTreeMap<String, f64> = hparams.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    Ok(Node {
        op: ops::op(name, &hparams)?,
        fixed,
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

/// `affine → batchnorm → relu → dropout p=0.5 ×2 → affine → softmax + cross-entropy (mean)`.
fn describe(hidden: &[Activation], norm: Normalization, keep: Option<f64>, depth: usize) -> String {
    let layer = |a: &Activation| {
        let mut parts = vec!["affine".to_string(), norm.as_str().to_string()];
        if *a != Activation::Identity {
            parts.push(a.to_string());
        }
        if let Some(p) = keep {
            parts.push(format!("dropout p={}", ops::number(p)));
        }
        parts.join(" → ")
    };
    let mut groups: Vec<(String, usize)> = Vec::new();
    for a in hidden.iter().take(depth - 1) {
        let text = layer(a);
        match groups.last_mut() {
            Some((last, count)) if *last == text => *count += 1,
            _ => groups.push((text, 1)),
        }
    }
    let mut words: Vec<String> = groups
        .into_iter()
        .map(|(t, k)| if k > 1 { format!("({t}) ×{k}") } else { t })
        .collect();
    words.push("affine → softmax + cross-entropy (mean)".into());
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
                "{key} is float32: the float32 round-off of a normalised network's backward is not bounded yet, so its gradients are judged in float64 only; compute the backward in float64 (or check each layer's backward with the layer check)"
            )));
        }
        if value.len() != tensor.value.len() {
            return Err(Error::Shape(format!(
                "{key} has shape {:?} but {} has {:?}: a gradient is shaped like its parameter",
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
