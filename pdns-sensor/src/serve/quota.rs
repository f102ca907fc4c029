//! Per-key quotas: requests per UTC hour and per UTC day, and a cap on the
//! records one query of that key may return.
//!
//! Windows are fixed and aligned to UTC (the hour from :00, the day from
//! midnight), as DNSDB counts its quotas: its clients read `limit`,
//! `remaining` and `reset` from `rate_limit`, and a fixed window gives
//! each of them a plain meaning — `reset` is the instant the count goes
//! back to zero, which `Retry-After` repeats on a refusal. A token bucket
//! would have no such instant to report.
//!
//! What counts: every request a key makes to a query path, whatever its
//! outcome (a malformed query or an empty answer costs the same), except
//! `ping` and `rate_limit`, which DNSDB does not count either. A refused
//! request costs nothing. `/metrics` takes no key and counts for no one.
//!
//! Counts live in this process's memory only: a restart gives every key a
//! fresh count for the current windows, and `serve` and `run` over the
//! same database each count their own requests.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::StatusCode;

use super::ApiError;
use super::auth::ApiKeys;
use crate::metrics;
use crate::vocab::time::format_rfc3339;

/// The time quotas are counted in: the system clock, or a clock a test
/// sets (so windows can reset without waiting an hour).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    fixed: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// A clock standing at `epoch` seconds until [`Clock::set`] moves it.
    pub fn fixed(epoch: u64) -> Clock {
        Clock {
            fixed: Some(Arc::new(AtomicU64::new(epoch))),
        }
    }

    /// Moves a fixed clock (and every clone of it); no effect on the
    /// system clock.
    pub fn set(&self, epoch: u64) {
        if let Some(t) = &self.fixed {
            t.store(epoch, Ordering::Relaxed);
        }
    }

    /// Seconds since the epoch.
    pub fn now(&self) -> u64 {
        match &self.fixed {
            Some(t) => t.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }
}

/// A quota window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Window {
    Hour,
    Day,
}

impl Window {
    const fn seconds(self) -> u64 {
        match self {
            Window::Hour => 3600,
            Window::Day => 86_400,
        }
    }

    /// The key-file option and the metrics label.
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hourly",
            Window::Day => "daily",
        }
    }

    /// Start of the window holding `now`.
    const fn start(self, now: u64) -> u64 {
        now - now % self.seconds()
    }

    /// When the window holding `now` ends (the next one starts).
    const fn reset(self, now: u64) -> u64 {
        self.start(now) + self.seconds()
    }
}

/// What a key may do; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Limits {
    pub(super) hourly: Option<u64>,
    pub(super) daily: Option<u64>,
    /// Most records one query returns (below `--results-max`).
    pub(super) results: Option<u64>,
}

impl Limits {
    pub(super) fn get(&self, window: Window) -> Option<u64> {
        match window {
            Window::Hour => self.hourly,
            Window::Day => self.daily,
        }
    }
}

/// Requests counted in the current windows.
#[derive(Debug, Default)]
struct Usage {
    /// Start of the hour `hour_used` counts in.
    hour: u64,
    hour_used: u64,
    /// Start of the day `day_used` counts in.
    day: u64,
    day_used: u64,
}

impl Usage {
    /// Starts new windows when `now` has left the counted ones.
    fn roll(&mut self, now: u64) {
        let hour = Window::Hour.start(now);
        if hour != self.hour {
            self.hour = hour;
            self.hour_used = 0;
        }
        let day = Window::Day.start(now);
        if day != self.day {
            self.day = day;
            self.day_used = 0;
        }
    }

    fn used(&self, window: Window) -> u64 {
        match window {
            Window::Hour => self.hour_used,
            Window::Day => self.day_used,
        }
    }
}

/// One credential of the key file: its label, its limits and what it used.
#[derive(Debug)]
pub(super) struct Account {
    label: String,
    limits: Limits,
    usage: Mutex<Usage>,
}

/// A request refused: the window that is used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Exceeded {
    pub(super) window: Window,
    pub(super) limit: u64,
    /// When the window resets (epoch seconds).
    pub(super) reset: u64,
}

/// Where a key stands in one window (what `rate_limit` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Standing {
    pub(super) limit: u64,
    pub(super) remaining: u64,
    pub(super) reset: u64,
}

impl Account {
    pub(super) fn new(label: String, limits: Limits) -> Account {
        Account {
            label,
            limits,
            usage: Mutex::new(Usage::default()),
        }
    }

    /// The label in metrics and logs: a name from the key file, never the
    /// secret.
    pub(super) fn label(&self) -> &str {
        &self.label
    }

    pub(super) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts one request at `now`, or refuses it when a window is used
    /// up (the day first: its reset is the later, so `Retry-After` is
    /// never too early).
    pub(super) fn admit(&self, now: u64) -> Result<(), Exceeded> {
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.roll(now);
        for window in [Window::Day, Window::Hour] {
            if let Some(limit) = self.limits.get(window)
                && usage.used(window) >= limit
            {
                return Err(Exceeded {
                    window,
                    limit,
                    reset: window.reset(now),
                });
            }
        }
        usage.hour_used += 1;
        usage.day_used += 1;
        Ok(())
    }

    /// Where the key stands at `now` in `window`, if it has a limit there.
    pub(super) fn standing(&self, window: Window, now: u64) -> Option<Standing> {
        let limit = self.limits.get(window)?;
        let mut usage = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        usage.roll(now);
        Some(Standing {
            limit,
            remaining: limit.saturating_sub(usage.used(window)),
            reset: window.reset(now),
        })
    }
}

/// Admits one counted request of `account` (none: the API has no keys),
/// publishing the outcome; over quota it is a 429 with `Retry-After`.
pub(super) fn admit(account: Option<&Account>, clock: &Clock) -> Result<(), ApiError> {
    let Some(account) = account else {
        return Ok(());
    };
    let now = clock.now();
    match account.admit(now) {
        Ok(()) => {
            metrics::publish_api_key_request(account.label());
            Ok(())
        }
        Err(e) => {
            metrics::publish_api_quota_refusal(account.label(), e.window.as_str());
            let per = match e.window {
                Window::Hour => "hour",
                Window::Day => "day",
            };
            let requests = if e.limit == 1 { "request" } else { "requests" };
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "quota exceeded: {} {requests} per {per}; resets at {}",
                    e.limit,
                    format_rfc3339(e.reset)
                ),
            )
            .retry_after(e.reset.saturating_sub(now).max(1)))
        }
    }
}

/// Makes every key's series exist from the start (at zero), so rates and
/// dashboards see a key before its first request.
pub(super) fn publish_keys(keys: &ApiKeys) {
    for account in keys.accounts() {
        let limited: Vec<&str> = [Window::Hour, Window::Day]
            .into_iter()
            .filter(|w| account.limits.get(*w).is_some())
            .map(Window::as_str)
            .collect();
        metrics::publish_api_key(account.label(), &limited);
    }
}

/// Publishes where every key with a limit stands (on scrape).
pub(super) fn publish_standing(keys: &ApiKeys, clock: &Clock) {
    let now = clock.now();
    for account in keys.accounts() {
        for window in [Window::Hour, Window::Day] {
            if let Some(s) = account.standing(window, now) {
                metrics::publish_api_quota(account.label(), window.as_str(), s.limit, s.remaining);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-01T10:00:00Z.
    const T0: u64 = 1_709_287_200;

    fn account(hourly: Option<u64>, daily: Option<u64>) -> Account {
        Account::new(
            "t".into(),
            Limits {
                hourly,
                daily,
                results: None,
            },
        )
    }

    #[test]
    fn hourly_window_refuses_then_resets_on_the_hour() {
        let a = account(Some(3), None);
        for i in 0..3 {
            assert_eq!(a.admit(T0 + i), Ok(()));
        }
        let e = a.admit(T0 + 59 * 60).unwrap_err();
        assert_eq!(e.window, Window::Hour);
        assert_eq!(e.limit, 3);
        assert_eq!(e.reset, T0 + 3600);
        // Refusals cost nothing, and the next hour starts from zero.
        assert_eq!(a.standing(Window::Hour, T0 + 3599).unwrap().remaining, 0);
        assert_eq!(a.admit(T0 + 3600), Ok(()));
        let s = a.standing(Window::Hour, T0 + 3600).unwrap();
        assert_eq!((s.limit, s.remaining, s.reset), (3, 2, T0 + 7200));
    }

    #[test]
    fn windows_are_aligned_to_utc_not_to_the_first_request() {
        let a = account(Some(1), None);
        // First request at 10:59:59: its window still ends at 11:00.
        assert_eq!(a.admit(T0 + 3599), Ok(()));
        assert_eq!(a.admit(T0 + 3599).unwrap_err().reset, T0 + 3600);
        assert_eq!(a.admit(T0 + 3600), Ok(()));
    }

    #[test]
    fn daily_window_outlasts_hours_and_resets_at_midnight() {
        let a = account(Some(10), Some(4));
        let midnight = T0 - 10 * 3600 + 86_400;
        for h in 0..4 {
            assert_eq!(a.admit(T0 + h * 3600), Ok(()));
        }
        // A fresh hour does not help: the day is used up.
        let e = a.admit(T0 + 5 * 3600).unwrap_err();
        assert_eq!((e.window, e.limit, e.reset), (Window::Day, 4, midnight));
        let s = a.standing(Window::Day, T0 + 5 * 3600).unwrap();
        assert_eq!((s.remaining, s.reset), (0, midnight));
        assert_eq!(a.admit(midnight), Ok(()));
        assert_eq!(a.standing(Window::Day, midnight).unwrap().remaining, 3);
    }

    #[test]
    fn both_windows_used_up_report_the_later_reset() {
        let a = account(Some(1), Some(1));
        assert_eq!(a.admit(T0), Ok(()));
        assert_eq!(a.admit(T0 + 1).unwrap_err().window, Window::Day);
    }

    #[test]
    fn no_limits_admit_everything() {
        let a = account(None, None);
        for i in 0..10_000 {
            assert_eq!(a.admit(T0 + i), Ok(()));
        }
        assert_eq!(a.standing(Window::Hour, T0), None);
    }

    #[test]
    fn a_fixed_clock_moves_for_every_clone() {
        let c = Clock::fixed(5);
        let d = c.clone();
        c.set(7);
        assert_eq!(d.now(), 7);
        assert!(Clock::default().now() > T0);
    }
}
