//! Watching a long evaluation from outside: progress for a bar, and a way to stop early.

use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress in work items (perturbed parameters) from the evaluating threads, and
/// is asked between pieces of work whether to stop. Implementations must be cheap: they
/// are called once per coordinate on the CPU and once per dispatch on the GPU.
pub trait Monitor: Sync {
    /// The evaluation has `total` work items (a kink re-check starts a second round).
    fn begin(&self, _total: u64) {}
    /// `items` more are done.
    fn advance(&self, _items: u64) {}
    /// True when the user asked to stop; the evaluation then ends with `Error::Cancelled`.
    fn cancelled(&self) -> bool {
        false
    }
}

/// No progress, never cancelled.
pub struct Silent;

impl Monitor for Silent {}

/// A stop flag another thread (a Ctrl-C handler) can raise.
#[derive(Default)]
pub struct StopFlag(AtomicBool);

impl StopFlag {
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Monitor for StopFlag {
    fn cancelled(&self) -> bool {
        self.is_raised()
    }
}

/// Forwards only the stop flag: for work whose progress the caller counts in its own units.
pub struct StopOnly<'a>(pub &'a dyn Monitor);

impl Monitor for StopOnly<'_> {
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Forwards progress and the stop flag but not `begin`: for work split into pieces whose
/// total the caller announced once.
pub struct Continuing<'a>(pub &'a dyn Monitor);

impl Monitor for Continuing<'_> {
    fn advance(&self, items: u64) {
        self.0.advance(items);
    }

    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Counts progress for a front end that polls it (the Python module's bar), with a stop
/// flag.
#[derive(Default)]
pub struct Counting {
    total: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    pub stop: StopFlag,
}

impl Counting {
    /// `(done, total)` of the current round.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

impl Monitor for Counting {
    fn begin(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    fn advance(&self, items: u64) {
        self.done.fetch_add(items, Ordering::Relaxed);
    }

    fn cancelled(&self) -> bool {
        self.stop.is_raised()
    }
}
