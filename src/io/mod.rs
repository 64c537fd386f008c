//! `.npz` input and output in the exercise's layout (examples are columns; `W_l` is
//! `n_l × n_(l−1)`, `b_l` is `n_l × 1`, gradients carry a `d` prefix).
//!
//! Arrays may be float64 or float32; integer and bool arrays are converted to f64 (labels
//! saved from `np.array([1, 1, 0])` are int64). Anything else is refused by name.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Cursor, Read, Seek};
use std::path::Path;

use ndarray::{Array1, Array2, ArrayD, Ix2};
mod guard;

use ndarray_npy::{NpzReader, NpzWriter, ReadNpyError, ReadNpzError};

use crate::checker::GivenGradients;
use crate::error::{Error, Result};
use crate::model::{Layer, Mlp, TensorKind};
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

/// Reads a network, its data and optionally its gradients from an npz file.
pub fn read_npz(path: &Path) -> Result<NpzInput> {
    read_npz_from(open_npz(path)?, &path.display().to_string())
}

/// The archive behind `reader`, its headers checked before anything is read
/// (`guard`), and the names of its arrays.
fn open_archive<R: Read + Seek>(
    mut reader: R,
    label: &str,
) -> Result<(NpzReader<R>, BTreeSet<String>)> {
    let npz_error = |reason: String| Error::Npz {
        path: label.to_string(),
        reason,
    };
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
    Ok((npz, names))
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
    file.rewind().map_err(io)?;
    Ok(file)
}

/// Same as [`read_npz`], from bytes in memory (`label` names them in errors).
pub fn read_npz_bytes(bytes: &[u8], label: &str) -> Result<NpzInput> {
    read_npz_from(Cursor::new(bytes), label)
}

fn read_npz_from<R: Read + Seek>(reader: R, label: &str) -> Result<NpzInput> {
    let (mut npz, names) = open_archive(reader, label)?;
    let mut arrays = Arrays {
        npz: &mut npz,
        names: &names,
        label,
    };

    let depth = layer_count(&names)?;
    let mut layers = Vec::with_capacity(depth);
    for l in 1..=depth {
        let w = arrays.matrix(&format!("W{l}"))?;
        let b = arrays.vector(&format!("b{l}"))?;
        layers.push(Layer { w, b });
    }
    let net = Mlp::new(layers)?;
    let x = arrays.matrix("X")?;
    let y = arrays.labels("Y", net.output_width())?;
    let problem = Problem::new(net, x, y)?;
    let mut used: BTreeSet<String> = ["X", "Y"].into_iter().map(String::from).collect();
    used.extend((1..=depth).flat_map(|l| [format!("W{l}"), format!("b{l}")]));
    let gradients = arrays.gradients(problem.net(), false)?;
    if let Some(g) = &gradients {
        used.extend(g.arrays.iter().map(|(_, a)| a.clone()));
    }
    Ok(NpzInput {
        problem,
        gradients,
        unused: names
            .iter()
            .filter(|n| !used.contains(*n))
            .cloned()
            .collect(),
        names: names.into_iter().collect(),
    })
}

/// Reads the gradients of `net` from a file of their own (cs231n's `grads` dict saved with
/// `np.savez`): arrays named like the parameters (`W1`, `b1`) or as in [`gradient_names`].
pub fn read_gradients(path: &Path, net: &Mlp) -> Result<NpzGradients> {
    let label = path.display().to_string();
    let (mut npz, names) = open_archive(open_npz(path)?, &label)?;
    let mut arrays = Arrays {
        npz: &mut npz,
        names: &names,
        label: &label,
    };
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
    })
}

/// What a file holds besides the network: its gradients if any, the arrays the check
/// does not use, and every array's name.
#[derive(Clone, Debug)]
pub struct NpzGradients {
    pub gradients: Option<GivenGradients>,
    pub unused: Vec<String>,
    pub names: Vec<String>,
}

/// Writes a problem (and optionally gradients) in the layout [`read_npz`] reads.
pub fn write_npz(path: &Path, problem: &Problem, gradients: Option<&[f64]>) -> Result<()> {
    let io_err = |cause| Error::Io {
        path: path.display().to_string(),
        cause,
    };
    let file = File::create(path).map_err(io_err)?;
    let mut npz = NpzWriter::new(BufWriter::new(file));
    let mut add = |name: &str, array: Array2<f64>| {
        npz.add_array(name, &array).map_err(|e| Error::Npz {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    };
    add("X", problem.x().clone())?;
    add("Y", problem.y().clone())?;
    let mut offset = 0;
    for (l, layer) in problem.net().layers().iter().enumerate() {
        let n = l + 1;
        add(&format!("W{n}"), layer.w.clone())?;
        add(
            &format!("b{n}"),
            layer.b.clone().insert_axis(ndarray::Axis(1)),
        )?;
        if let Some(g) = gradients {
            let (rows, cols) = layer.w.dim();
            let dw = Array2::from_shape_vec((rows, cols), g[offset..offset + rows * cols].to_vec())
                .expect("gradient slice has the weight's size");
            offset += rows * cols;
            let db = Array2::from_shape_vec((rows, 1), g[offset..offset + rows].to_vec())
                .expect("gradient slice has the bias's size");
            offset += rows;
            add(&format!("dW{n}"), dw)?;
            add(&format!("db{n}"), db)?;
        }
    }
    npz.finish().map_err(|e| Error::Npz {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(())
}

/// Parser errors come with ASCII-art context over several lines; reports want one.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Number of layers, from the `W<n>` / `b<n>` names, refusing gaps.
fn layer_count(names: &BTreeSet<String>) -> Result<usize> {
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

/// Typed access to the arrays of one archive.
struct Arrays<'a, R: Read + Seek> {
    npz: &'a mut NpzReader<R>,
    names: &'a BTreeSet<String>,
    label: &'a str,
}

impl<R: Read + Seek> Arrays<'_, R> {
    /// Any numeric array as f64, checked finite.
    fn any(&mut self, name: &str) -> Result<ArrayD<f64>> {
        Ok(self.any_with_precision(name)?.0)
    }

    /// [`Arrays::any`], and whether it was stored as float32 (f32) or exactly (f64).
    fn any_with_precision(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)> {
        if !self.names.contains(name) {
            return Err(Error::MissingArray(name.into()));
        }
        let (array, precision) = self.read_as_f64(name)?;
        ensure_finite(name, array.view())?;
        Ok((array, precision))
    }

    fn read_as_f64(&mut self, name: &str) -> Result<(ArrayD<f64>, Precision)> {
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

    fn corrupt(&self, name: &str, e: ReadNpzError) -> Error {
        Error::Npz {
            path: self.label.to_string(),
            reason: format!("array '{name}' is unreadable: {}", one_line(&e.to_string())),
        }
    }

    fn matrix(&mut self, name: &str) -> Result<Array2<f64>> {
        let a = self.any(name)?;
        let shape = a.shape().to_vec();
        a.into_dimensionality::<Ix2>()
            .map_err(|_| Error::Shape(format!("{name} must be 2-D, got shape {shape:?}")))
    }

    /// A bias: `(n, 1)` as in the exercise, or `(n,)`.
    fn vector(&mut self, name: &str) -> Result<Array1<f64>> {
        let a = self.any(name)?;
        match *a.shape() {
            [n] | [n, 1] => Ok(Array1::from_iter(a.iter().copied().take(n))),
            ref s => Err(Error::Shape(format!(
                "{name} must have shape (n, 1) or (n,), got {s:?}"
            ))),
        }
    }

    /// Labels: `(n_out, m)`, or `(m,)` for one output unit (`outputs`).
    fn labels(&mut self, name: &str, outputs: usize) -> Result<Array2<f64>> {
        let a = self.any(name)?;
        match *a.shape() {
            [m] if outputs != 1 => Err(Error::Shape(format!(
                "{name} has shape ({m},), one label per example, but the output layer has {outputs} units: {name} must be ({outputs}, m)"
            ))),
            [m] => Ok(Array2::from_shape_vec((1, m), a.iter().copied().collect()).expect("1×m")),
            [_, _] => Ok(a.into_dimensionality::<Ix2>().expect("2-D")),
            ref s => Err(Error::Shape(format!(
                "{name} must have shape (n_out, m) or (m,), got {s:?}"
            ))),
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
            let fits = match (spec.kind, shape.as_slice()) {
                (TensorKind::Weight, [r, c]) => [*r, *c] == spec.shape,
                (TensorKind::Bias, [n] | [n, 1]) => *n == spec.shape[0],
                _ => false,
            };
            if !fits {
                return Err(Error::Shape(format!(
                    "{name} has shape {shape:?} but {} has {:?}",
                    spec.name,
                    match spec.kind {
                        TensorKind::Weight => spec.shape.to_vec(),
                        TensorKind::Bias => vec![spec.shape[0], 1],
                    }
                )));
            }
            values[spec.range()]
                .iter_mut()
                .zip(array.iter())
                .for_each(|(v, &a)| *v = a);
            if precision == Precision::F32 {
                stored = Precision::F32;
            }
            given[t] = true;
            arrays.push((spec.name.clone(), name));
        }
        if arrays.is_empty() {
            return Ok(None);
        }
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
            source: format!("gradients from {}", self.label),
        }))
    }
}
