//! `gradcheck layer FILE.npz`: one op's backward, checked as cs231n's notebooks check it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use gradcheck::layer::{check_layer, read_layer_npz, LayerOptions, LayerSettings};
use gradcheck::options::Precision;

/// What the layer command takes.
#[derive(Args, Debug)]
pub struct LayerArgs {
    /// npz file with the op's inputs under their argument names (x, w, b, gamma, beta,
    /// mask, y), the upstream gradient dout (not for a loss), the gradients dx, dw, … and
    /// optionally a string array gradcheck="op=batchnorm eps=1e-5".
    pub file: PathBuf,
    /// The op: affine, relu, leaky_relu, sigmoid, tanh, softmax_loss, svm_loss, dropout,
    /// batchnorm, layernorm, conv, max_pool, avg_pool, spatial_batchnorm,
    /// spatial_groupnorm, temporal_affine, word_embedding, temporal_softmax_loss, rnn_step
    /// [default: the file's op=].
    #[arg(help_heading = "Op", long)]
    pub op: Option<String>,
    /// A hyperparameter of the op, KEY=VALUE: eps (the norms), p (dropout's keep
    /// probability), alpha (leaky_relu), stride and pad (conv), pool_height, pool_width and
    /// stride (the pools), G (spatial_groupnorm); repeat for several. Overrides the file's.
    #[arg(help_heading = "Op", long = "set", value_name = "KEY=VALUE", action = clap::ArgAction::Append)]
    pub set: Vec<String>,
    /// Check only the inputs whose gradients are given (else a missing one is an error).
    #[arg(help_heading = "Input", long)]
    pub partial: bool,
    /// The precision the gradients were computed in, when coarser than their arrays'.
    #[arg(help_heading = "Input", long, value_enum)]
    pub grad_precision: Option<Precision>,
    /// Finite-difference step [default: 1e-5, 1e-4 and 1e-3, each coordinate's tightest
    /// bound kept]. (An op's own epsilon is a hyperparameter: --set eps=1e-5.)
    #[arg(help_heading = "Method", long, allow_hyphen_values = true)]
    pub step: Option<f64>,
    /// Largest relative difference that passes [default: 2e-7; 1e-5 for float32 gradients].
    #[arg(help_heading = "Method", long, allow_hyphen_values = true)]
    pub threshold: Option<f64>,
    /// Number of worst coordinates to name.
    #[arg(help_heading = "Output", long, default_value_t = 5)]
    pub top: usize,
    /// Write the JSON report to PATH ('-' for stdout; the table then goes to stderr).
    #[arg(help_heading = "Output", long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// No notes.
    #[arg(help_heading = "Output", long, short)]
    pub quiet: bool,
}

pub fn run_layer(args: &LayerArgs) -> Result<ExitCode> {
    let mut overrides = LayerSettings::parse_line(&args.set.join(" ")).context("--set")?;
    overrides.op = args.op.clone().or(overrides.op);
    let input = read_layer_npz(&args.file, &overrides)?;
    let opts = LayerOptions {
        step: args.step,
        threshold: args.threshold,
        top: args.top,
        grad_precision: args.grad_precision,
        partial: args.partial,
    };
    let title = format!("gradcheck layer {}", args.file.display());
    let mut report = check_layer(&title, &input, &opts)?;
    if args.quiet {
        report.warnings.retain(|w| !w.starts_with("not used"));
    }
    let to_stderr = args.json.as_deref() == Some("-");
    if to_stderr {
        eprint!("{}", report.header.render());
    } else {
        print!("{}", report.header.render());
    }
    crate::cli::emit(&report, args.json.as_deref())?;
    Ok(crate::cli::exit_code(report.verdict))
}
