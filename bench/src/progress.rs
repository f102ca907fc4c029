//! Progress reporting for long generations.
//!
//! A bar only makes sense for a person watching: it is drawn on stderr when
//! stderr is a terminal and the job is large, and is a no-op otherwise so
//! logs and CI output stay clean.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Jobs smaller than this finish too fast to need a bar.
const MIN_FOR_BAR: u64 = 1_000_000;

/// Creates a bar for `total` packets, or `None` when one is not wanted.
pub fn packet_bar(total: u64, what: &str) -> Option<ProgressBar> {
    if total < MIN_FOR_BAR || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} packets, eta {eta}")
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
