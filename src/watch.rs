//! The binary's side of a long check: a progress bar on a terminal, and Ctrl-C.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use gradcheck::monitor::{Monitor, StopFlag};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Checks shorter than this never show a bar.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Raised by the first Ctrl-C; a second one exits at once with 130.
fn stop_flag() -> Arc<StopFlag> {
    static FLAG: OnceLock<Arc<StopFlag>> = OnceLock::new();
    FLAG.get_or_init(|| {
        let flag = Arc::new(StopFlag::default());
        let raised = Arc::clone(&flag);
        // Without a handler (another one already installed) Ctrl-C still ends the process.
        let _ = ctrlc::set_handler(move || {
            if raised.is_raised() {
                std::process::exit(130);
            }
            raised.raise();
        });
        flag
    })
    .clone()
}

/// Progress on stderr when it is a terminal and the check lasts over a second (unless
/// quiet); the Ctrl-C flag either way.
pub struct Watch {
    bar: ProgressBar,
    visible: bool,
    shown: AtomicBool,
    start: Instant,
    stop: Arc<StopFlag>,
}

impl Watch {
    pub fn new(quiet: bool) -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        if let Ok(style) = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}%  ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            visible: !quiet && std::io::stderr().is_terminal(),
            shown: AtomicBool::new(false),
            start: Instant::now(),
            stop: stop_flag(),
        }
    }

    /// True once Ctrl-C was pressed.
    pub fn interrupted(&self) -> bool {
        self.stop.is_raised()
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Monitor for Watch {
    fn begin(&self, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(0);
        self.bar.reset_eta();
    }

    fn advance(&self, items: u64) {
        self.bar.inc(items);
        if self.visible
            && self.start.elapsed() > SHOW_AFTER
            && !self.shown.swap(true, Ordering::Relaxed)
        {
            self.bar.set_draw_target(ProgressDrawTarget::stderr());
        }
    }

    fn cancelled(&self) -> bool {
        let raised = self.stop.is_raised();
        if raised && !self.bar.is_finished() {
            // Ctrl-C: the bar goes at once, not when the work has wound down.
            self.bar.finish_and_clear();
        }
        raised
    }
}
