//! `gradcheck`: parse, run, exit 0 (pass), 1 (gradient mismatch), 2 (error), 3
//! (inconclusive) or 130 (interrupted by Ctrl-C).

mod bench_cmd;
mod cli;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Mesa's device-select Vulkan layer prints "XDG_RUNTIME_DIR is invalid" lines that
    // look like gradcheck's own errors and selects nothing gradcheck needs. Set before any
    // thread starts.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
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
