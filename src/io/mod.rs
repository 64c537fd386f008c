//! `.npz` input and output, in the course's layout (examples are columns; `W_l` is
//! `n_l × n_(l−1)`, `b_l` is `n_l × 1`, gradients carry a `d` prefix) or with examples in
//! rows (`X` is `m × n0`, `W_l` is `n_(l−1) × n_l`, `b_l` is `(n_l,)` or `1 × n_l`), which
//! the shapes decide unless told. A string array `gradcheck` may carry the model's settings
//! (`np.savez(..., gradcheck="loss=softmax l2=0.1")`, see [`ModelOptions::parse_line`]).
//! Inside, every array is held in the course's layout.
//!
//! Arrays may be float64 or float32; integer and bool arrays are converted to f64 (labels
//! saved from `np.array([1, 1, 0])` are int64). Anything else is refused by name.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek, Write};
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, Ix2};
mod guard;

use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpzError};

use crate::checker::GivenGradients;
use crate::error::{Error, Result};
use crate::model::{DataLayout, Layer, Loss, Mlp, ModelOptions, TensorKind};
use crate::options::Precision;
use crate::problem::{ensure_finite, Problem};

/// What an input file holds: the problem, and the gradients to check if it carries them.
#[derive(Clone, Debug)]
pub struct NpzInput {
    pub problem: Problem,
    /// The gradients found under any of [`gradient_names`]' spellings, when there are some.
    pub gradients: Option<GivenGradients>,
    /// Arrays of the file that the check does not use.
    pub unused: Vec<String>,
    /// Every array name in the file.
    pub names: Vec<String>,
    /// How arrays were read where there was a choice (masks saved divided by keep_prob).
    pub notes: Vec<String>,
    /// Whether X and every parameter were stored as float32: the forward pass that made
    /// the gradients ran in float32 whatever their arrays' dtype.
    pub float32_forward: bool,
}

impl NpzInput {
    /// Gradients read for this input (here or from a second source), told how its forward
    /// pass ran.
    pub fn adopt(&self, mut gradients: GivenGradients) -> GivenGradients {
        gradients.float32_forward = self.float32_forward;
        gradients
    }
}

/// The names a gradient of tensor `W1` may have, in the order they are looked for: the
/// course's `dW1`, `W1_grad`, `grad_W1`.
pub fn gradient_names(tensor: &str) -> [String; 3] {
    [
        format!("d{tensor}"),
        format!("{tensor}_grad"),
        format!("grad_{tensor}"),
    ]
}

/// The name of the string array that carries a file's model settings.
pub const SETTINGS_ARRAY: &str = "gradcheck";

/// Reads a network, its data and optionally its gradients from an npz file, with the
/// model its own settings describe.
pub fn read_npz(path: &Path) -> Result<NpzInput> {
    read_npz_with(path, &ModelOptions::default())
}

/// [`read_npz`] with `overrides` (flags) over the file's own settings.
pub fn read_npz_with(path: &Path, overrides: &ModelOptions) -> Result<NpzInput> {
    read_npz_from(open_npz(path)?, &path.display().to_string(), overrides)
}

/// The archive behind `reader`, its headers checked before anything is read
/// (`guard`), and the names of its arrays.
fn open_archive<R: Read + Seek>(
    mut reader: R,
    label: &str,
) -> Result<(NpzReader<R>, BTreeSet<String>, Vec<String>)> {
    let npz_error = |reason: String| Error::Npz {
        path: label.to_string(),
        reason,
    };
    let objects =
        guard::check_archive(&mut reader).map_err(|reason| npz_error(one_line(&reason)))?;
    reader
        .rewind()
        .map_err(|e| npz_error(format!("cannot re-read: {e}")))?;
    let mut npz =
        NpzReader::new(reader).map_err(|e| npz_error(format!("not an npz (zip) archive: {e}")))?;
    let names = npz
        .names()
        .map_err(|e| npz_error(e.to_string()))?
        .into_iter()
        .collect();
    Ok((npz, names, objects))
}

/// Opens `path` for reading as an npz archive, saying plainly what it is when it is not:
/// absent, a directory, or a single `.npy` array (`np.save` instead of `np.savez`).
fn open_npz(path: &Path) -> Result<File> {
    let label = path.display().to_string();
    let io = |cause| Error::Io {
        path: label.clone(),
        cause,
    };
    if path.is_dir() {
        return Err(Error::Npz {
            path: label,
            reason: "is a directory, not an npz file".into(),
        });
    }
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 6];
    let read = file.read(&mut magic).map_err(io)?;
    if magic[..read] == *b"\x93NUMPY" {
        return Err(Error::Npz {
            path: label,
            reason: "is a single .npy array (np.save); gradcheck reads an .npz archive of named arrays: np.savez('net.npz', X=X, Y=Y, W1=W1, b1=b1, …, dW1=dW1, …)".into(),
        });
    }
    if read >= 2 && magic[0] == 0x80 && (2..=5).contains(&magic[1]) {
        return Err(Error::Npz {
            path: label,
            reason: "is a Python pickle (pickle.dump), not an npz archive: save the arrays by name, np.savez('net.npz', X=X, Y=Y, **parameters, **grads)".into(),
        });
    }
    file.rewind().map_err(io)?;
    Ok(file)
}

/// Same as [`read_npz`], from bytes in memory (`label` names them in errors).
pub fn read_npz_bytes(bytes: &[u8], label: &str) -> Result<NpzInput> {
    read_npz_from(Cursor::new(bytes), label, &ModelOptions::default())
}

/// Every numeric array of the npz file at `path`, as f64 with the precision it was stored
/// in, and the text of its settings array (`gradcheck`) if it has one: for inputs that are
/// no network (a layer's).
pub fn read_all_arrays(path: &Path) -> Result<(NamedArrays, Option<String>)> {
    let label = path.display().to_string();
    let mut reader = open_npz(path)?;
    let settings =
        guard::string_array(&mut reader, SETTINGS_ARRAY).map_err(|reason| Error::Npz {
            path: label.clone(),
            reason,
        })?;
    reader.rewind().map_err(|e| Error::Npz {
        path: label.clone(),
        reason: format!("cannot re-read: {e}"),
    })?;
    let (mut npz, names, objects) = open_archive(reader, &label)?;
    if let Some(first) = objects.first() {
        return Err(Error::Npz {
            path: label,
            reason: format!(
                "{first} holds a pickled Python object (a dict?), which is never read: save its arrays by name, np.savez(f, **arrays)"
            ),
        });
    }
    let mut source = NpzSource {
        npz: &mut npz,
        label: &label,
    };
    let mut arrays = NamedArrays::new();
    for name in names.iter().filter(|n| n.as_str() != SETTINGS_ARRAY) {
        let (array, precision) = source.read(name)?;
        ensure_finite(name, array.view())?;
        arrays.insert(name.clone(), (array, precision));
    }
    Ok((arrays, settings))
}

/// The model settings of the npz file at `path` (its `gradcheck` array, read alone), with
/// `overrides` over them: what decides how the rest of it is read.
pub fn read_settings(path: &Path, overrides: &ModelOptions) -> Result<ModelOptions> {
    let mut reader = open_npz(path)?;
    let own = guard::string_array(&mut reader, SETTINGS_ARRAY).map_err(|reason| Error::Npz {
        path: path.display().to_string(),
        reason,
    })?;
    Ok(match own {
        Some(line) => overrides.over(&ModelOptions::parse_line(&line)?),
        None => overrides.clone(),
    })
}

/// Arrays by name, as f64, each with the precision it was stored in.
pub type NamedArrays = std::collections::BTreeMap<String, (ArrayD<f64>, Precision)>;

impl MemoryArrays {
    /// The arrays by name, each checked finite.
    pub fn into_named(self) -> Result<NamedArrays> {
        for (name, (array, _)) in &self.arrays {
            ensure_finite(name, array.view())?;
        }
        Ok(self.arrays)
    }
}

fn read_npz_from<R: Read + Seek>(
    mut reader: R,
    label: &str,
    overrides: &ModelOptions,
) -> Result<NpzInput> {
    let own = guard::string_array(&mut reader, SETTINGS_ARRAY).map_err(|reason| Error::Npz {
        path: label.to_string(),
        reason,
    })?;
    let settings = match &own {
        Some(line) => overrides.over(&ModelOptions::parse_line(line)?),
        None => overrides.clone(),
    };
    reader.rewind().map_err(|e| Error::Npz {
        path: label.to_string(),
        reason: format!("cannot re-read: {e}"),
    })?;
    let (mut npz, names, objects) = open_archive(reader, label)?;
    let mut source = NpzSource {
        npz: &mut npz,
        label,
    };
    read_input(&mut source, (&names, label), settings, own.is_some())
        .map_err(|e| with_present(e, &names, &objects))
}

/// The names the course gives its flattened vectors (`dictionary_to_vector`,
/// `gradients_to_vector`).
pub fn is_flat_vector(name: &str) -> bool {
    ["parameters_values", "grad", "gradapprox", "theta", "values"].contains(&name)
}

/// What an input without gradients holds instead, when it is the course's flat gradient
/// vector (empty otherwise): the fix, for the "no gradients found" errors.
pub fn flat_gradient_hint(names: &[String]) -> String {
    names
        .iter()
        .find(|n| is_flat_vector(n) && n.as_str() != "parameters_values")
        .map(|n| format!(" ({n} looks like the course's gradients_to_vector vector, which carries no shapes: save the grads dict itself, **grads)"))
        .unwrap_or_default()
}

/// A missing network or data array, with what the input holds instead and the likely fix:
/// pickled dicts saved as objects (`params=params`), or layers named otherwise.
fn with_present(e: Error, names: &BTreeSet<String>, objects: &[String]) -> Error {
    let Error::MissingArray(name) = e else {
        return e;
    };
    if !(name == "W1" || name == "X" || name == "Y") {
        return Error::MissingArray(name);
    }
    let present = if names.is_empty() {
        "no arrays".to_string()
    } else {
        names
            .iter()
            .map(|n| n.escape_debug().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let hint = if !objects.is_empty() {
        format!(
            "; {} hold pickled Python objects (dicts?), which are never read: save their arrays by name, np.savez(f, X=X, Y=Y, **params, **grads)",
            objects.join(", ")
        )
    } else if names.iter().any(|n| n.contains("weights")) {
        "; name the layers' arrays W1, b1, W2, … (and their gradients dW1, db1, …)".to_string()
    } else if names.iter().any(|n| is_flat_vector(n)) {
        "; the course's dictionary_to_vector vectors carry no shapes: save the dicts themselves, np.savez(f, X=X, Y=Y, **parameters, **grads)".to_string()
    } else {
        String::new()
    };
    Error::MissingNamed {
        name,
        present,
        hint,
    }
}

/// Arrays held in memory (a notebook's dicts), by name, each with the precision it was
/// stored in: the same reading as an npz file's.
#[derive(Clone, Debug, Default)]
pub struct MemoryArrays {
    arrays: std::collections::BTreeMap<String, (ArrayD<f64>, Precision)>,
}

impl MemoryArrays {
    /// Adds `array` as `name`; `precision` says whether it was float32.
    pub fn insert(&mut self, name: impl Into<String>, array: ArrayD<f64>, precision: Precision) {
        self.arrays.insert(name.into(), (array, precision));
    }

    fn names(&self) -> BTreeSet<String> {
        self.arrays.keys().cloned().collect()
    }
}

impl ArraySource for MemoryArrays {
    fn read(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)> {
        self.arrays
            .get(name)
            .cloned()
            .ok_or_else(|| Error::MissingArray(name.into()))
    }
}

/// A network, its data and optionally its gradients from arrays in memory, the model
/// given by `settings` (as a file's flags over its own settings).
/// `label` names them in the report ("gradients from {label}").
pub fn read_arrays(
    mut arrays: MemoryArrays,
    label: &str,
    settings: &ModelOptions,
) -> Result<NpzInput> {
    let names = arrays.names();
    read_input(&mut arrays, (&names, label), settings.clone(), false)
        .map_err(|e| with_present(e, &names, &[]))
}

/// The gradients of `net` from arrays in memory keyed like the parameters (`W1`, cs231n's
/// `grads`) or as in [`gradient_names`] (`dW1`, the course's `grads`).
pub fn read_gradient_arrays(
    mut arrays: MemoryArrays,
    net: &Mlp,
    label: &str,
) -> Result<NpzGradients> {
    let names = arrays.names();
    gradients_of(&mut arrays, &names, net, label)
}

/// Where arrays come from: an npz archive or memory.
trait ArraySource {
    /// Array `name` as f64, and whether it was stored as float32 (f32) or exactly (f64).
    fn read(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)>;
}

/// The arrays of an open npz archive.
struct NpzSource<'a, R: Read + Seek> {
    npz: &'a mut NpzReader<R>,
    label: &'a str,
}

/// Reads the problem and the gradients it carries from `source`, whose arrays are `names`.
fn read_input(
    source: &mut dyn ArraySource,
    (names, label): (&BTreeSet<String>, &str),
    settings: ModelOptions,
    has_settings_array: bool,
) -> Result<NpzInput> {
    let mut arrays = Arrays {
        source,
        names,
        label,
        float32: BTreeSet::new(),
    };

    refuse_foreign_layers(names)?;
    let depth = layer_count(names)?;
    let mut weights = Vec::with_capacity(depth);
    for l in 1..=depth {
        weights.push(arrays.matrix(&format!("W{l}"))?);
    }
    let (x_name, y_name) = (data_name(names, "X")?, data_name(names, "Y")?);
    let x = arrays.matrix(x_name)?;
    let data_layout = match settings.layout {
        Some(layout) => layout,
        None => decide_layout(&x, &weights, &mut arrays)?,
    };
    let mut layers = Vec::with_capacity(depth);
    for (l, w) in weights.into_iter().enumerate() {
        let b = arrays.vector(&format!("b{}", l + 1))?;
        let w = match data_layout {
            DataLayout::Columns => w,
            DataLayout::Rows => w.reversed_axes().as_standard_layout().into_owned(),
        };
        layers.push(Layer { w, b });
    }
    let net = Mlp::new(layers)
        .map_err(|e| in_layout(e, data_layout))?
        .in_layout(data_layout);
    let x = match data_layout {
        DataLayout::Columns => x,
        DataLayout::Rows => x.reversed_axes().as_standard_layout().into_owned(),
    };
    let loss = settings.loss.unwrap_or_default();
    let y = arrays.labels(y_name, (net.output_width(), x.ncols()), loss, data_layout)?;
    let mut used: BTreeSet<String> = [x_name, y_name].into_iter().map(String::from).collect();
    let mut notes = Vec::new();
    let masks = match settings.keep_prob {
        Some(keep_prob) => {
            let masks = (1..depth)
                .map(|l| {
                    let name = format!("D{l}");
                    if !names.contains(&name) {
                        return Err(Error::MissingMasks(format!(
                            "{name} is not in the input; dropout needs one mask per hidden layer, D1 … D{} for this network's {}",
                            depth - 1,
                            depth - 1
                        )));
                    }
                    let d = arrays.matrix(&name)?;
                    used.insert(name.clone());
                    let (d, note) = unscaled_mask(&name, d, keep_prob);
                    notes.extend(note);
                    Ok(match data_layout {
                        DataLayout::Columns => d,
                        DataLayout::Rows => d.reversed_axes().as_standard_layout().into_owned(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Some(masks)
        }
        None => {
            let masks: Vec<&str> = (1..depth)
                .map(|l| format!("D{l}"))
                .filter(|n| names.contains(n))
                .map(|n| names.get(&n).expect("present").as_str())
                .collect();
            if !masks.is_empty() {
                return Err(Error::Option(format!(
                    "{} look like dropout masks, but no keep probability is set: give keep_prob, the one they were drawn with",
                    masks.join(", ")
                )));
            }
            None
        }
    };
    let model = settings.resolve(depth, masks)?;
    let problem = Problem::with_model(net, model, x, y)?;
    if has_settings_array {
        used.insert(SETTINGS_ARRAY.into());
    }
    used.extend((1..=depth).flat_map(|l| [format!("W{l}"), format!("b{l}")]));
    let float32_forward = std::iter::once(x_name.to_string())
        .chain((1..=depth).flat_map(|l| [format!("W{l}"), format!("b{l}")]))
        .all(|name| arrays.float32.contains(&name));
    let gradients = arrays.gradients(problem.net(), false)?.map(|mut g| {
        g.float32_forward = float32_forward;
        g
    });
    if let Some(g) = &gradients {
        used.extend(g.arrays.iter().map(|(_, a)| a.clone()));
    }
    Ok(NpzInput {
        float32_forward,
        problem,
        gradients,
        unused: names
            .iter()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect(),
        names: names.iter().cloned().collect(),
        notes,
    })
}

/// The name of the data array `upper` (`X`, `Y`) in `names`: as given, or in lower case
/// as cs231n names its labels (`y`); both at once is ambiguous.
pub(crate) fn data_name(names: &BTreeSet<String>, upper: &'static str) -> Result<&'static str> {
    let lower: &'static str = match upper {
        "X" => "x",
        _ => "y",
    };
    match (names.contains(upper), names.contains(lower)) {
        (true, true) => Err(Error::Option(format!(
            "both {upper} and {lower} are given: keep one of them"
        ))),
        (false, true) => Ok(lower),
        _ => Ok(upper),
    }
}

/// A dropout mask as 0/1: as saved, or — saved already divided by `keep_prob` (cs231n's and
/// NNFS's `mask / p`, values 0 and 1/p) — times `keep_prob`, and a note saying so. Any
/// other values are left for the problem's check to refuse.
fn unscaled_mask(name: &str, d: Array2<f64>, keep_prob: f64) -> (Array2<f64>, Option<String>) {
    let scaled = 1.0 / keep_prob;
    let is_scaled = keep_prob < 1.0
        && d.iter().any(|&v| v != 0.0)
        && d.iter()
            .all(|&v| v == 0.0 || ((v - scaled) / scaled).abs() <= 1e-6);
    if !is_scaled {
        return (d, None);
    }
    let note = format!(
        "{name} holds 0 and 1/keep_prob ({scaled}): read as the mask already divided by keep_prob"
    );
    (d.mapv(|v| f64::from(u8::from(v != 0.0))), Some(note))
}

/// Reads the gradients of `net` from a file of their own (cs231n's `grads` dict saved with
/// `np.savez`): arrays named like the parameters (`W1`, `b1`) or as in [`gradient_names`].
pub fn read_gradients(path: &Path, net: &Mlp) -> Result<NpzGradients> {
    let label = path.display().to_string();
    let (mut npz, names, _) = open_archive(open_npz(path)?, &label)?;
    let mut source = NpzSource {
        npz: &mut npz,
        label: &label,
    };
    gradients_of(&mut source, &names, net, &label)
}

/// The gradients of `net` in `source` (whose arrays are `names`), named like the
/// parameters or as in [`gradient_names`], and the arrays they leave unused.
fn gradients_of(
    source: &mut dyn ArraySource,
    names: &BTreeSet<String>,
    net: &Mlp,
    label: &str,
) -> Result<NpzGradients> {
    let mut arrays = Arrays {
        source,
        names,
        label,
        float32: BTreeSet::new(),
    };
    refuse_foreign_layers(names)?;
    let gradients = arrays.gradients(net, true)?;
    let used: BTreeSet<&String> = gradients
        .iter()
        .flat_map(|g| g.arrays.iter().map(|(_, a)| a))
        .collect();
    Ok(NpzGradients {
        unused: names
            .iter()
            .filter(|n| !used.contains(n))
            .cloned()
            .collect(),
        names: names.iter().cloned().collect(),
        gradients,
        float32_forward: false,
    })
}

/// What a file holds besides the network: its gradients if any, the arrays the check
/// does not use, and every array's name.
#[derive(Clone, Debug)]
pub struct NpzGradients {
    pub gradients: Option<GivenGradients>,
    pub unused: Vec<String>,
    pub names: Vec<String>,
    /// As [`NpzInput::float32_forward`], for a file that holds the network too.
    pub float32_forward: bool,
}

/// Writes a problem (and optionally gradients) as [`read_npz`] reads it: in the
/// network's own layout, with the dropout masks and, unless the model is the exercise's,
/// its settings in the `gradcheck` array, so that the file describes itself.
pub fn write_npz(path: &Path, problem: &Problem, gradients: Option<&[f64]>) -> Result<()> {
    let io_err = |cause| Error::Io {
        path: path.display().to_string(),
        cause,
    };
    let file = File::create(path).map_err(io_err)?;
    let mut npz = NpzWriter::new(BufWriter::new(file));
    let rows = problem.net().data_layout() == DataLayout::Rows;
    let npz_error = |e: ndarray_npy::WriteNpzError| Error::Npz {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    // Examples-by-units arrays (X, Y, masks) and weights, in the user's layout.
    let oriented = |a: Array2<f64>| if rows { a.reversed_axes() } else { a };
    let mut add = |name: &str, array: Array2<f64>| npz.add_array(name, &array).map_err(npz_error);
    add("X", oriented(problem.x().clone()))?;
    add("Y", oriented(problem.y().clone()))?;
    if let Some(d) = &problem.model().dropout {
        for (l, mask) in d.masks.iter().enumerate() {
            add(&format!("D{}", l + 1), oriented(mask.clone()))?;
        }
    }
    let bias = |b: Array1<f64>| {
        let n = b.len();
        if rows {
            b.into_shape_with_order((1, n)).expect("1 × n")
        } else {
            b.into_shape_with_order((n, 1)).expect("n × 1")
        }
    };
    let mut offset = 0;
    for (l, layer) in problem.net().layers().iter().enumerate() {
        let n = l + 1;
        add(&format!("W{n}"), oriented(layer.w.clone()))?;
        add(&format!("b{n}"), bias(layer.b.clone()))?;
        if let Some(g) = gradients {
            let (r, c) = layer.w.dim();
            let dw = Array2::from_shape_vec((r, c), g[offset..offset + r * c].to_vec())
                .expect("gradient slice has the weight's size");
            offset += r * c;
            let db = Array1::from(g[offset..offset + r].to_vec());
            offset += r;
            add(&format!("dW{n}"), oriented(dw))?;
            add(&format!("db{n}"), bias(db))?;
        }
    }
    let settings = settings_line(problem);
    let mut file = npz.finish().map_err(npz_error)?;
    file.flush().map_err(io_err)?;
    drop(file);
    if let Some(line) = settings {
        add_settings(path, &line)?;
    }
    Ok(())
}

/// Adds `line` to the npz archive at `path` as its settings (`gradcheck`) array, as
/// `np.savez(..., gradcheck=line)` writes it.
pub fn add_settings(path: &Path, line: &str) -> Result<()> {
    guard::append_string_array(path, SETTINGS_ARRAY, line).map_err(|reason| Error::Npz {
        path: path.display().to_string(),
        reason,
    })
}

/// The settings line that describes `problem`'s model and layout, `None` for the
/// exercise's model in the course's layout (which needs none).
pub fn settings_line(problem: &Problem) -> Option<String> {
    let model = problem.model();
    let layout = problem.net().data_layout();
    if model.is_classic() && model.penalty.is_none() && layout == DataLayout::Columns {
        return None;
    }
    Some(model.options(layout).to_line())
}

/// Which layout the shapes of `x` and the weights describe: the one whose widths chain
/// (X's features into W1, each layer's units into the next), decided by the biases' and
/// labels' orientation when both do; an error asking to say which when still ambiguous.
fn decide_layout(
    x: &Array2<f64>,
    weights: &[Array2<f64>],
    arrays: &mut Arrays<'_>,
) -> Result<DataLayout> {
    let chains = |layout: DataLayout| {
        let fan_in_out = |w: &Array2<f64>| match layout {
            DataLayout::Columns => (w.ncols(), w.nrows()),
            DataLayout::Rows => (w.nrows(), w.ncols()),
        };
        let features = match layout {
            DataLayout::Columns => x.nrows(),
            DataLayout::Rows => x.ncols(),
        };
        let mut width = features;
        weights.iter().all(|w| {
            let (i, o) = fan_in_out(w);
            let ok = i == width;
            width = o;
            ok
        })
    };
    match (chains(DataLayout::Columns), chains(DataLayout::Rows)) {
        (true, false) => Ok(DataLayout::Columns),
        (false, true) => Ok(DataLayout::Rows),
        // Neither chains: a transposed X where the weights chain alone, or the course's
        // layout, whose checks name the exact mismatch.
        (false, false) => {
            let weights_chain = |layout: DataLayout| {
                weights.windows(2).all(|pair| match layout {
                    DataLayout::Columns => pair[1].ncols() == pair[0].nrows(),
                    DataLayout::Rows => pair[1].nrows() == pair[0].ncols(),
                })
            };
            let w1 = &weights[0];
            for (layout, inputs, wanted) in [
                (
                    DataLayout::Columns,
                    w1.ncols(),
                    "n0 × m, examples in columns",
                ),
                (DataLayout::Rows, w1.nrows(), "m × n0, examples in rows"),
            ] {
                let transposed_fits = match layout {
                    DataLayout::Columns => x.ncols() == inputs,
                    DataLayout::Rows => x.nrows() == inputs,
                };
                if weights_chain(layout) && transposed_fits {
                    return Err(Error::Shape(format!(
                        "X has shape ({}, {}) but W1 takes {inputs} inputs ({wanted}): X transposed?",
                        x.nrows(),
                        x.ncols()
                    )));
                }
            }
            Ok(DataLayout::Columns)
        }
        (true, true) => {
            // A 2-D bias says which: (n, 1) columns, (1, n) rows.
            for l in 1..=weights.len() {
                if let Ok(shape) = arrays.shape(&format!("b{l}")) {
                    match shape.as_slice() {
                        [n, 1] if *n > 1 => return Ok(DataLayout::Columns),
                        [1, n] if *n > 1 => return Ok(DataLayout::Rows),
                        _ => {}
                    }
                }
            }
            Err(Error::Shape(
                "the shapes fit both layouts (examples in columns and in rows); say which with the layout setting (columns or rows)".into(),
            ))
        }
    }
}

/// A chaining error of a rows-layout network, named in that layout's terms.
fn in_layout(e: Error, layout: DataLayout) -> Error {
    match (e, layout) {
        (Error::Shape(text), DataLayout::Rows) => Error::Shape(format!(
            "{text} (read with examples in rows, W as n_in × n_out)"
        )),
        (e, _) => e,
    }
}

/// The base name of an array named like a gradient (`dgamma1`, `gamma1_grad`,
/// `grad_gamma1`): what it would be the gradient of.
fn gradient_of(name: &str) -> Option<&str> {
    name.strip_prefix("grad_")
        .or_else(|| name.strip_suffix("_grad"))
        .or_else(|| name.strip_prefix('d').filter(|rest| !rest.is_empty()))
}

/// Whether `name` is a normalisation layer's (`gamma1`, `beta1`, `running_mean1`,
/// `running_var1`, cs231n's names) or its gradient's.
fn is_normalisation(name: &str) -> bool {
    let base = gradient_of(name)
        .filter(|b| is_normalisation_parameter(b))
        .unwrap_or(name);
    is_normalisation_parameter(base)
}

fn is_normalisation_parameter(name: &str) -> bool {
    ["gamma", "beta", "running_mean", "running_var"]
        .iter()
        .any(|prefix| {
            name.strip_prefix(prefix)
                .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Gradients the courses return of what is not a parameter — `dZ1`, `dA1`, `dX`, `dout`
/// — which a check of the parameters' gradients does not use.
pub fn is_intermediate_gradient(name: &str) -> bool {
    let Some(base) = gradient_of(name) else {
        return false;
    };
    let numbered = |prefix: &str| {
        base.strip_prefix(prefix)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
    };
    ["Z", "A", "X", "x", "z", "a", "out", "inputs"]
        .iter()
        .any(|p| numbered(p))
}

/// What a report says of the arrays a check left out, `None` when there are none; names
/// that look like dropout masks under another spelling (`d1`, `mask1`, `dropout_mask_1`)
/// are named with the fix, since a mask left out changes every gradient.
pub fn unused_notice(unused: &[String]) -> Option<String> {
    if unused.is_empty() {
        return None;
    }
    let masks: Vec<(&str, String)> = unused
        .iter()
        .filter_map(|name| {
            let lower = name.to_ascii_lowercase();
            let digits = lower.trim_start_matches(|c: char| !c.is_ascii_digit());
            let stem = lower[..lower.len() - digits.len()].trim_end_matches('_');
            let numbered = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            (numbered && ["d", "mask", "dropout_mask", "dropout", "drop"].contains(&stem))
                .then(|| (name.as_str(), format!("D{digits}")))
        })
        .collect();
    let mut text = format!("not used: {}", unused.join(", "));
    if !masks.is_empty() {
        let (found, wanted): (Vec<&str>, Vec<String>) = masks.into_iter().unzip();
        text.push_str(&format!(
            " ({} {}: name {} {} and give the keep probability they were drawn with)",
            found.join(", "),
            if found.len() == 1 {
                "looks like a dropout mask"
            } else {
                "look like dropout masks"
            },
            if found.len() == 1 { "it" } else { "them" },
            wanted.join(", ")
        ));
    }
    Some(text)
}

/// Refuses arrays that belong to a layer this model does not have — a normalisation
/// layer's scale and shift (`gamma1`, `beta1`), its running statistics, or their
/// gradients — rather than checking the network without them, which would fail every
/// tensor of a correct backprop.
fn refuse_foreign_layers(names: &BTreeSet<String>) -> Result<()> {
    let foreign: Vec<&str> = names
        .iter()
        .map(String::as_str)
        .filter(|n| is_normalisation(n))
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::ForeignLayer(format!(
        "{}: a normalisation layer's parameters; say which normalisation the network has with the setting normalization=batchnorm or normalization=layernorm (cs231n's FullyConnectedNet), or check each layer's backward alone (the layer check, op=batchnorm)",
        foreign.join(", ")
    )))
}

/// Whether every given (non-NaN) value is one a float32 holds exactly, and some need more
/// than a dozen significant bits: gradients computed in float32 and saved as float64 (a
/// float64 backprop's values are float32-exact with probability 2⁻²⁹ each; small dyadic
/// values such as 0, 1 or 0.25 say nothing either way).
fn float32_valued(values: &[f64]) -> bool {
    let mut telling = false;
    for &v in values.iter().filter(|v| !v.is_nan()) {
        let single = v as f32;
        if f64::from(single) != v {
            return false;
        }
        // Significant bits beyond the twelfth of the float32 mantissa.
        telling |= single.to_bits() & 0x7ff != 0;
    }
    telling
}

/// Parser errors come with ASCII-art context over several lines; reports want one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Number of layers, from the `W<n>` / `b<n>` names, refusing gaps.
pub(crate) fn layer_count(names: &BTreeSet<String>) -> Result<usize> {
    let numbered = |prefix: &str| -> BTreeSet<usize> {
        names
            .iter()
            .filter_map(|n| n.strip_prefix(prefix))
            .filter(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|rest| rest.parse().ok())
            .collect()
    };
    let (ws, bs) = (numbered("W"), numbered("b"));
    let depth = ws.iter().chain(bs.iter()).copied().max().unwrap_or(0);
    if ws.contains(&0) || bs.contains(&0) {
        return Err(Error::Network(
            "W0 or b0 found: layers are numbered from 1 (W1, b1 … WL, bL, as the course numbers them); rename W0 → W1, W1 → W2, …".into(),
        ));
    }
    if depth == 0 {
        return Err(Error::MissingArray("W1".into()));
    }
    for l in 1..=depth {
        if !ws.contains(&l) && !bs.contains(&l) {
            let later = ws.iter().find(|&&k| k > l).map(|k| format!("W{k}"));
            let later = later.or_else(|| bs.iter().find(|&&k| k > l).map(|k| format!("b{k}")));
            return Err(Error::LayerGap {
                present: later.unwrap_or_default(),
                missing: format!("W{l} and b{l}"),
            });
        }
        for (set, prefix) in [(&ws, "W"), (&bs, "b")] {
            if !set.contains(&l) {
                return Err(Error::MissingArray(format!("{prefix}{l}")));
            }
        }
    }
    Ok(depth)
}

/// Typed access to the arrays of one source.
struct Arrays<'a> {
    source: &'a mut dyn ArraySource,
    names: &'a BTreeSet<String>,
    /// How gradients found here are described ("gradients from net.npz").
    label: &'a str,
    /// The arrays read that were stored as float32.
    float32: BTreeSet<String>,
}

impl<R: Read + Seek> ArraySource for NpzSource<'_, R> {
    fn read(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)> {
        macro_rules! try_types {
            ($($t:ty),*) => {{
                let mut descriptor: Option<String> = None;
                $(
                    match self.npz.by_name::<ndarray::OwnedRepr<$t>, ndarray::IxDyn>(name) {
                        Ok(a) => {
                            let precision = if std::any::type_name::<$t>() == "f32" {
                                Precision::F32
                            } else {
                                Precision::F64
                            };
                            return Ok((a.mapv(|v| v as f64), precision));
                        }
                        Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(d))) => {
                            descriptor.get_or_insert_with(|| d.to_string());
                        }
                        Err(e) => return Err(self.corrupt(name, e)),
                    }
                )*
                descriptor
            }};
        }
        let descriptor = try_types!(f64, f32, i64, i32, i16, i8, u64, u32, u16, u8);
        match self
            .npz
            .by_name::<ndarray::OwnedRepr<bool>, ndarray::IxDyn>(name)
        {
            Ok(a) => Ok((a.mapv(|v| if v { 1.0 } else { 0.0 }), Precision::F64)),
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(_))) => Err(Error::Dtype {
                array: name.into(),
                dtype: descriptor.unwrap_or_default(),
            }),
            Err(e) => Err(self.corrupt(name, e)),
        }
    }
}

impl<R: Read + Seek> NpzSource<'_, R> {
    fn corrupt(&self, name: &str, e: ReadNpzError) -> Error {
        Error::Npz {
            path: self.label.to_string(),
            reason: format!("array '{name}' is unreadable: {}", one_line(&e.to_string())),
        }
    }
}

impl Arrays<'_> {
    /// Any numeric array as f64, checked finite.
    fn any(&mut self, name: &str) -> Result<ArrayD<f64>> {
        Ok(self.any_with_precision(name)?.0)
    }

    /// [`Arrays::any`], and whether it was stored as float32 (f32) or exactly (f64).
    fn any_with_precision(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)> {
        if !self.names.contains(name) {
            return Err(Error::MissingArray(name.into()));
        }
        let (array, precision) = self.source.read(name)?;
        ensure_finite(name, array.view())?;
        if precision == Precision::F32 {
            self.float32.insert(name.to_string());
        }
        Ok((array, precision))
    }

    fn matrix(&mut self, name: &str) -> Result<Array2<f64>> {
        let a = self.any(name)?;
        let shape = a.shape().to_vec();
        a.into_dimensionality::<Ix2>().map_err(|_| {
            if shape.len() == 4 && name.starts_with('W') {
                Error::Shape(format!(
                    "{name} has shape {shape:?}: a convolution's filters, which the dense model (2-D weights) does not have"
                ))
            } else {
                Error::Shape(format!("{name} must be 2-D, got shape {shape:?}"))
            }
        })
    }

    /// A bias: `(n, 1)` as in the course, `(n,)`, or `(1, n)` as with examples in rows.
    fn vector(&mut self, name: &str) -> Result<Array1<f64>> {
        let a = self.any(name)?;
        match *a.shape() {
            [n] | [n, 1] | [1, n] => Ok(Array1::from_iter(a.iter().copied().take(n))),
            ref s => Err(Error::Shape(format!(
                "{name} must have shape (n, 1), (n,) or (1, n), got {s:?}"
            ))),
        }
    }

    /// The shape of array `name`, read in full (small arrays only: biases).
    fn shape(&mut self, name: &str) -> Result<Vec<usize>> {
        Ok(self.any(name)?.shape().to_vec())
    }

    /// Labels as `n_out × m` for `(outputs, examples)`: `(n_out, m)` (rows: `(m, n_out)`),
    /// or `(m,)` — one label per example for one output unit, a class index in
    /// `0..n_out` for softmax.
    fn labels(
        &mut self,
        name: &str,
        (outputs, examples): (usize, usize),
        loss: Loss,
        layout: DataLayout,
    ) -> Result<Array2<f64>> {
        let a = self.any(name)?;
        let expected = match layout {
            DataLayout::Columns => format!("({outputs}, {examples}): one row per output unit ({outputs}), one column per example of X ({examples})"),
            DataLayout::Rows => format!("({examples}, {outputs}): one row per example of X ({examples}), one column per output unit ({outputs})"),
        };
        let wrong = |shape: &[usize]| {
            let shape: Vec<String> = shape.iter().map(usize::to_string).collect();
            let shape = match shape.as_slice() {
                [one] => format!("({one},)"),
                many => format!("({})", many.join(", ")),
            };
            Error::Shape(format!(
                "{name} has shape {shape} but the network expects {expected}{}",
                if loss == Loss::Softmax {
                    format!("; or ({examples},) class indices")
                } else if outputs == 1 {
                    format!("; or ({examples},)")
                } else {
                    String::new()
                }
            ))
        };
        match *a.shape() {
            [m] if m != examples => Err(wrong(a.shape())),
            [m] if loss == Loss::Softmax && outputs > 1 => {
                let mut y = Array2::zeros((outputs, m));
                for (e, &class) in a.iter().enumerate() {
                    if class.fract() != 0.0 || class < 0.0 || class >= outputs as f64 {
                        return Err(Error::Labels(format!(
                            "{name}[{e}] is {class}, not a class index below the {outputs} output units"
                        )));
                    }
                    y[[class as usize, e]] = 1.0;
                }
                Ok(y)
            }
            [m] if outputs == 1 => {
                Ok(Array2::from_shape_vec((1, m), a.iter().copied().collect()).expect("1×m"))
            }
            [m] => {
                let classes = a
                    .iter()
                    .all(|&v| v.fract() == 0.0 && v >= 0.0 && v < outputs as f64);
                Err(Error::Shape(format!(
                    "{name} has shape ({m},), one label per example, but the output layer has {outputs} units: {}",
                    if classes {
                        format!("{name} holds class indices (integers 0 … {}): for softmax cross-entropy set the loss to softmax", outputs - 1)
                    } else {
                        format!("{name} must be {expected}")
                    }
                )))
            }
            [r, c] => {
                let y = a.into_dimensionality::<Ix2>().expect("2-D");
                let y = match layout {
                    DataLayout::Columns => y,
                    DataLayout::Rows => y.reversed_axes().as_standard_layout().into_owned(),
                };
                if y.dim() != (outputs, examples) {
                    return Err(wrong(&[r, c]));
                }
                Ok(y)
            }
            ref s => Err(wrong(s)),
        }
    }

    /// The gradients of `net` present under any of [`gradient_names`]' spellings (and, in a
    /// file of gradients alone, `bare`, under the parameters' own names), each shaped like
    /// its parameter; `None` when there are none. Tensors without one are marked not given.
    fn gradients(&mut self, net: &Mlp, bare: bool) -> Result<Option<GivenGradients>> {
        let layout = net.layout();
        let mut values = vec![f64::NAN; layout.len()];
        let mut given = vec![false; layout.tensors().len()];
        let mut arrays = Vec::new();
        let mut stored = Precision::F64;
        for (t, spec) in layout.tensors().iter().enumerate() {
            let mut candidates: Vec<String> = gradient_names(&spec.name).into();
            if bare {
                candidates.insert(0, spec.name.clone());
            }
            let found: Vec<&String> = candidates
                .iter()
                .filter(|n| self.names.contains(*n))
                .collect();
            let name = match found.as_slice() {
                [] => continue,
                [one] => (*one).clone(),
                several => {
                    let list: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                    return Err(Error::Shape(format!(
                        "{} all look like the gradient of {}; keep one",
                        list.join(" and "),
                        spec.name
                    )));
                }
            };
            let (array, precision) = self.any_with_precision(&name)?;
            let shape = array.shape().to_vec();
            let user = spec.user_shape();
            let fits = match (spec.kind, shape.as_slice()) {
                (TensorKind::Weight, [r, c]) => user == [*r, *c],
                (TensorKind::Bias, [n] | [n, 1] | [1, n]) => *n == spec.shape[0],
                _ => false,
            };
            if !fits {
                let transposed =
                    spec.kind == TensorKind::Weight && shape.as_slice() == [user[1], user[0]];
                return Err(Error::Shape(format!(
                    "{name} has shape {shape:?} but {} has {:?}{}",
                    spec.name,
                    user,
                    if transposed { ": transposed?" } else { "" }
                )));
            }
            // Into the internal (course) order: a rows-layout weight is transposed.
            let internal: Vec<f64> = match (spec.kind, spec.data_layout) {
                (TensorKind::Weight, DataLayout::Rows) => {
                    let w = array.into_dimensionality::<Ix2>().expect("2-D");
                    w.t().iter().copied().collect()
                }
                _ => array.iter().copied().collect(),
            };
            values[spec.range()]
                .iter_mut()
                .zip(internal)
                .for_each(|(v, a)| *v = a);
            if precision == Precision::F32 {
                stored = Precision::F32;
            }
            given[t] = true;
            arrays.push((spec.name.clone(), name));
        }
        if arrays.is_empty() {
            return Ok(None);
        }
        let float32_values = stored == Precision::F64 && float32_valued(&values);
        for name in self.names.iter() {
            if let Some(rest) = name.strip_prefix("dW").or_else(|| name.strip_prefix("db")) {
                if rest
                    .parse::<usize>()
                    .is_ok_and(|k| k == 0 || k > net.layers().len())
                {
                    return Err(Error::Shape(format!(
                        "{name} has no matching layer (the network has {})",
                        net.layers().len()
                    )));
                }
            }
        }
        Ok(Some(GivenGradients {
            values,
            given,
            arrays,
            stored,
            float32_values,
            float32_forward: false,
            source: format!("gradients from {}", self.label),
        }))
    }
}
