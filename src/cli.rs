//! Command-line interface: flags parsed by clap and turned into library calls. Only this
//! layer knows flag names: it checks what only flags can get wrong (a flag given twice, one
//! that means nothing without another) and hands the library checked options.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use gradcheck::check::Verdict;
use gradcheck::checker::{judge, Engine, GivenGradients, Gradients};
use gradcheck::generate::{exercise, BugSpec, NetworkSpec};
use gradcheck::io::{read_npz_with, write_npz, NpzGradients};
use gradcheck::model::{
    Activation, DataLayout, Loss, ModelOptions, Normalization, Rates, Reduction,
};
use gradcheck::options::{
    CheckOptions, DeviceChoice, LimitsChoice, Method, Precision, PrecisionChoice,
};
use gradcheck::problem::Problem;
use gradcheck::report::Report;

const EXIT_CODES: &str = "\
Exit codes:
  0    pass: every gradient agrees with its finite differences
  1    fail: some gradient disagrees (the report names the tensor and coordinates)
  2    error: bad input or options, or a GPU or runtime failure (one line on stderr)
  3    inconclusive: nothing failed, but somewhere the evaluation cannot resolve the
       threshold (the report says where and what would decide it)
  130  interrupted by Ctrl-C (nothing is written)";

/// Proves backpropagation right: every gradient against central finite differences,
/// evaluated in bulk on the GPU. With no command, runs the gradient-checking exercise.
#[derive(Parser, Debug)]
#[command(name = "gradcheck", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the gradients of a network read from FILE (npz) or generated with --layers.
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Check one layer's backward (every input's gradient, dx included) from FILE (npz),
    /// as cs231n's notebooks do with eval_numerical_gradient_array.
    #[command(after_help = EXIT_CODES)]
    Layer(crate::layer_cmd::LayerArgs),
    /// Write a network (the exercise's, or one generated with --layers), its data and its
    /// backprop gradients to an npz file.
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
    #[arg(long = "layers", value_name = "WIDTHS", value_parser = parse_widths, action = clap::ArgAction::Append)]
    pub layers: Vec<Widths>,
    /// Examples for the --layers networks.
    #[arg(long, default_value_t = 64, allow_hyphen_values = true, value_parser = count)]
    pub examples: usize,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cpu,gpu")]
    pub devices: Vec<DeviceChoice>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "full,delta")]
    pub methods: Vec<Method>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "f32,f64")]
    pub precisions: Vec<Precision>,
    /// A cap on the whole run, in seconds: a size is skipped once they are spent, or when
    /// the previous size's time, scaled by the operation counts, predicts it would not fit
    /// what is left (one measurement in flight may still overrun by its own length).
    #[arg(long, default_value_t = 60.0, allow_hyphen_values = true)]
    pub max_seconds: f64,
    /// Runs per measurement (the best is kept).
    #[arg(long, default_value_t = 1, allow_hyphen_values = true, value_parser = count)]
    pub repeat: usize,
    /// Use the GPU adapter whose name contains NAME.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Write the rows as JSON to PATH.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Write a plot of time against parameters (SVG) to PATH.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
    /// Measure nothing: read the rows of an earlier `--json` file (to print or plot again).
    #[arg(long, value_name = "PATH")]
    pub from: Option<PathBuf>,
    /// The model every network computes (default: the exercise's ReLU → sigmoid).
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Layer widths, input first: one value of `--layers`, so that the flag given twice is an
/// error in `check` rather than two lists silently joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

fn parse_widths(text: &str) -> std::result::Result<Widths, String> {
    text.split(',')
        .map(|w| count(w.trim()).map_err(|e| format!("'{w}': {e}")))
        .collect::<std::result::Result<_, _>>()
        .map(Widths)
}

/// A count or size: a whole number ≥ 0, said plainly for a negative one (clap would
/// suggest `-- -3`, which is no help here).
fn count(text: &str) -> std::result::Result<usize, String> {
    match text.trim().parse::<i128>() {
        Ok(v) if v < 0 => Err(format!("must be a non-negative whole number, got {v}")),
        Ok(v) => usize::try_from(v).map_err(|_| format!("{v} is too large")),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// A count that must be at least 1.
fn positive(text: &str) -> std::result::Result<usize, String> {
    match count(text)? {
        0 => Err("must be at least 1".into()),
        n => Ok(n),
    }
}

/// A threshold: a finite number > 0.
fn threshold(text: &str) -> std::result::Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(t) if t.is_finite() && t > 0.0 => Ok(t),
        Ok(t) => Err(format!("must be a finite number > 0, got {t}")),
        Err(_) => Err(format!("'{text}' is not a number")),
    }
}

/// A seed: a whole number from 0 to 2⁶⁴ − 1.
fn seed(text: &str) -> std::result::Result<u64, String> {
    match text.trim().parse::<i128>() {
        Ok(v) if v < 0 => Err(format!("must be a non-negative whole number, got {v}")),
        Ok(v) => u64::try_from(v).map_err(|_| format!("{v} is too large")),
        Err(_) => Err(format!("'{text}' is not a whole number")),
    }
}

/// A generated network.
#[derive(Args, Debug)]
#[command(next_help_heading = "Generated network (instead of FILE)")]
pub struct NetworkArgs {
    /// Layer widths, input first, e.g. 784,128,64,1 (without it: the exercise's network).
    #[arg(long, value_name = "WIDTHS", value_parser = parse_widths)]
    pub layers: Option<Widths>,
    /// Number of examples of the --layers network [default: 64].
    #[arg(long, allow_hyphen_values = true, value_parser = count)]
    pub examples: Option<usize>,
    /// Seed of the --layers network's generator [default: 7].
    #[arg(long, allow_hyphen_values = true, value_parser = seed)]
    pub seed: Option<u64>,
}

impl NetworkArgs {
    /// The generated network asked for, if any; `--examples` or `--seed` without
    /// `--layers` would describe nothing, so they are refused rather than ignored.
    fn spec(&self) -> Result<Option<NetworkSpec>> {
        match &self.layers {
            Some(Widths(widths)) => Ok(Some(
                NetworkSpec::new(
                    widths.clone(),
                    self.examples.unwrap_or(64),
                    self.seed.unwrap_or(7),
                )
                .context("--layers")?,
            )),
            None if self.examples.is_some() || self.seed.is_some() => {
                bail!("--examples and --seed describe a generated network: give --layers too")
            }
            None => Ok(None),
        }
    }
}

/// What the network computes, for a FILE (over its own `gradcheck` settings) or a
/// generated network.
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Model (over FILE's own settings)")]
pub struct ModelArgs {
    /// Hidden activations: one for every hidden layer or one per layer, from relu,
    /// leaky_relu (slope 0.01; leaky_relu:0.2 for another), tanh, sigmoid, identity
    /// [default: relu].
    #[arg(long, value_name = "A[,A…]", value_parser = parse_hidden)]
    pub hidden: Option<Activations>,
    /// Output and loss: bce (sigmoid, binary cross-entropy), softmax (softmax,
    /// cross-entropy; Y one-hot or class indices), mse (identity, ½‖ŷ − y‖² per example),
    /// mse_mean (mean((ŷ − y)²): PyTorch's, NNFS's), sse (‖ŷ − y‖²) [default: bce].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// How per-example losses combine [default: mean].
    #[arg(long, value_enum)]
    pub reduction: Option<Reduction>,
    /// L2 strength λ as the course writes it: adds λ/(2m)·Σ‖W‖² (λ/2·Σ‖W‖² with sum
    /// reduction). For a plain coefficient on Σ‖W‖² use --weight-l2.
    #[arg(
        long,
        visible_alias = "lambd",
        value_name = "λ",
        allow_hyphen_values = true
    )]
    pub l2: Option<f64>,
    /// Adds weight_l2·Σ‖W‖² over every layer, or per layer with one value each
    /// (5e-4,0: NNFS's weight_regularizer_l2 on its first layer only); cs231n's reg·ΣW² is
    /// --weight-l2 reg, its 0.5·reg·ΣW² is --weight-l2 reg/2.
    #[arg(
        long,
        visible_alias = "reg",
        value_name = "C[,C…]",
        allow_hyphen_values = true,
        value_parser = Rates::parse
    )]
    pub weight_l2: Option<Rates>,
    /// Adds weight_l1·Σ|W| (NNFS's weight_regularizer_l1), for every layer or per layer.
    #[arg(long, value_name = "C[,C…]", allow_hyphen_values = true, value_parser = Rates::parse)]
    pub weight_l1: Option<Rates>,
    /// Adds bias_l2·Σ‖b‖² (NNFS's bias_regularizer_l2), for every layer or per layer.
    #[arg(long, value_name = "C[,C…]", allow_hyphen_values = true, value_parser = Rates::parse)]
    pub bias_l2: Option<Rates>,
    /// Adds bias_l1·Σ|b| (NNFS's bias_regularizer_l1), for every layer or per layer.
    #[arg(long, value_name = "C[,C…]", allow_hyphen_values = true, value_parser = Rates::parse)]
    pub bias_l1: Option<Rates>,
    /// Inverted dropout with the saved masks D1 … D(L−1), 0/1 or already divided by
    /// keep_prob: A ← A·D/keep_prob (generated networks draw masks with it).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    pub keep_prob: Option<f64>,
    /// columns (the course: X n0×m, W n_out×n_in) or rows (cs231n, NNFS: X m×n0,
    /// W n_in×n_out) [default: decided by the shapes].
    #[arg(long, value_enum)]
    pub layout: Option<DataLayout>,
    /// A normalisation layer after each hidden affine layer, with parameters gamma1,
    /// beta1, … (cs231n's FullyConnectedNet(normalization=…)): batchnorm or layernorm.
    #[arg(long, value_enum)]
    pub normalization: Option<Normalization>,
    /// A network's layers in order, each op with its hyperparameters, up to the scores
    /// (the softmax loss follows): conv(stride=1,pad=1),relu,max_pool(pool_height=2,
    /// pool_width=2,stride=2),affine,relu,affine (cs231n's ThreeLayerConvNet); parameters
    /// W1, b1 per conv or affine layer in order, gamma<l>, beta<l> for a norm after layer l.
    #[arg(long, value_name = "OPS")]
    pub sequence: Option<String>,
}

/// One value of `--hidden` (a list in one flag, as `--layers` is).
#[derive(Clone, Debug, PartialEq)]
pub struct Activations(pub Vec<Activation>);

fn parse_hidden(text: &str) -> std::result::Result<Activations, String> {
    gradcheck::model::spec::parse_activations(text)
        .map(Activations)
        .map_err(|e| e.to_string())
}

impl ModelArgs {
    pub(crate) fn to_options(&self) -> ModelOptions {
        ModelOptions {
            hidden: self.hidden.clone().map(|a| a.0),
            loss: self.loss,
            reduction: self.reduction,
            l2: self.l2,
            weight_l2: self.weight_l2.clone(),
            weight_l1: self.weight_l1.clone(),
            bias_l2: self.bias_l2.clone(),
            bias_l1: self.bias_l1.clone(),
            keep_prob: self.keep_prob,
            layout: self.layout,
            normalization: self.normalization,
            sequence: self.sequence.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// npz file with X, Y, W1, b1, … and the gradients to check (dW1, db1, …, or W1_grad,
    /// grad_W1). Without FILE and --layers, the exercise's network.
    pub file: Option<PathBuf>,
    /// npz file of the gradients, named like the parameters (W1, b1, … as cs231n's grads
    /// dict) or dW1, W1_grad, grad_W1.
    #[arg(help_heading = "Input", long, value_name = "FILE")]
    pub grads: Option<PathBuf>,
    /// Check the tool's own backprop of FILE's network instead of gradients from a file.
    #[arg(help_heading = "Input", long)]
    pub builtin_backprop: bool,
    /// Check only the tensors whose gradients are given (else missing ones are an error).
    #[arg(help_heading = "Input", long)]
    pub partial: bool,
    /// Scale gradient tensors before the check, e.g. dW2=2,db1=4 (the exercise's bugs).
    #[arg(help_heading = "Input", long)]
    pub bug: Option<BugSpec>,
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Write the JSON report to PATH ('-' for stdout; the table then goes to stderr).
    #[arg(help_heading = "Output", long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// No progress bar (it shows only on a terminal, for checks over a second).
    #[arg(help_heading = "Output", long, short)]
    pub quiet: bool,
}

/// Options shared by every check.
#[derive(Args, Debug)]
pub struct OptionArgs {
    /// Where the finite differences run. auto: a hardware GPU when there is one (in f64 or
    /// f32 by its shaders, unless --precision says); with only a software adapter (lavapipe,
    /// llvmpipe, WARP) or none, the native CPU path in f64 (the report's placement line
    /// says which and why).
    #[arg(help_heading = "Device", long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// Arithmetic of the perturbed passes. auto: f64 on the CPU and on GPUs with f64
    /// shaders (Vulkan on NVIDIA, AMD, lavapipe), f32 on the others (Metal, DX12, GL, Intel),
    /// where the delta method still resolves ~1e-7; the report says which and why.
    #[arg(help_heading = "Device", long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// delta: only the change a step makes (exact, kink-aware, fast); full: whole forward
    /// passes (the exercise's algorithm) [default: delta].
    #[arg(help_heading = "Method", long, value_enum)]
    pub method: Option<Method>,
    /// Finite-difference step (default: chosen for the precision and method).
    #[arg(help_heading = "Method", long, allow_hyphen_values = true)]
    pub eps: Option<f64>,
    /// Largest relative difference that passes [default: 2e-7 on an f64 evaluation, 1e-5 on
    /// f32 by the delta method or for float32 gradients, 1e-3 on f32 whole passes].
    #[arg(help_heading = "Method", long, allow_hyphen_values = true, value_parser = threshold)]
    pub threshold: Option<f64>,
    /// Number of worst coordinates to name.
    #[arg(help_heading = "Output", long, default_value_t = 5, allow_hyphen_values = true, value_parser = count)]
    pub top: usize,
    /// Use the GPU adapter whose name contains NAME (else WGPU_ADAPTER_NAME); an error when
    /// none matches, whatever --device says.
    #[arg(help_heading = "Device", long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// The device limits to ask for: the adapter's, WebGPU's defaults or wgpu's downlevel
    /// ones, to see whether a check would run on a smaller GPU [default: adapter, or
    /// GRADCHECK_LIMITS].
    #[arg(help_heading = "Device", long, value_enum)]
    pub limits: Option<LimitsChoice>,
    /// Perturbations (full) or parameters (delta) per GPU dispatch (default: from the
    /// device's limits).
    #[arg(help_heading = "Device", long, allow_hyphen_values = true, value_parser = positive)]
    pub chunk: Option<usize>,
    /// Memory the check may use, e.g. 512M or 8G (default: 3/4 of the available RAM).
    /// Bigger checks are refused before they start; GPU work is sliced to fit it.
    #[arg(help_heading = "Device", long, value_name = "SIZE", allow_hyphen_values = true, value_parser = gradcheck::memory::parse_size)]
    pub max_memory: Option<u64>,
    /// Check only K coordinates, drawn at random with every tensor represented (delta).
    #[arg(help_heading = "Scope", long, value_name = "K", allow_hyphen_values = true, value_parser = positive)]
    pub sample: Option<usize>,
    /// Check K random directional derivatives (unit directions, one tensor each, the
    /// tensors in turn) by whole forward passes, as PyTorch's fast_mode does.
    #[arg(help_heading = "Scope", long, value_name = "K", allow_hyphen_values = true, value_parser = positive)]
    pub directions: Option<usize>,
    /// Seed of the --sample or --directions draw.
    #[arg(help_heading = "Scope", long, value_name = "S", default_value_t = 1, allow_hyphen_values = true, value_parser = seed)]
    pub sample_seed: u64,
    /// The precision the gradients were computed in, when it is coarser than the file's
    /// arrays (f32 gradients saved as float64). float32 arrays are judged as f32 anyway.
    #[arg(help_heading = "Method", long, value_enum, value_name = "P")]
    pub grad_precision: Option<Precision>,
}

impl OptionArgs {
    /// The library's options; what only flags can get wrong is refused here.
    fn to_options(&self) -> Result<CheckOptions> {
        Ok(CheckOptions {
            device: self.device,
            precision: self.precision,
            method: gradcheck::options::method_with(self.method, self.directions)?,
            eps: self.eps,
            threshold: self.threshold,
            top: self.top,
            adapter: self.adapter.clone(),
            limits: self.limits.unwrap_or_else(LimitsChoice::from_env),
            chunk: self.chunk,
            max_memory: self.max_memory,
            sample: self.sample,
            directions: self.directions,
            sample_seed: self.sample_seed,
            grad_precision: self.grad_precision,
        })
    }
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub network: NetworkArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Scale the written gradient tensors, e.g. dW2=2,db1=4 (a buggy backprop to check).
    #[arg(long)]
    pub bug: Option<BugSpec>,
    /// Output npz file.
    #[arg(short, long)]
    pub output: PathBuf,
}

/// Runs the parsed command; the exit code is 0 for pass, 1 for a gradient mismatch.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => run_exercise(),
        Some(Command::Check(args)) => run_check(&args),
        Some(Command::Layer(args)) => crate::layer_cmd::run_layer(&args),
        Some(Command::Export(args)) => run_export(&args),
        Some(Command::Devices) => run_devices(),
        Some(Command::Bench(args)) => crate::bench_cmd::run_bench(&args),
    }
}

/// 0 pass, 1 fail, 3 inconclusive (2 is an error, 130 an interruption: see main.rs).
pub(crate) fn exit_code(verdict: Verdict) -> ExitCode {
    match verdict {
        Verdict::Pass => ExitCode::SUCCESS,
        Verdict::Fail => ExitCode::from(1),
        Verdict::Inconclusive => ExitCode::from(3),
    }
}

fn color(stream_is_terminal: bool) -> bool {
    stream_is_terminal && std::env::var_os("NO_COLOR").is_none()
}

/// The exercise: the correct backprop (expected to pass), then the exercise's buggy
/// gradients (expected to fail on W2 and b1). Exit 0 when both come out as expected.
fn run_exercise() -> Result<ExitCode> {
    let opts = CheckOptions::default();
    let engine = Engine::new(&opts)?;
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
    let (mut correct, mut buggy) = (correct, buggy);
    correct.header.hint_gpu(GPU_FLAG);
    buggy.header.hint_gpu(GPU_FLAG);
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

/// The network to check, its title, and what its file holds (`None` when generated).
fn problem(
    args: &CheckArgs,
    opts: &CheckOptions,
    notices: &mut Vec<String>,
) -> Result<(String, Problem, Option<NpzGradients>)> {
    let model = args.model.to_options();
    Ok(match (&args.file, args.network.spec()?) {
        (Some(_), Some(_)) => bail!("give either FILE or --layers, not both"),
        (Some(path), None) => {
            let input = read_npz_with(path, &model)?;
            notices.extend(input.notes);
            (
                format!("gradcheck {}", path.display()),
                input.problem,
                Some(NpzGradients {
                    gradients: input.gradients,
                    unused: input.unused,
                    names: input.names,
                    float32_forward: input.float32_forward,
                }),
            )
        }
        (None, Some(spec)) => {
            let checked = opts.sample.or(opts.directions).unwrap_or(usize::MAX);
            let seed = spec.seed;
            let problem = spec
                .with_model(model)
                .context("the model")?
                .generate_within(checked, opts.budget())?;
            (
                format!("gradcheck generated network (seed {seed})"),
                problem,
                None,
            )
        }
        (None, None) if !model.is_default() => {
            bail!("the model flags describe FILE or a --layers network; the exercise's is ReLU → sigmoid")
        }
        (None, None) => (
            "gradcheck the exercise's network".into(),
            exercise().problem,
            None,
        ),
    })
}

/// The gradients on trial: the file's (or `--grads`'), or the built-in backprop where
/// asked for or where the network is generated; never one silently for the other.
fn gradients(
    args: &CheckArgs,
    problem: &Problem,
    found: Option<NpzGradients>,
    notices: &mut Vec<String>,
) -> Result<Gradients> {
    let found = match (&args.grads, found) {
        (Some(path), Some(in_file)) => {
            if in_file.gradients.is_some() {
                bail!(
                    "{} has gradients of its own and --grads gives others; keep one source",
                    args.file.as_deref().unwrap_or(Path::new("FILE")).display()
                );
            }
            let mut read = gradcheck::io::read_gradients(path, problem.net())?;
            read.gradients = read.gradients.map(|g| GivenGradients {
                float32_forward: in_file.float32_forward,
                ..g
            });
            if !in_file.unused.is_empty() {
                notices.push(format!(
                    "not used from the network's file: {}",
                    in_file.unused.join(", ")
                ));
            }
            Some(read)
        }
        (Some(_), None) => bail!("--grads goes with an npz FILE of the network"),
        (None, found) => found,
    };
    if let Some(bugs) = &args.bug {
        bugs.validate(problem.net().layout()).context("--bug")?;
    }
    let Some(found) = found else {
        if args.builtin_backprop || args.partial {
            bail!("--builtin-backprop and --partial go with an npz FILE of the network");
        }
        return Ok(Gradients::Backprop(args.bug.clone()));
    };
    notices.extend(gradcheck::io::unused_notice(&found.unused));
    if args.builtin_backprop {
        if let Some(ignored) = found.gradients {
            let arrays: Vec<&str> = ignored.arrays.iter().map(|(_, a)| a.as_str()).collect();
            notices.push(format!(
                "--builtin-backprop: the given gradients ({}) are not looked at",
                arrays.join(", ")
            ));
        }
        return Ok(Gradients::Backprop(args.bug.clone()));
    }
    let Some(mut given) = found.gradients else {
        bail!(
            "no gradients found: the arrays are {}{}; name them dW1, db1, … (or W1_grad / grad_W1), give them with --grads FILE, or pass --builtin-backprop to check the tool's own backprop",
            found.names.join(", "),
            gradcheck::io::flat_gradient_hint(&found.names)
        );
    };
    let layout = problem.net().layout();
    let missing: Vec<String> = given
        .missing(layout)
        .into_iter()
        .map(|t| format!("d{t}"))
        .collect();
    if !missing.is_empty() && !args.partial {
        let present: Vec<&str> = given.arrays.iter().map(|(_, a)| a.as_str()).collect();
        bail!(
            "gradients missing for {}: give them, or pass --partial to check only {}",
            missing.join(", "),
            present.join(", ")
        );
    }
    if let Some(bugs) = &args.bug {
        bugs.apply(layout, &mut given.values)?;
    }
    Ok(Gradients::Given(given))
}

fn run_check(args: &CheckArgs) -> Result<ExitCode> {
    let opts = args.options.to_options()?;
    opts.validate()?;
    if let Some(path) = &args.file {
        let settings = gradcheck::io::read_settings(path, &args.model.to_options())?;
        if settings.is_network_of_ops() {
            return run_network_check(args, path, &settings, &opts);
        }
    }
    let mut notices = Vec::new();
    let (title, problem, found) = problem(args, &opts, &mut notices)?;
    let gradients = gradients(args, &problem, found, &mut notices)?;
    let engine = Engine::new(&opts)?;
    if !args.quiet {
        print_notices(&notices);
    }
    // What is checked, where and how, before the work: a long check says what it does.
    let mut header = engine.header(&title, &problem, &gradients, &opts);
    header.hint_gpu(GPU_FLAG);
    let to_stderr = args.json.as_deref() == Some("-");
    if to_stderr {
        eprint!("{}", header.render());
    } else {
        print!("{}", header.render());
        std::io::stdout().flush()?;
    }
    let watch = crate::watch::Watch::new(args.quiet);
    let eval = engine.evaluate_monitored(&problem, &opts, &watch);
    watch.finish();
    if watch.interrupted() {
        return Err(gradcheck::Error::Cancelled.into());
    }
    let mut report = judge(&title, &eval?, &gradients, &opts)?;
    report.header.hint_gpu(GPU_FLAG);
    emit(&report, args.json.as_deref())?;
    Ok(exit_code(report.verdict))
}

/// A network of ops (a layer sequence, normalisation layers), checked on the host.
fn run_network_check(
    args: &CheckArgs,
    path: &Path,
    settings: &ModelOptions,
    opts: &CheckOptions,
) -> Result<ExitCode> {
    if args.bug.is_some() || args.builtin_backprop {
        bail!("--bug and --builtin-backprop go with dense networks (W, b per layer); a network of ops is checked with its own gradients");
    }
    if args.network.spec()?.is_some() {
        bail!("give either FILE or --layers, not both");
    }
    let network_opts = gradcheck::graph::NetworkOptions::of_check(opts, args.partial)?;
    let (arrays, _) = gradcheck::io::read_all_arrays(path)?;
    let grads = match &args.grads {
        Some(g) => Some(gradcheck::io::read_all_arrays(g)?.0),
        None => None,
    };
    let label = args.grads.as_deref().unwrap_or(path).display().to_string();
    let input = gradcheck::graph::read_network(&arrays, grads.as_ref(), settings, &label)?;
    let title = format!("gradcheck {}", path.display());
    let report = gradcheck::graph::check_network(&title, &input, &network_opts)?;
    let to_stderr = args.json.as_deref() == Some("-");
    if to_stderr {
        eprint!("{}", report.header.render());
    } else {
        print!("{}", report.header.render());
    }
    emit(&report, args.json.as_deref())?;
    Ok(exit_code(report.verdict))
}

/// How the command line asks for the GPU, in the header where `auto` left it.
const GPU_FLAG: &str = "--device gpu";

fn print_notices(notices: &[String]) {
    for notice in notices {
        eprintln!("note: {notice}");
    }
}

/// Prints the table, and writes the JSON whole or not at all.
pub(crate) fn emit(report: &Report, json: Option<&str>) -> Result<()> {
    match json {
        Some("-") => {
            eprintln!(
                "{}",
                report.render_findings(color(std::io::stderr().is_terminal()))
            );
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", report.to_json())?;
        }
        Some(path) => {
            println!(
                "{}",
                report.render_findings(color(std::io::stdout().is_terminal()))
            );
            write_atomically(Path::new(path), report.to_json().as_bytes())
                .with_context(|| format!("writing the JSON report to {path}"))?;
        }
        None => println!(
            "{}",
            report.render_findings(color(std::io::stdout().is_terminal()))
        ),
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
    let model = args.model.to_options();
    let problem = match args.network.spec()? {
        Some(spec) => spec
            .with_model(model)
            .context("the model")?
            .generate_within(0, gradcheck::memory::default_budget())?,
        None if !model.is_default() => {
            bail!("the model flags describe a --layers network; the exercise's is ReLU → sigmoid")
        }
        None => exercise().problem,
    };
    let mut grads = gradcheck::cpu::backprop::gradients(&problem);
    if let Some(bugs) = &args.bug {
        bugs.apply(problem.net().layout(), &mut grads)
            .context("--bug")?;
    }
    write_npz(&args.output, &problem, Some(&grads))?;
    println!(
        "wrote {} ({} parameters, {} examples, with backprop gradients{})",
        args.output.display(),
        problem.net().num_params(),
        problem.examples(),
        if args.bug.is_some() {
            " and planted bugs"
        } else {
            ""
        }
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
