//! Status lines on stderr and a progress spinner for slow transfers.

use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How long a transfer runs before a spinner appears.
const SHOW_AFTER: Duration = Duration::from_secs(1);

/// Writes recall's own lines to stderr; the command's output is never touched.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reporter {
    /// Suppress status lines and spinners (warnings and failures are still printed).
    pub quiet: bool,
}

impl Reporter {
    /// A status line (`CACHE_HIT <key>`, ...), unless quiet.
    pub fn status(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// A warning or failure line, always printed.
    pub fn warn(&self, line: impl std::fmt::Display) {
        eprintln!("{line}");
    }

    /// Runs `work`; if it takes more than a second and stderr is a terminal (and not quiet),
    /// shows a spinner with `label` and the elapsed time until it ends.
    pub async fn transfer<F: Future>(&self, label: impl Into<String>, work: F) -> F::Output {
        if self.quiet || !std::io::stderr().is_terminal() {
            return work.await;
        }
        let mut work = std::pin::pin!(work);
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(SHOW_AFTER) => {}
        }
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        bar.set_message(label.into());
        bar.enable_steady_tick(Duration::from_millis(120));
        let out = work.await;
        bar.finish_and_clear();
        out
    }
}

/// A byte count for people: `512 B`, `3.2 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
