//! Live progress on the terminal (indicatif): elapsed against planned time, achieved against
//! target rate, corrected p99 so far, errors, late sends and the server's RSS, refreshed
//! once a second by the sampler.
//!
//! Bars are hidden unless stdout is a terminal and `--quiet` is off, so logs and pipes get
//! only the final summary.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::mebibytes;

/// Whether live progress should be drawn.
pub fn enabled(quiet: bool) -> bool {
    !quiet && std::io::stdout().is_terminal()
}

/// A bar counting seconds up to `total`, labelled `label`; hidden when `visible` is false.
pub fn bar(total: Duration, label: &str, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total.as_secs().max(1)), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{prefix}{elapsed:>4} {bar:24.cyan/blue} {pos:>4}/{len}s {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    if !label.is_empty() {
        bar.set_prefix(format!("{label:<18} "));
    }
    bar
}

/// One bar per label, drawn together (the demo's two runs).
pub fn bars(total: Duration, labels: &[&str], visible: bool) -> (MultiProgress, Vec<ProgressBar>) {
    let group = MultiProgress::with_draw_target(if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let bars = labels.iter().map(|label| group.add(bar(total, label, visible))).collect();
    (group, bars)
}

/// What the sampler shows each second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Seconds since the start.
    pub elapsed_s: f64,
    /// Responses per second in the last interval.
    pub achieved_rps: f64,
    /// `--rps`, shown beside the achieved rate.
    pub target_rps: f64,
    /// Corrected p99 of the measured window so far.
    pub p99_ms: Option<f64>,
    /// Errors in the measured window so far.
    pub errors: u64,
    /// Late sends so far.
    pub late: u64,
    /// The server's RSS at the last scrape.
    pub server_rss_bytes: Option<f64>,
}

impl Status {
    /// The one-line message the progress bar shows beside the elapsed time.
    pub fn message(&self) -> String {
        format!(
            "{:.0}/{:.0} rps  p99 {}  errors {}  late {}  server RSS {}",
            self.achieved_rps,
            self.target_rps,
            self.p99_ms.map_or_else(|| "-".to_owned(), |p99| format!("{p99:.2} ms")),
            self.errors,
            self.late,
            mebibytes(self.server_rss_bytes)
        )
    }

    /// Shows the status on `bar`.
    pub fn show(&self, bar: &ProgressBar) {
        bar.set_position(self.elapsed_s as u64);
        bar.set_message(self.message());
    }
}
