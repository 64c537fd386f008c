//! Command-line interface: flags parsed by clap and turned into library calls.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, Gradients};
use gradcheck::generate::{exercise, BugSpec, NetworkSpec};
use gradcheck::io::{read_npz, write_npz};
use gradcheck::options::{CheckOptions, DeviceChoice, Method, Precision};
use gradcheck::report::Report;

/// Proves backpropagation right: every gradient against central finite differences,
/// evaluated in bulk on the GPU. With no command, runs the gradient-checking exercise.
#[derive(Parser, Debug)]
#[command(name = "gradcheck", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the gradients of a network read from FILE (npz) or generated with --layers.
    Check(CheckArgs),
    /// Write a generated network, its data and its backprop gradients to an npz file.
    Export(ExportArgs),
    /// List the GPU adapters wgpu can see.
    Devices,
    /// Time whole checks over the parameter ladder (or --layers) for each device, method
    /// and precision; print a table, optionally write JSON and an SVG plot.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A network to time, as widths (input first); repeat the flag for several.
    /// Default: the ladder from the exercise (47 parameters) to 3072-1024-512-1 (3.67M).
    #[arg(long = "layers", value_name = "WIDTHS", value_parser = parse_widths)]
    pub layers: Vec<Vec<usize>>,
    /// Examples for the --layers networks.
    #[arg(long, default_value_t = 64)]
    pub examples: usize,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,gpu")]
    pub devices: Vec<DeviceChoice>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "full,delta")]
    pub methods: Vec<Method>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f64")]
    pub precisions: Vec<Precision>,
    /// Skip a size when the previous size's time, scaled by the operation counts,
    /// predicts more than this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub max_seconds: f64,
    /// Runs per measurement (the best is kept).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Use the GPU adapter whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Write the rows as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a log-log plot of time against parameters (SVG) to PATH.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Measure nothing: read the rows of an earlier `--json` file (to print or plot again).
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
}

fn parse_widths(text: &str) -> std::result::Result<Vec<usize>, String> {
    text.split(',')
        .map(|w| w.trim().parse::<usize>().map_err(|e| format!("'{w}': {e}")))
        .collect()
}

/// A generated network.
#[derive(Args, Debug)]
pub struct NetworkArgs {
    /// Layer widths, input first, e.g. 784,128,64,1.
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<usize>>,
    /// Number of examples (columns of X).
    #[arg(long, default_value_t = 64)]
    pub examples: usize,
    /// Seed of the generator.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// npz file with X, Y, W1, b1, … and optionally dW1, db1, … (the gradients to check).
    /// Without FILE and --layers, the exercise's network.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub network: NetworkArgs,
    /// npz file of the gradients, named like the parameters (W1, b1, … as cs231n's grads
    /// dict) or dW1, W1_grad, grad_W1.
    #[arg(long, value_name = "FILE")]
    pub grads: Option<PathBuf>,
    /// Check the tool's own backprop of FILE's network instead of gradients from a file.
    #[arg(long)]
    pub builtin_backprop: bool,
    /// Check only the tensors whose gradients are given (else missing ones are an error).
    #[arg(long)]
    pub partial: bool,
    /// Scale gradient tensors before the check, e.g. dW2=2,db1=4 (the exercise's bugs).
    #[arg(long)]
    pub bug: Option<BugSpec>,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Write the JSON report to PATH ('-' for stdout; the table then goes to stderr).
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// No progress bar (it shows only on a terminal, for checks over a second).
    #[arg(long, short)]
    pub quiet: bool,
}

/// Options shared by every check.
#[derive(Args, Debug)]
pub struct OptionArgs {
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    #[arg(long, value_enum, default_value_t = Precision::F64)]
    pub precision: Precision,
    #[arg(long, value_enum, default_value_t = Method::Delta)]
    pub method: Method,
    /// Finite-difference step (default: chosen for the precision and method).
    #[arg(long, allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// Largest relative difference that passes (default 2e-7 in f64).
    #[arg(long, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// Number of worst coordinates to name.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Use the GPU adapter whose name contains NAME (else WGPU_ADAPTER_NAME).
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Perturbations (full) or parameters (delta) per GPU dispatch (default: from the
    /// device's limits).
    #[arg(long)]
    pub chunk: Option<usize>,
    /// Memory the check may use, e.g. 512M or 8G (default: 3/4 of the available RAM).
    /// Bigger checks are refused before they start; GPU work is sliced to fit it.
    #[arg(long, value_name = "SIZE", allow_hyphen_values = true, value_parser = gradcheck::memory::parse_size)]
    pub max_memory: Option<u64>,
    /// Check only K coordinates, drawn at random with every tensor represented (delta).
    #[arg(long, value_name = "K")]
    pub sample: Option<usize>,
    /// Check K random directional derivatives (unit directions, one tensor each, the
    /// tensors in turn) by whole forward passes, as PyTorch's fast_mode does.
    #[arg(long, value_name = "K")]
    pub directions: Option<usize>,
    /// Seed of the --sample or --directions draw.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub sample_seed: u64,
    /// The precision the gradients were computed in, when it is coarser than the file's
    /// arrays (f32 gradients saved as float64). float32 arrays are judged as f32 anyway.
    #[arg(long, value_enum, value_name = "P")]
    pub grad_precision: Option<Precision>,
}

impl OptionArgs {
    fn to_options(&self) -> CheckOptions {
        CheckOptions {
            device: self.device,
            precision: self.precision,
            method: self.method,
            eps: self.eps,
            threshold: self.threshold,
            top: self.top,
            adapter: self.adapter.clone(),
            chunk: self.chunk,
            max_memory: self.max_memory,
            sample: self.sample,
            directions: self.directions,
            sample_seed: self.sample_seed,
            grad_precision: self.grad_precision,
        }
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    /// Output npz file.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs the parsed command; the exit code is 0 for pass, 1 for a gradient mismatch.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => run_exercise(),
        Some(Command::Check(args)) => run_check(&args),
        Some(Command::Export(args)) => run_export(&args),
        Some(Command::Devices) => run_devices(),
        Some(Command::Bench(args)) => crate::bench_cmd::run_bench(&args),
    }
}

/// 0 pass, 1 fail, 3 inconclusive (2 is an error, 130 an interruption: see main.rs).
fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(1),
        Verdict::Inconclusive => ExitCode::from(3),
    }
}

fn color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none()
}

fn spec(network: &NetworkArgs) -> Result<Option<NetworkSpec>> {
    network
        .layers
        .as_ref()
        .map(|layers| NetworkSpec::new(layers.clone(), network.examples, network.seed))
        .transpose()
        .map_err(Into::into)
}

/// The exercise: the correct backprop (expected to pass), then the exercise's buggy
/// gradients (expected to fail on W2 and b1). Exit 0 when both come out as expected.
fn run_exercise() -> Result<ExitCode> {
    let opts = CheckOptions::default();
    let engine = Engine::new(&opts)?;
    print_notices(&engine);
    let input = exercise();
    let eval = engine.evaluate(&input.problem, &opts)?;
    let correct = judge(
        "Gradient checking exercise: correct backprop",
        &eval,
        &Gradients::Backprop(None),
        &opts,
    )?;
    let mut buggy = input
        .gradients
        .context("the built-in exercise carries its buggy gradients")?;
    buggy.source = "the exercise's buggy backprop (dW2 doubled, db1 ×4)".into();
    let buggy = Gradients::Given(buggy);
    let buggy = judge(
        "Gradient checking exercise: buggy backprop",
        &eval,
        &buggy,
        &opts,
    )?;
    let tty = color(std::io::stdout().is_terminal());
    println!("{}", correct.render(tty));
    println!("{}", buggy.render(tty));
    let as_expected = correct.verdict == Verdict::Pass && buggy.verdict == Verdict::Fail;
    println!(
        "{}",
        if as_expected {
            "As expected: the correct backprop passes and the buggy one is caught."
        } else {
            "Unexpected: the exercise did not come out as it should."
        }
    );
    Ok(if as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_check(args: &CheckArgs) -> Result<ExitCode> {
    let opts = args.options.to_options();
    opts.validate()?;
    let generated = spec(&args.network)?;
    let mut notices = Vec::new();
    let (title, problem, found) = match (&args.file, generated) {
        (Some(_), Some(_)) => bail!("give either FILE or --layers, not both"),
        (Some(path), None) => {
            let input = read_npz(path)?;
            (
                format!("gradcheck {}", path.display()),
                input.problem,
                Some((input.gradients, input.unused, input.names)),
            )
        }
        (None, Some(spec)) => (
            format!("gradcheck generated network (seed {})", spec.seed),
            spec.generate(),
            None,
        ),
        (None, None) => (
            "gradcheck the exercise's network".into(),
            exercise().problem,
            None,
        ),
    };
    let found = match (&args.grads, found) {
        (Some(path), Some((in_file, unused, _))) => {
            if in_file.is_some() {
                bail!(
                    "{} has gradients of its own and --grads gives others; keep one source",
                    args.file.as_deref().unwrap_or(Path::new("FILE")).display()
                );
            }
            let read = gradcheck::io::read_gradients(path, problem.net())?;
            if !unused.is_empty() {
                notices.push(format!(
                    "not used from the network's file: {}",
                    unused.join(", ")
                ));
            }
            Some((read.gradients, read.unused, read.names))
        }
        (Some(_), None) => bail!("--grads goes with an npz FILE of the network"),
        (None, found) => found,
    };
    let gradients = match found {
        // A generated network or the exercise: the built-in backprop is the point.
        None => Gradients::Backprop(args.bug.clone()),
        Some((in_file, unused, _)) if args.builtin_backprop => {
            if !unused.is_empty() {
                notices.push(format!("not used: {}", unused.join(", ")));
            }
            if let Some(ignored) = in_file {
                let arrays: Vec<&str> = ignored.arrays.iter().map(|(_, a)| a.as_str()).collect();
                notices.push(format!(
                    "--builtin-backprop: the given gradients ({}) are not looked at",
                    arrays.join(", ")
                ));
            }
            Gradients::Backprop(args.bug.clone())
        }
        Some((None, _, names)) => {
            bail!(
                "no gradients found: the arrays are {}; name them dW1, db1, … (or W1_grad / grad_W1), give them with --grads FILE, or pass --builtin-backprop to check the tool's own backprop",
                names.join(", ")
            )
        }
        Some((Some(mut given), unused, _)) => {
            let layout = problem.net().layout();
            let missing: Vec<String> = layout
                .tensors()
                .iter()
                .zip(&given.given)
                .filter(|(_, &g)| !g)
                .map(|(t, _)| format!("d{}", t.name))
                .collect();
            if !missing.is_empty() && !args.partial {
                bail!(
                    "gradients missing for {}: give them, or pass --partial to check only {}",
                    missing.join(", "),
                    given
                        .arrays
                        .iter()
                        .map(|(_, a)| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            if !unused.is_empty() {
                notices.push(format!("not used: {}", unused.join(", ")));
            }
            if let Some(bugs) = &args.bug {
                bugs.apply(&layout, &mut given.values)?;
            }
            Gradients::Given(given)
        }
    };
    let engine = Engine::new(&opts)?;
    for notice in notices.iter().chain(&engine.notices) {
        eprintln!("note: {notice}");
    }
    let watch = crate::watch::Watch::new(args.quiet);
    let eval = engine.evaluate_monitored(&problem, &opts, &watch);
    watch.finish();
    let report = judge(&title, &eval?, &gradients, &opts)?;
    if watch.interrupted() {
        return Err(gradcheck::Error::Cancelled.into());
    }
    emit(&report, args.json.as_deref())?;
    Ok(exit_code(report.verdict))
}

fn print_notices(engine: &Engine) {
    for notice in &engine.notices {
        eprintln!("note: {notice}");
    }
}

/// Prints the table, and writes the JSON whole or not at all.
fn emit(report: &Report, json: Option<&str>) -> Result<()> {
    match json {
        Some("-") => {
            eprintln!("{}", report.render(color(std::io::stderr().is_terminal())));
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", report.to_json())?;
        }
        Some(path) => {
            println!("{}", report.render(color(std::io::stdout().is_terminal())));
            write_atomically(Path::new(path), report.to_json().as_bytes())
                .with_context(|| format!("writing the JSON report to {path}"))?;
        }
        None => println!("{}", report.render(color(std::io::stdout().is_terminal()))),
    }
    Ok(())
}

/// Writes beside the target and renames, so a reader never sees a partial file.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn run_export(args: &ExportArgs) -> Result<ExitCode> {
    let Some(spec) = spec(&args.network)? else {
        bail!("export needs --layers, e.g. --layers 784,128,64,1");
    };
    let problem = spec.generate();
    let grads = gradcheck::cpu::backprop::gradients(&problem);
    write_npz(&args.output, &problem, Some(&grads))?;
    println!(
        "wrote {} ({} parameters, {} examples, with backprop gradients)",
        args.output.display(),
        problem.net().num_params(),
        problem.examples()
    );
    Ok(ExitCode::SUCCESS)
}

fn run_devices() -> Result<ExitCode> {
    let adapters = gradcheck::gpu::list_adapters();
    if adapters.is_empty() {
        println!("no GPU adapters found (install a Vulkan driver, e.g. Mesa's lavapipe: mesa-vulkan-drivers)");
    }
    for a in adapters {
        println!(
            "{} · {} · {} · driver {} · f64 {} · timestamps {} · max buffer {} MiB · max storage binding {} MiB",
            a.name,
            a.backend,
            a.device_type,
            if a.driver.is_empty() { "?" } else { &a.driver },
            if a.f64 { "yes" } else { "no" },
            if a.timestamps { "yes" } else { "no" },
            a.max_buffer_size >> 20,
            a.max_storage_binding >> 20
        );
    }
    Ok(ExitCode::SUCCESS)
}
