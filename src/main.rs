//! `gradcheck`: parse, run, exit 0 (pass), 1 (gradient mismatch), 2 (error), 3
//! (inconclusive) or 130 (interrupted by Ctrl-C).

mod bench_cmd;
mod cli;
mod layer_cmd;
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
    // Bad flags get one line too (clap adds usage and tips); help and version print whole.
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            eprintln!(
                "{} (see --help)",
                text.lines().next().unwrap_or("error: bad arguments")
            );
            return ExitCode::from(2);
        }
    };
    match cli::run(cli) {
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
