//! `gradcheck`: parse, run, exit 0 (pass), 1 (gradient mismatch) or 2 (error).

mod bench_cmd;
mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the source error's formatting.
            let message = format!("{e:#}");
            eprintln!(
                "error: {}",
                message.lines().map(str::trim).collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(2)
        }
    }
}
