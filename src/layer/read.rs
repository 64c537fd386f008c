//! A layer's check from named arrays (an npz file, a notebook's dicts): the op and its
//! hyperparameters from the settings line (`op=batchnorm eps=1e-5`), the inputs under the
//! course's argument names, `dout`, and the gradients `d` + input name.

use std::collections::BTreeMap;
use std::path::Path;

use super::LayerInput;
use crate::error::{Error, Result};
use crate::io::NamedArrays;
use crate::ops::{self, Role};
use crate::options::Precision;

/// The op and its hyperparameters, as a settings line gives them; flags override a
/// file's line key by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerSettings {
    pub op: Option<String>,
    pub hparams: BTreeMap<String, f64>,
}

impl LayerSettings {
    /// `op=dropout p=0.6` (spaces, commas or semicolons between the words).
    pub fn parse_line(line: &str) -> Result<Self> {
        let mut settings = LayerSettings::default();
        for word in line
            .split([' ', ',', ';', '\n', '\t'])
            .filter(|w| !w.trim().is_empty())
        {
            let (key, value) = word.split_once('=').ok_or_else(|| {
                Error::Option(format!(
                    "the setting '{word}' is not key=value (like op=batchnorm or eps=1e-5)"
                ))
            })?;
            let key = key.trim().trim_start_matches('-').replace('-', "_");
            if key == "op" {
                settings.op = Some(value.trim().to_string());
                continue;
            }
            let v: f64 = value
                .trim()
                .parse()
                .map_err(|_| Error::Option(format!("the setting {key}={value}: not a number")))?;
            settings.hparams.insert(key, v);
        }
        Ok(settings)
    }

    /// `self`, with what it leaves unset taken from `under` (a file's settings).
    pub fn over(&self, under: &LayerSettings) -> LayerSettings {
        let mut hparams = under.hparams.clone();
        hparams.extend(self.hparams.clone());
        LayerSettings {
            op: self.op.clone().or_else(|| under.op.clone()),
            hparams,
        }
    }
}

/// The layer's check held in the npz file at `path`, with `overrides` over its own
/// settings line.
pub fn read_layer_npz(path: &Path, overrides: &LayerSettings) -> Result<LayerInput> {
    let (arrays, own) = crate::io::read_all_arrays(path)?;
    let settings = match own {
        Some(line) => overrides.over(&LayerSettings::parse_line(&line)?),
        None => overrides.clone(),
    };
    layer_input(
        arrays,
        &settings,
        &format!("gradients from {}", path.display()),
    )
}

/// The layer's check from `arrays` under `settings`; `source` names the gradients.
pub fn layer_input(
    arrays: NamedArrays,
    settings: &LayerSettings,
    source: &str,
) -> Result<LayerInput> {
    let name = settings.op.as_deref().ok_or_else(|| {
        Error::Option(format!(
            "no op named: say which layer these arrays are (op=batchnorm in the settings saved with them, or given with the check): one of {}",
            ops::OPS.join(", ")
        ))
    })?;
    // deeplearning.ai's conv and pools take A_prev, channels last: the names say which.
    let channels_last = ["conv", "max_pool", "avg_pool"].contains(&name)
        && arrays.contains_key("A_prev")
        && !arrays.contains_key("x");
    let op: Box<dyn ops::LayerOp> = if channels_last {
        Box::new(ops::channels_last::ChannelsLast::new(
            name,
            &settings.hparams,
        )?)
    } else {
        ops::op(name, &settings.hparams)?
    };
    let mut inputs = ops::Arrays::new();
    let mut float32 = Vec::new();
    let mut used = Vec::new();
    let mut forward_f32 = true;
    for spec in op.inputs() {
        let (array, precision) = arrays.get(spec.name).cloned().ok_or_else(|| {
            Error::Missing(format!(
                "input {}: {name} takes {}; the input holds {}",
                spec.name,
                op.inputs()
                    .iter()
                    .map(|i| i.name)
                    .collect::<Vec<_>>()
                    .join(", "),
                arrays.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        if spec.role == Role::Differentiable {
            forward_f32 &= precision == Precision::F32;
        }
        inputs.insert(
            spec.name.to_string(),
            array.as_standard_layout().into_owned(),
        );
        used.push(spec.name.to_string());
    }
    // deeplearning.ai names the upstream gradient after what it is (dZ for a conv's
    // output, dA for a pool's, da_next for a cell's).
    let alias = op
        .upstream_aliases()
        .iter()
        .copied()
        .find(|k| arrays.contains_key(*k));
    let upstream = match (arrays.contains_key("dout"), alias) {
        (false, Some(k)) => k,
        _ => "dout",
    };
    let dout = match arrays.get(upstream) {
        None if !op.outputs().is_empty() => Some(joined_upstream(op.as_ref(), &arrays, &mut used)?),
        Some(_) if !op.outputs().is_empty() => {
            return Err(Error::Option(format!(
                "{name} has outputs {}: give their upstream gradients {} rather than one dout",
                op.outputs().join(", "),
                op.outputs()
                    .iter()
                    .map(|o| format!("d{o}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
        Some((d, _)) if op.takes_dout() => {
            used.push(upstream.into());
            Some(d.as_standard_layout().into_owned())
        }
        Some(_) => {
            return Err(Error::Option(format!(
            "{name} is a loss: its output is the loss itself, so it takes no dout; leave dout out"
        )))
        }
        None => None,
    };
    let mut grads = BTreeMap::new();
    for spec in op.inputs() {
        let key = format!("d{}", spec.name);
        let Some((g, precision)) = arrays.get(&key) else {
            continue;
        };
        if spec.role != Role::Differentiable {
            return Err(Error::Option(format!(
                "{key} is given, but {} is {} and has no gradient",
                spec.name,
                if spec.role == Role::Labels {
                    "integer labels"
                } else {
                    "a mask"
                }
            )));
        }
        if *precision == Precision::F32 {
            float32.push(key.clone());
        }
        grads.insert(key.clone(), g.as_standard_layout().into_owned());
        used.push(key);
    }
    if forward_f32 && float32.is_empty() && !grads.is_empty() {
        float32.extend(
            op.inputs()
                .iter()
                .filter(|i| i.role == Role::Differentiable)
                .map(|i| i.name.to_string()),
        );
    }
    let unused = arrays
        .keys()
        .filter(|k| !used.contains(k))
        .cloned()
        .collect();
    Ok(LayerInput {
        op,
        arrays: inputs,
        dout,
        grads,
        float32,
        source: source.to_string(),
        unused,
    })
}

/// The upstream gradients of an op with several outputs (`dnext_h`, `dnext_c`), each
/// required and shaped alike, joined along the last axis as the op's output is.
fn joined_upstream(
    op: &dyn crate::ops::LayerOp,
    arrays: &crate::io::NamedArrays,
    used: &mut Vec<String>,
) -> Result<ndarray::ArrayD<f64>> {
    let mut parts = Vec::new();
    for output in op.outputs() {
        let key = format!("d{output}");
        let (d, _) = arrays.get(&key).ok_or_else(|| {
            Error::Missing(format!(
                "{key}: {} has outputs {}, and each upstream gradient is needed (np.zeros_like for one that is zero)",
                op.describe(),
                op.outputs().join(", ")
            ))
        })?;
        used.push(key);
        parts.push(d.as_standard_layout().into_owned());
    }
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let axis = ndarray::Axis(parts[0].ndim().saturating_sub(1));
    ndarray::concatenate(axis, &views)
        .map(|joined| joined.as_standard_layout().into_owned())
        .map_err(|_| {
            Error::Shape(format!(
                "the upstream gradients {} have shapes {}: each is shaped like its output",
                op.outputs()
                    .iter()
                    .map(|o| format!("d{o}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                parts
                    .iter()
                    .map(|p| format!("{:?}", p.shape()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}
