//! Signs of life on long work: an `ingest` of a 30 GB capture or an
//! `import-zeek` of years of logs runs for minutes.
//!
//! - On a terminal (stderr is a tty): a bar with the bytes read of the
//!   total, packets or lines per second and the time left. It appears once
//!   the job has run for a second, so a quick job leaves no trace.
//! - Otherwise (journald, a pipe, a file): a log line every
//!   `--status-interval` seconds with the same numbers.
//! - `--quiet`: neither.
//!
//! The numbers come from a [`ReadProgress`] that the reading thread bumps
//! (see there: a relaxed atomic per buffer and per few thousand items,
//! never per packet). This module polls it from a thread of its own, so
//! nothing is drawn on the hot path, and a line still comes while the
//! reader waits on a slow pipe.
//!
//! A log line printed while the bar is drawn (a warning about a truncated
//! file) goes through [`log_writer`], which lifts the bar out of its way:
//! otherwise the two would be drawn over each other.

use std::io::{self, IsTerminal, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanCount, HumanDuration, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::source::progress::ReadProgress;

/// How long a job runs before its bar appears.
const BAR_DELAY: Duration = Duration::from_secs(1);

/// How often the bar is refreshed.
const BAR_TICK: Duration = Duration::from_millis(200);

/// What is being done, for the display.
pub(crate) struct Job {
    /// The command, as the log lines name it (`ingest`).
    pub(crate) what: &'static str,
    /// What `items` counts (`packets`, `lines`).
    pub(crate) unit: &'static str,
    /// Total bytes to read, when known (not for a pipe).
    pub(crate) total: Option<u64>,
    pub(crate) progress: Arc<ReadProgress>,
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Display {
    Off,
    Bar,
    /// A log line at this interval.
    Lines(Duration),
}

impl Display {
    /// A bar on a terminal, lines every `interval_secs` otherwise, nothing
    /// when quiet.
    pub(crate) fn choose(quiet: bool, interval_secs: u64) -> Display {
        if quiet {
            Display::Off
        } else if io::stderr().is_terminal() {
            Display::Bar
        } else {
            Display::Lines(Duration::from_secs(interval_secs.max(1)))
        }
    }
}

/// The thread showing a job's progress; stopped (and its bar cleared) by
/// [`Reporter::finish`] or when dropped.
pub(crate) struct Reporter {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reporter {
    pub(crate) fn start(job: Job, display: Display) -> Reporter {
        match display {
            Display::Off => Reporter {
                stop: None,
                thread: None,
            },
            Display::Bar => Reporter::spawn(move |stop| bar_loop(&job, &stop)),
            Display::Lines(interval) => Reporter::spawn(move |stop| {
                lines_loop(&job, interval, &stop, |line| tracing::info!("{line}"))
            }),
        }
    }

    fn spawn(body: impl FnOnce(mpsc::Receiver<()>) + Send + 'static) -> Reporter {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pdns-progress".into())
            .spawn(move || body(rx));
        match thread {
            Ok(thread) => Reporter {
                stop: Some(tx),
                thread: Some(thread),
            },
            // Progress is a courtesy: the job runs without it.
            Err(e) => {
                tracing::debug!("no progress display: {e}");
                Reporter {
                    stop: None,
                    thread: None,
                }
            }
        }
    }

    /// Stops the display (clearing the bar) before the summary is printed.
    pub(crate) fn finish(self) {}
}

impl Drop for Reporter {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits `timeout` for the stop signal; true when it is time to stop.
fn stopped(stop: &mpsc::Receiver<()>, timeout: Duration) -> bool {
    !matches!(stop.recv_timeout(timeout), Err(RecvTimeoutError::Timeout))
}

/// The bar currently drawn, for [`log_writer`].
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn set_active(bar: Option<ProgressBar>) {
    *ACTIVE_BAR.lock().unwrap_or_else(PoisonError::into_inner) = bar;
}

fn bar_loop(job: &Job, stop: &mpsc::Receiver<()>) {
    // Hidden at first, but fed from the start: once drawn, its elapsed
    // time, rate and ETA cover the whole job.
    let bar = new_bar(job, ProgressDrawTarget::hidden());
    let started = Instant::now();
    let mut rate = Rate::new(job.progress.items());
    let mut shown = false;
    loop {
        refresh(&bar, job, &mut rate);
        if !shown && started.elapsed() >= BAR_DELAY {
            bar.set_draw_target(ProgressDrawTarget::stderr());
            set_active(Some(bar.clone()));
            shown = true;
        }
        if stopped(stop, BAR_TICK) {
            break;
        }
    }
    if shown {
        set_active(None);
    }
    bar.finish_and_clear();
}

/// A bar (or, with no total, a spinner) for `job`.
fn new_bar(job: &Job, target: ProgressDrawTarget) -> ProgressBar {
    // Short enough to leave the bar room on an 80-column terminal.
    let (bar, template) = match job.total {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), target),
            "{prefix} {elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {msg} ETA {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, target),
            "{spinner} {prefix} {elapsed_precise} {binary_bytes} read ({binary_bytes_per_sec}) {msg}",
        ),
    };
    // Plain text: no colour (NO_COLOR and the log lines' rule hold here too).
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(job.what);
    bar.set_message(format!("0 {}/s", job.unit));
    bar
}

fn refresh(bar: &ProgressBar, job: &Job, rate: &mut Rate) {
    bar.set_position(job.progress.bytes());
    if let Some(per_sec) = rate.update(job.progress.items(), Duration::from_secs(1)) {
        bar.set_message(format!("{} {}/s", compact(per_sec), job.unit));
    }
}

/// A count in few characters: `9,999`, `123.4k`, `1.05M`.
fn compact(n: u64) -> String {
    match n {
        0..10_000 => HumanCount(n).to_string(),
        10_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// Items per second over the last window.
struct Rate {
    since: Instant,
    items: u64,
}

impl Rate {
    fn new(items: u64) -> Rate {
        Rate {
            since: Instant::now(),
            items,
        }
    }

    /// The rate since the last update, once `window` has passed.
    fn update(&mut self, items: u64, window: Duration) -> Option<u64> {
        let elapsed = self.since.elapsed();
        if elapsed < window {
            return None;
        }
        let per_sec = (items.saturating_sub(self.items) as f64 / elapsed.as_secs_f64()) as u64;
        *self = Rate::new(items);
        Some(per_sec)
    }
}

fn lines_loop(
    job: &Job,
    interval: Duration,
    stop: &mpsc::Receiver<()>,
    mut emit: impl FnMut(&str),
) {
    let started = Instant::now();
    let mut rate = Rate::new(job.progress.items());
    while !stopped(stop, interval) {
        let items = job.progress.items();
        let per_sec = rate.update(items, Duration::ZERO).unwrap_or(0);
        emit(&line(
            job,
            job.progress.bytes(),
            items,
            per_sec,
            started.elapsed(),
        ));
    }
}

/// One progress line: `ingest: 1.20 GiB of 30.00 GiB (4.0%), 12,345,678
/// packets, 210,345 packets/s, ETA 4 minutes`.
fn line(job: &Job, bytes: u64, items: u64, per_sec: u64, elapsed: Duration) -> String {
    let counts = format!(
        "{} {unit}, {} {unit}/s",
        HumanCount(items),
        HumanCount(per_sec),
        unit = job.unit
    );
    match job.total {
        Some(total) if total > 0 => {
            let done = bytes.min(total);
            let eta = if done == 0 {
                "unknown".to_string()
            } else {
                let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
                HumanDuration(Duration::from_secs_f64(left)).to_string()
            };
            format!(
                "{}: {} of {} ({:.1}%), {counts}, ETA {eta}",
                job.what,
                HumanBytes(done),
                HumanBytes(total),
                done as f64 * 100.0 / total as f64,
            )
        }
        // A source not read as bytes (database rows): items alone.
        None if bytes == 0 => format!("{}: {counts}", job.what),
        _ => format!("{}: {} read, {counts}", job.what, HumanBytes(bytes)),
    }
}

/// The writer of log lines (`tracing`): stderr, with the progress bar, if
/// one is drawn, lifted out of the way of each line.
pub fn log_writer() -> LogWriter {
    LogWriter
}

/// See [`log_writer`].
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let bar = ACTIVE_BAR
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write(buf)),
            None => io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(total: Option<u64>) -> Job {
        Job {
            what: "ingest",
            unit: "packets",
            total,
            progress: Arc::default(),
        }
    }

    #[test]
    fn lines_say_how_far_how_fast_and_how_long_to_go() {
        let j = job(Some(4 << 30));
        assert_eq!(
            line(&j, 1 << 30, 12_345_678, 210_345, Duration::from_secs(60)),
            "ingest: 1.00 GiB of 4.00 GiB (25.0%), 12,345,678 packets, 210,345 packets/s, ETA 3 minutes"
        );
        assert_eq!(
            line(&j, 0, 0, 0, Duration::from_secs(5)),
            "ingest: 0 B of 4.00 GiB (0.0%), 0 packets, 0 packets/s, ETA unknown"
        );
        // A pipe: no total, no ETA.
        assert_eq!(
            line(&job(None), 3 << 20, 9, 3, Duration::from_secs(5)),
            "ingest: 3.00 MiB read, 9 packets, 3 packets/s"
        );
        assert_eq!(
            line(&job(None), 0, 9, 3, Duration::from_secs(5)),
            "ingest: 9 packets, 3 packets/s"
        );
    }

    #[test]
    fn a_line_comes_every_interval_until_stopped() {
        let j = job(Some(1000));
        let progress = Arc::clone(&j.progress);
        let (tx, rx) = mpsc::channel();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let thread = std::thread::spawn(move || {
            lines_loop(&j, Duration::from_millis(50), &rx, |l| {
                sink.lock().unwrap().push(l.to_string())
            })
        });
        progress.add_bytes(500);
        progress.add_items(7);
        std::thread::sleep(Duration::from_millis(400));
        drop(tx);
        thread.join().unwrap();
        let lines = lines.lock().unwrap();
        assert!(lines.len() >= 3, "{lines:?}");
        assert!(
            lines
                .last()
                .unwrap()
                .starts_with("ingest: 500 B of 1000 B (50.0%), 7 packets"),
            "{lines:?}"
        );
    }

    /// A terminal that keeps what is written to it.
    #[derive(Debug, Default, Clone)]
    struct Screen(Arc<Mutex<String>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            160
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            self.write_str("\n")
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact(9_999), "9,999");
        assert_eq!(compact(123_456), "123.5k");
        assert_eq!(compact(1_049_155), "1.05M");
    }

    #[test]
    fn the_bar_shows_bytes_of_the_total_rate_and_eta() {
        let j = job(Some(10 << 20));
        let screen = Screen::default();
        let bar = new_bar(&j, ProgressDrawTarget::term_like(Box::new(screen.clone())));
        let mut rate = Rate::new(0);
        j.progress.add_bytes(5 << 20);
        j.progress.add_items(1234);
        std::thread::sleep(Duration::from_millis(1100));
        refresh(&bar, &j, &mut rate);
        bar.tick();
        let text = screen.0.lock().unwrap().clone();
        let last = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
        assert!(last.starts_with("ingest 00:00:0"), "{last}");
        assert!(last.contains(" [=="), "{last}");
        assert!(last.contains("] 5.00 MiB/10.00 MiB 1,"), "{last}");
        assert!(last.contains(" packets/s ETA "), "{last}");
        assert!(last.len() <= 160, "{last}");
        assert!(!text.contains('\u{1b}'), "colour in the bar: {text:?}");
    }
}
