//! The Python module `gradcheck._native`: the library's check on arrays a notebook holds
//! (or an npz file), the report back as the command line's JSON and table. The Python
//! package (`gradcheck/__init__.py`) wraps it in `check`, `check_npz` and `Report`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gradcheck::checker::{run_check, GivenGradients, Gradients};
use gradcheck::graph::{check_network, read_network, NetworkOptions};
use gradcheck::io::NamedArrays;
use gradcheck::io::{
    read_arrays, read_gradient_arrays, read_gradients, read_npz_with, MemoryArrays, NpzInput,
};
use gradcheck::model::ModelOptions;
use gradcheck::monitor::Counting;
use gradcheck::options::{
    CheckOptions, DeviceChoice, LimitsChoice, Method, Precision, PrecisionChoice,
};
use numpy::PyReadonlyArrayDyn;
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::create_exception!(
    _native,
    GradcheckError,
    pyo3::exceptions::PyValueError,
    "Bad input to a check, or a failure while running it; the message is the command line's."
);

/// A report as the Python side takes it: the JSON, and the table as the command line prints
/// it.
fn as_returned(report: &gradcheck::report::Report) -> (String, String) {
    let text = format!(
        "{}{}",
        report.header.render(),
        report.render_findings(false)
    );
    (report.to_json(), text)
}

/// The library's error as a `GradcheckError` with its one-line message.
fn error(e: gradcheck::Error) -> PyErr {
    GradcheckError::new_err(e.to_string())
}

/// An option that is not what it should be.
fn bad(message: String) -> PyErr {
    GradcheckError::new_err(message)
}

/// `{name: array}` as arrays in memory: float32 arrays stay marked float32 (their
/// gradients are judged as such), every other array arrives as float64 (the Python side
/// converts integers and bools), in any memory order.
fn arrays(dict: &Bound<'_, PyDict>) -> PyResult<MemoryArrays> {
    let mut out = MemoryArrays::default();
    for (key, value) in dict.iter() {
        let name: String = key.extract()?;
        if let Ok(a) = value.extract::<PyReadonlyArrayDyn<'_, f64>>() {
            out.insert(name, a.as_array().to_owned(), Precision::F64);
        } else if let Ok(a) = value.extract::<PyReadonlyArrayDyn<'_, f32>>() {
            out.insert(name, a.as_array().mapv(f64::from), Precision::F32);
        } else {
            let dtype = value
                .getattr("dtype")
                .map(|d| d.to_string())
                .unwrap_or_else(|_| "not an array".into());
            return Err(bad(format!(
                "array '{name}' has unsupported dtype {dtype}; use float64, float32, integer or bool arrays"
            )));
        }
    }
    Ok(out)
}

/// A string option among `allowed` (clap's value names).
fn choice<T: clap::ValueEnum>(name: &str, value: Option<String>) -> PyResult<Option<T>> {
    value
        .map(|v| {
            T::from_str(&v, true).map_err(|_| {
                let names: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_string()))
                    .collect();
                bad(format!("{name}={v:?}: use one of {}", names.join(", ")))
            })
        })
        .transpose()
}

/// The check's options as the Python keywords give them (`None`: the default).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct Options {
    eps: Option<f64>,
    threshold: Option<f64>,
    method: Option<String>,
    device: Option<String>,
    precision: Option<String>,
    grad_precision: Option<String>,
    sample: Option<usize>,
    sample_seed: Option<u64>,
    directions: Option<usize>,
    top: Option<usize>,
    max_memory: Option<String>,
    adapter: Option<String>,
    limits: Option<String>,
    chunk: Option<usize>,
}

impl Options {
    /// The library's checked options.
    fn check_options(self) -> PyResult<CheckOptions> {
        let max_memory = self
            .max_memory
            .as_deref()
            .map(|text| {
                gradcheck::memory::parse_size(text)
                    .map_err(|e| bad(format!("max_memory={text:?}: {e}")))
            })
            .transpose()?;
        let method = choice::<Method>("method", self.method)?;
        let opts = CheckOptions {
            device: choice::<DeviceChoice>("device", self.device)?.unwrap_or(DeviceChoice::Auto),
            precision: choice::<PrecisionChoice>("precision", self.precision)?
                .unwrap_or(PrecisionChoice::Auto),
            method: gradcheck::options::method_with(method, self.directions).map_err(error)?,
            eps: self.eps,
            threshold: self.threshold,
            top: self.top.unwrap_or(5),
            adapter: self.adapter,
            limits: choice::<LimitsChoice>("limits", self.limits)?
                .unwrap_or_else(LimitsChoice::from_env),
            chunk: self.chunk,
            max_memory,
            sample: self.sample,
            directions: self.directions,
            sample_seed: self.sample_seed.unwrap_or(1),
            grad_precision: choice::<Precision>("grad_precision", self.grad_precision)?,
        };
        opts.validate().map_err(error)?;
        Ok(opts)
    }
}

/// Runs the check with the GIL released, on a worker thread, polling for Ctrl-C (a
/// KeyboardInterrupt stops the evaluation and is raised) and, every tenth of a second,
/// reporting `(done, total)` to `progress` (an exception it raises stops the check too).
fn run(
    py: Python<'_>,
    title: &str,
    input: NpzInput,
    gradients: Gradients,
    opts: CheckOptions,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let monitor = Counting::default();
    let done = AtomicBool::new(false);
    let mut interrupt: Option<PyErr> = None;
    let problem = &input.problem;
    let result = py.detach(|| {
        std::thread::scope(|scope| {
            let worker = scope.spawn(|| {
                let r = run_check(title, problem, &gradients, &opts, &monitor);
                done.store(true, Ordering::Release);
                r
            });
            let mut ticks = 0u32;
            let mut reported = (u64::MAX, u64::MAX);
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(20));
                ticks += 1;
                if interrupt.is_some() {
                    continue;
                }
                let now = monitor.progress();
                let outcome = Python::attach(|py| -> PyResult<()> {
                    py.check_signals()?;
                    if let Some(callback) = &progress {
                        if ticks.is_multiple_of(5) && now.1 > 0 && now != reported {
                            callback.call1(py, now)?;
                            reported = now;
                        }
                    }
                    Ok(())
                });
                if let Err(e) = outcome {
                    interrupt = Some(e);
                    monitor.stop.raise();
                }
            }
            worker.join().expect("the check does not panic")
        })
    });
    if let Some(e) = interrupt {
        return Err(e);
    }
    let mut report = result.map_err(error)?;
    report.header.hint_gpu("device=\"gpu\"");
    report.warnings.extend(input.notes.iter().cloned());
    report
        .warnings
        .extend(gradcheck::io::unused_notice(&input.unused));
    if let Some(callback) = &progress {
        let (_, total) = monitor.progress();
        callback.call1(py, (total, total))?;
    }
    Ok(as_returned(&report))
}

/// The gradients on trial from the `grads` dict: every tensor's (unless `partial`), keyed
/// `dW1` or `W1`; and the intermediate gradients it holds besides (not used).
fn given(
    input: &NpzInput,
    grads: &Bound<'_, PyDict>,
    partial: bool,
) -> PyResult<(Gradients, Vec<String>)> {
    let read = read_gradient_arrays(arrays(grads)?, input.problem.net(), "the grads dict")
        .map_err(error)?;
    let Some(given) = read.gradients else {
        return Err(bad(format!(
            "no gradients found in grads: its keys are {}; name them dW1, db1, … (the course) or W1, b1, … (cs231n)",
            read.names.join(", ")
        )));
    };
    require_all(input, &given, partial)?;
    // The intermediate gradients the courses' backprops return (dZ1, dA1) are no
    // parameter's: noted and left out; any other key is refused.
    let (intermediate, unknown): (Vec<String>, Vec<String>) = read
        .unused
        .into_iter()
        .partition(|k| gradcheck::io::is_intermediate_gradient(k));
    if !unknown.is_empty() {
        return Err(bad(format!(
            "grads has keys that are no parameter's gradient: {}",
            unknown.join(", ")
        )));
    }
    Ok((Gradients::Given(input.adopt(given)), intermediate))
}

/// Every tensor has its gradient, unless `partial` (then the report says which were not
/// checked).
fn require_all(input: &NpzInput, given: &GivenGradients, partial: bool) -> PyResult<()> {
    let missing = given.missing(input.problem.net().layout());
    if missing.is_empty() || partial {
        return Ok(());
    }
    let names: Vec<String> = missing.iter().map(|t| format!("d{t}")).collect();
    Err(bad(format!(
        "gradients missing for {}: give them, or pass partial=True to check only the others",
        names.join(", ")
    )))
}

/// Checks `grads` against finite differences of the network `arrays` describes (W1, b1,
/// …, X, Y, and the dropout masks D1, …), with the model `settings` (a settings line, as
/// an npz file's `gradcheck` array). Returns the report as JSON and as the table.
#[pyfunction]
#[pyo3(signature = (arrays_dict, grads, settings, options, partial=false, progress=None))]
fn check_arrays(
    py: Python<'_>,
    arrays_dict: &Bound<'_, PyDict>,
    grads: &Bound<'_, PyDict>,
    settings: &str,
    options: Options,
    partial: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let opts = options.check_options()?;
    let model = ModelOptions::parse_line(settings).map_err(error)?;
    if model.is_network_of_ops() {
        let named = arrays(arrays_dict)?.into_named().map_err(error)?;
        let grads = arrays(grads)?.into_named().map_err(error)?;
        return network(
            py,
            "gradcheck (python)",
            (&named, Some(&grads), "the grads dict"),
            &model,
            (&opts, partial),
        );
    }
    let mut input = read_arrays(arrays(arrays_dict)?, "the arrays", &model).map_err(error)?;
    let (gradients, intermediate) = given(&input, grads, partial)?;
    input.unused.extend(intermediate);
    run(py, "gradcheck (python)", input, gradients, opts, progress)
}

/// Checks the gradients an npz file holds (as `gradcheck check FILE`), or those of a
/// second file `grads` (cs231n's two-file form: keyed like the parameters), with
/// `settings` over the file's own.
#[pyfunction]
#[pyo3(signature = (path, grads, settings, options, partial=false, progress=None))]
fn check_npz(
    py: Python<'_>,
    path: std::path::PathBuf,
    grads: Option<std::path::PathBuf>,
    settings: &str,
    options: Options,
    partial: bool,
    progress: Option<Py<PyAny>>,
) -> PyResult<(String, String)> {
    let opts = options.check_options()?;
    let model = ModelOptions::parse_line(settings).map_err(error)?;
    let merged = gradcheck::io::read_settings(&path, &model).map_err(error)?;
    if merged.is_network_of_ops() {
        let (named, _) = gradcheck::io::read_all_arrays(&path).map_err(error)?;
        let second = match &grads {
            Some(g) => Some(gradcheck::io::read_all_arrays(g).map_err(error)?.0),
            None => None,
        };
        let label = grads.as_deref().unwrap_or(&path).display().to_string();
        return network(
            py,
            &format!("gradcheck {}", path.display()),
            (&named, second.as_ref(), &label),
            &merged,
            (&opts, partial),
        );
    }
    let mut input = read_npz_with(&path, &model).map_err(error)?;
    if let Some(grads) = &grads {
        if input.gradients.is_some() {
            return Err(bad(format!(
                "{} has gradients of its own and grads= gives others ({}); keep one source",
                path.display(),
                grads.display()
            )));
        }
        let read = read_gradients(grads, input.problem.net()).map_err(error)?;
        input.gradients = read.gradients.map(|g| input.adopt(g));
        input.unused.extend(read.unused);
        input.names = read.names;
    }
    let Some(given) = input.gradients.clone() else {
        return Err(bad(format!(
            "no gradients found: the arrays are {}{}; name them dW1, db1, … (or W1_grad / grad_W1), or give them in a second file with grads=",
            input.names.join(", "),
            gradcheck::io::flat_gradient_hint(&input.names)
        )));
    };
    require_all(&input, &given, partial)?;
    let title = format!("gradcheck {}", path.display());
    run(py, &title, input, Gradients::Given(given), opts, progress)
}

/// A network of ops (a layer sequence, normalisation layers), checked on the host: the
/// report as JSON and as the table.
fn network(
    py: Python<'_>,
    title: &str,
    (named, grads, label): (&NamedArrays, Option<&NamedArrays>, &str),
    model: &ModelOptions,
    (opts, partial): (&CheckOptions, bool),
) -> PyResult<(String, String)> {
    let network_opts = NetworkOptions::of_check(opts, partial).map_err(error)?;
    let input = read_network(named, grads, model, label).map_err(error)?;
    let report = py
        .detach(|| check_network(title, &input, &network_opts))
        .map_err(error)?;
    Ok(as_returned(&report))
}

/// Checks one op's backward (`gradcheck layer`): `inputs` under the op's argument names,
/// `grads` as `d` + input name, `dout` the upstream gradient (none for a loss),
/// `settings` the op and its hyperparameters (`op=batchnorm eps=1e-5`).
#[pyfunction]
#[pyo3(signature = (settings, inputs, grads, dout, step=None, threshold=None, top=None, grad_precision=None, partial=false))]
#[allow(clippy::too_many_arguments)]
fn check_layer(
    py: Python<'_>,
    settings: &str,
    inputs: &Bound<'_, PyDict>,
    grads: &Bound<'_, PyDict>,
    dout: Option<&Bound<'_, PyAny>>,
    step: Option<f64>,
    threshold: Option<f64>,
    top: Option<usize>,
    grad_precision: Option<String>,
    partial: bool,
) -> PyResult<(String, String)> {
    use gradcheck::layer::{check_layer, layer_input, LayerOptions, LayerSettings};
    let settings = LayerSettings::parse_line(settings).map_err(error)?;
    let mut named = arrays(inputs)?.into_named().map_err(error)?;
    for (key, value) in arrays(grads)?.into_named().map_err(error)? {
        // Keyed like the inputs (cs231n's grads dicts) or d + the input's name.
        let key = if named.contains_key(&key) {
            format!("d{key}")
        } else {
            key
        };
        named.insert(key, value);
    }
    if let Some(dout) = dout {
        let one = PyDict::new(py);
        one.set_item("dout", dout)?;
        named.extend(arrays(&one)?.into_named().map_err(error)?);
    }
    let input = layer_input(named, &settings, "gradients from the grads dict").map_err(error)?;
    let defaults = LayerOptions::default();
    let opts = LayerOptions {
        step,
        threshold,
        top: top.unwrap_or(defaults.top),
        grad_precision: choice::<Precision>("grad_precision", grad_precision)?,
        partial,
    };
    let report = py
        .detach(|| check_layer("gradcheck layer (python)", &input, &opts))
        .map_err(error)?;
    Ok(as_returned(&report))
}

/// One input of a checked function: `(name, theta, grad, estimate, noise, truncation,
/// kinks, grad_scale)`.
type FunctionProbes<'py> = (
    String,
    PyReadonlyArrayDyn<'py, f64>,
    PyReadonlyArrayDyn<'py, f64>,
    Vec<f64>,
    Vec<f64>,
    Vec<f64>,
    Vec<[f64; 3]>,
    Vec<f64>,
);

/// Judges finite differences a Python function's check computed (`check_function`): per
/// input, `(name, theta, grad, estimate, noise, truncation, kinks, grad_scale)` — `kinks`
/// (n, 3) the one-sided and mid derivatives where a coordinate sits on a kink (NaN rows
/// elsewhere) — as a layer's probes are judged.
#[pyfunction]
#[pyo3(signature = (title, probed, output, takes_dout, value, float32, step, threshold=None, top=None, grad_precision=None))]
#[allow(clippy::too_many_arguments)]
fn judge_function(
    title: &str,
    probed: Vec<FunctionProbes<'_>>,
    output: Vec<usize>,
    takes_dout: bool,
    value: f64,
    float32: Vec<String>,
    step: f64,
    threshold: Option<f64>,
    top: Option<usize>,
    grad_precision: Option<String>,
) -> PyResult<(String, String)> {
    use gradcheck::layer::{judge_probes, Differentiated, LayerOptions, Probed, Subject};
    use gradcheck::ops::Probe;
    let mut inputs = Vec::new();
    let mut all = Vec::new();
    for (name, theta, grad, estimate, noise, truncation, kinks, grad_scale) in probed {
        let theta = theta.as_array().as_standard_layout().into_owned();
        let grad = grad.as_array().as_standard_layout().into_owned();
        if grad.shape() != theta.shape() {
            return Err(bad(format!(
                "d{name} has shape {:?} but {name} has {:?}: a gradient is shaped like its input",
                grad.shape(),
                theta.shape()
            )));
        }
        let probes = (0..theta.len())
            .map(|i| Probe {
                estimate: estimate[i],
                noise: noise[i],
                truncation: truncation[i],
                kink: kinks[i][0].is_finite().then_some(kinks[i]),
                partial: false,
                grad_scale: grad_scale[i],
            })
            .collect();
        inputs.push((name.clone(), theta.shape().to_vec()));
        all.push(Probed {
            tensor: format!("d{name}"),
            array: format!("d{name}"),
            name,
            theta,
            grad,
            probes,
            invariant: None,
        });
    }
    let defaults = LayerOptions::default();
    let opts = LayerOptions {
        step: Some(step),
        threshold,
        top: top.unwrap_or(defaults.top),
        grad_precision: choice::<Precision>("grad_precision", grad_precision)?,
        partial: false,
    };
    let subject = Subject {
        title: title.to_string(),
        source: "gradients from the grads dict".into(),
        what: Differentiated::Layer(gradcheck::report::LayerSubject {
            op: "function f".into(),
            inputs,
            output,
            dout: takes_dout,
            value,
        }),
        kink_site: Some(("f", ["left derivative", "mid-way", "right derivative"])),
        missing: Vec::new(),
        float32,
        unused: Vec::new(),
        placement: "the host (f evaluated in Python, in float64)".into(),
        start: std::time::Instant::now(),
    };
    let report = judge_probes(subject, all, &opts);
    Ok(as_returned(&report))
}

/// The outputs of op `name` where it has several (their upstream gradients are `d` +
/// each), empty for one.
#[pyfunction]
fn layer_outputs(name: &str) -> PyResult<Vec<String>> {
    Ok(gradcheck::ops::output_names(name)
        .map_err(error)?
        .into_iter()
        .map(String::from)
        .collect())
}

/// The inputs of op `name` that have gradients, in its argument order (the order of the
/// tuple its backward returns).
#[pyfunction]
fn layer_gradients(name: &str) -> PyResult<Vec<String>> {
    Ok(gradcheck::ops::gradient_inputs(name)
        .map_err(error)?
        .into_iter()
        .map(String::from)
        .collect())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("GradcheckError", m.py().get_type::<GradcheckError>())?;
    m.add_function(wrap_pyfunction!(check_arrays, m)?)?;
    m.add_function(wrap_pyfunction!(check_npz, m)?)?;
    m.add_function(wrap_pyfunction!(check_layer, m)?)?;
    m.add_function(wrap_pyfunction!(layer_outputs, m)?)?;
    m.add_function(wrap_pyfunction!(layer_gradients, m)?)?;
    m.add_function(wrap_pyfunction!(judge_function, m)?)?;
    Ok(())
}
