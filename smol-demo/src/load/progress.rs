//! A one-line progress bar on stderr.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// What the bar shows besides progress.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counts {
    pub(super) ok: u64,
    pub(super) errors: u64,
    pub(super) dropped: u64,
    pub(super) in_flight: u64,
}

/// A one-line progress bar on stderr, redrawn at most every 200 ms.
pub(super) struct Progress {
    enabled: bool,
    last: Option<Instant>,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Self {
        Progress {
            enabled,
            last: None,
        }
    }

    /// Redraws the bar: `due` of `total` requests have fallen due.
    pub(super) fn draw(&mut self, due: u64, total: u64, counts: Counts) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now - last < Duration::from_millis(200))
            && due < total
        {
            return;
        }
        self.last = Some(now);
        const WIDTH: u64 = 30;
        let filled = (due * WIDTH / total.max(1)) as usize;
        let mut stderr = std::io::stderr().lock();
        let _ = write!(
            stderr,
            "\r[{}{}] {:>3}%  ok {}  errors {}  dropped {}  in flight {}   ",
            "#".repeat(filled),
            " ".repeat(WIDTH as usize - filled),
            due * 100 / total.max(1),
            counts.ok,
            counts.errors,
            counts.dropped,
            counts.in_flight,
        );
        let _ = stderr.flush();
    }

    /// Erases the bar.
    pub(super) fn clear(&mut self) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{}\r", " ".repeat(90));
            let _ = stderr.flush();
        }
    }
}
