//! Progress reporting for long generations and long runs.
//!
//! A bar or spinner only makes sense for a person watching: it is drawn on
//! stderr when stderr is a terminal and the job is large, and is a plain
//! log line (or nothing) otherwise, so logs and CI output stay clean.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Jobs smaller than this finish too fast to need a bar.
const MIN_FOR_BAR: u64 = 1_000_000;

fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Creates a bar for `total` packets, or `None` when one is not wanted.
pub fn packet_bar(total: u64, what: &str) -> Option<ProgressBar> {
    count_bar(total, "packets", what)
}

/// Creates a bar for `total` items named `unit`, or `None` when one is not
/// wanted (small job, or stderr is not a terminal).
pub fn count_bar(total: u64, unit: &str, what: &str) -> Option<ProgressBar> {
    if total < MIN_FOR_BAR || !interactive() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg}} [{{bar:40}}] {{human_pos}}/{{human_len}} {unit}, eta {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    Some(bar)
}

/// A callback suitable for [`crate::r#gen::generate`] that drives `bar`.
pub fn callback(bar: &Option<ProgressBar>) -> impl FnMut(u64) + '_ {
    move |n| {
        if let Some(b) = bar {
            b.set_position(n);
        }
    }
}

/// One step of a run (a sensor or peer process, a load test): a spinner
/// with the elapsed time on a terminal, a log line otherwise; when dropped
/// it leaves one line saying how long the step took.
pub struct Step {
    what: String,
    started: Instant,
    spinner: Option<ProgressBar>,
}

/// Starts a [`Step`] described by `what`.
pub fn step(what: impl Into<String>) -> Step {
    let what = what.into();
    let spinner = if interactive() {
        let s = ProgressBar::new_spinner();
        s.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
        );
        s.set_message(what.clone());
        s.enable_steady_tick(Duration::from_millis(200));
        Some(s)
    } else {
        eprintln!("{what}");
        None
    };
    Step {
        what,
        started: Instant::now(),
        spinner,
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        if let Some(s) = self.spinner.take() {
            s.finish_and_clear();
            eprintln!(
                "{} ({:.1} s)",
                self.what,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
