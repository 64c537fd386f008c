//! `gradcheck`: parse, run, exit 0 (pass), 1 (gradient mismatch), 2 (error) or 130
//! (interrupted by Ctrl-C).

mod bench_cmd;
mod cli;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()) {
        Ok(code) => code,
        Err(e) if matches!(e.downcast_ref(), Some(gradcheck::Error::Cancelled)) => {
            eprintln!("interrupted: nothing was reported");
            ExitCode::from(130)
        }
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
