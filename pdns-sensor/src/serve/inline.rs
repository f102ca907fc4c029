//! Small reads on the request's own thread.
//!
//! A read of the local store runs on tokio's blocking pool so that a long
//! scan never holds an async worker. For the common answer — a name's few
//! records, one address — that hand-off costs more than the read: on a
//! cached store an exact-name lookup spent about 65 µs beyond `/ping`, most
//! of it waking a pool thread and being woken back (`perf`: a quarter of
//! the serving process in futex wake/wait and context switches; RocksDB
//! about 4 %).
//!
//! So a read of the local store is first *tried* here, on the worker, with
//! a short deadline of its own ([`BUDGET`]) and a cap on what it may
//! produce. A read that finishes within both is the answer. One that does
//! not is thrown away whole — nothing of it has been sent — and run again
//! on the blocking pool with the query's real deadline, where it streams
//! as before. What a big query loses is at most the budget; what it can
//! cost the worker is the budget plus one read from disk. ClickHouse reads
//! (network calls of unbounded length) are never tried here.
//!
//! Running a read twice is safe: reads have no effects, and the answer
//! sent is the second run's alone, from one consistent pass.

use std::time::{Duration, Instant};

use super::backend::Backend;
use crate::metrics;

/// How long a read may hold the worker before it is handed to the pool.
/// A lookup of one name or address takes tens of microseconds from the
/// cache and a few hundred when it reads the disk. In `run` the API
/// shares one control thread with signal handling, so this is also the
/// longest a lookup delays those.
pub(super) const BUDGET: Duration = Duration::from_millis(1);

/// Runs `read` here when the backend is the local store, giving it the
/// earlier of `deadline` and [`BUDGET`] from now. Returns its result when
/// it finished in time and said it fit (`Some`); `None` when the read
/// must run on the blocking pool instead.
pub(super) fn attempt<T>(
    backend: &Backend,
    deadline: Instant,
    read: impl FnOnce(Instant) -> Option<T>,
) -> Option<T> {
    backend.store()?;
    let budget = (Instant::now() + BUDGET).min(deadline);
    let result = read(budget);
    // A read that reached the budget may have stopped because of it (its
    // answer would say "time limit reached"): only one that finished
    // before it is complete.
    match result {
        Some(t) if Instant::now() < budget => {
            metrics::publish_api_read("inline");
            Some(t)
        }
        _ => {
            metrics::publish_api_read("handed_off");
            None
        }
    }
}
