//! The `pdns-sensor` binary: parse the command line (with the environment
//! and the configuration file), run the command. Everything else lives in
//! the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use pdns_sensor::store::memory::{self, AllocatorStats};
use tikv_jemalloc_ctl::{epoch, stats};

use pdns_sensor::cli::{
    Command, backup, clickhouse_schema, completions, config, dump, export, import_bro_pdns,
    import_zeek, ingest, manpages, progress, run, serve,
};

/// Colour in log lines only on a terminal, and never when `NO_COLOR` is
/// set to anything (no-color.org): journald, CI logs and files get plain
/// text.
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// jemalloc for the whole process: Rust through this, and C and C++
/// (RocksDB) through the unprefixed `malloc`/`free` the crate exports,
/// which the executable's symbols make everyone's (libstdc++'s `new`
/// calls `malloc`). glibc's malloc kept what RocksDB's memtables and the
/// writer's batches freed as free chunks inside its arenas, resident and
/// fragmented: in a 5-minute soak those free chunks grew from 22 to
/// 102 MiB while the bytes in use did not, and RSS crept up at every
/// flush and compaction. jemalloc returns freed pages to the kernel (see
/// [`MALLOC_CONF`]).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start (the `MALLOC_CONF` environment
/// variable still overrides them). Freed pages go back to the kernel at
/// once (`dirty_decay_ms:0`) instead of after jemalloc's default ten
/// seconds. The sensor frees big, short-lived buffers all the time: each
/// store writer builds a write batch and its sorted index keys from a full
/// aggregate (tens of MiB at 100 000 keys) and frees them once written,
/// RocksDB frees 16 MiB memtables at every flush, and under a flood of
/// unfinished TCP flows the decoder frees what it evicts as fast as it
/// allocates. Every window tried kept such pages resident beyond what was
/// allocated: ten seconds held 30–90 MiB in swings that hid any trend (the
/// bench's soak); one second let `tests/hostile_state.rs` peak at 152 MiB
/// (its bound is 131); 100 ms, 10 ms and 30 ms all left the 10 M-packet,
/// 1 M-name, two-thread ingest at 282–313 MiB with about 200 MiB allocated,
/// the rest freed pages of the writers' batches. Purging at once: 221–238
/// MiB there (one thread: 165–167). Sending only requests over 256 KiB or
/// 1 MiB to a purged-at-once arena (`oversize_threshold`) kept 237–252.
/// Purging costs system time (1.8 → 2.7 CPU-s over those 10 M packets:
/// the returned pages fault in again) but no measured throughput: the
/// bench's ingest rows, lookups on the 10 M-record store with the block
/// cache churning, and the live scenario's CPU were within run-to-run
/// noise of the 100 ms window (interleaved runs, 2026-12-06).
///
/// `serve` alone sets a window of [`SERVE_DIRTY_DECAY_MS`] instead (see
/// [`serve_decay`]).
///
/// No background threads: the purging happens on the threads that free,
/// as they free. A jemalloc thread would be started at the first
/// allocation, before `run` drops its privileges, and keep the
/// capabilities the drop takes from every other thread (the drop checks
/// every thread and refuses to go on).
#[unsafe(export_name = "malloc_conf")]
static MALLOC_CONF: Option<&'static std::ffi::c_char> =
    // SAFETY: a pointer to the first byte of a NUL-terminated static
    // string, as jemalloc reads it.
    Some(unsafe { &*c"background_thread:false,dirty_decay_ms:0,muzzy_decay_ms:0".as_ptr() });

/// How long `serve` lets freed pages stay before they go back, in ms.
///
/// A server streams its large answers in 32 KiB chunks, allocated by the
/// reading thread and freed by the runtime's workers once sent: purging
/// each at once cost a 10 000-record wildcard answer (1.6 MB) a
/// `madvise` per chunk, with a TLB shootdown across the cores, and its
/// pages faulted in again for the next answer — 5 % of the profile and
/// p50 / p99 8.3–11.3 / 16.3–17.1 ms on the bench's 10 M-record store,
/// against 6.7–7.3 / 12.2–14.7 ms with a window of 100 ms, 1 s or 10 s
/// (interleaved `wrk -c1` runs, 2026-12-06). `serve` holds none of the
/// writers' big batches that purging at once is for; what a second of its
/// frees keeps is bounded by its reads in a second.
const SERVE_DIRTY_DECAY_MS: isize = 1000;

/// Gives every arena, and those created later, `serve`'s decay window,
/// unless `MALLOC_CONF` in the environment chose the allocator's settings.
fn serve_decay() {
    if std::env::var_os("MALLOC_CONF").is_some() {
        return;
    }
    // `arena.4096` is MALLCTL_ARENAS_ALL: every arena that exists now.
    for name in [
        &b"arena.4096.dirty_decay_ms\0"[..],
        b"arenas.dirty_decay_ms\0",
    ] {
        // SAFETY: both names are NUL-terminated and take an `ssize_t`,
        // which `isize` is on every platform jemalloc supports.
        if let Err(e) = unsafe { tikv_jemalloc_ctl::raw::write(name, SERVE_DIRTY_DECAY_MS) } {
            tracing::debug!("allocator decay window not set: {e}");
        }
    }
}

/// What jemalloc holds, for `pdns_allocator_bytes` (read at every scrape).
fn allocator_stats() -> Option<AllocatorStats> {
    // The statistics are a snapshot taken at the last epoch advance.
    epoch::advance().ok()?;
    let read = |r: tikv_jemalloc_ctl::Result<usize>| r.ok().map(|v| v as u64);
    Some(AllocatorStats {
        allocated: read(stats::allocated::read())?,
        active: read(stats::active::read())?,
        resident: read(stats::resident::read())?,
        mapped: read(stats::mapped::read())?,
        retained: read(stats::retained::read())?,
        metadata: read(stats::metadata::read())?,
    })
}

/// The CPU features the build's C++ part (RocksDB) is compiled for on
/// x86_64, which has no fallback for them (see `.cargo/config.toml`):
/// without them the first checksum RocksDB computes would stop the process
/// with an illegal instruction, so the binary says so before anything
/// else. `None` when the CPU has them.
fn missing_cpu_features() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("sse4.2")
        || !std::arch::is_x86_feature_detected!("pclmulqdq")
    {
        return Some("SSE4.2 and PCLMUL (x86-64-v2)");
    }
    None
}

fn main() -> ExitCode {
    if let Some(features) = missing_cpu_features() {
        eprintln!("pdns-sensor: this build needs a CPU with {features}, which this one lacks");
        return ExitCode::FAILURE;
    }
    memory::set_allocator_stats(allocator_stats);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(progress::log_writer)
        .with_ansi(colour())
        .with_target(false)
        .init();
    let invocation = config::parse(std::env::args_os().collect()).unwrap_or_else(|e| e.exit());
    let result = match &invocation.cli.command {
        Command::Run(args) => run::run(args).map(|_| ()),
        Command::Serve(args) => {
            serve_decay();
            serve::run(args)
        }
        Command::Ingest(args) => ingest::run(args).map(|_| ()),
        Command::Dump(args) => dump::run(args).map(|_| ()),
        Command::ImportZeek(args) => import_zeek::run(args),
        Command::ImportBroPdns(args) => import_bro_pdns::run(args).map(|_| ()),
        Command::Config(args) => match &args.action {
            config::ConfigAction::Check(args) => config::check::run(args, &invocation.config),
        },
        Command::Completions(args) => completions::run(args),
        Command::Manpages(args) => manpages::run(args),
        Command::Backup(args) => backup::run(args).map(|_| ()),
        Command::Export(args) => export::run_export(args).map(|_| ()),
        Command::ClickhouseSchema(args) => clickhouse_schema::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pdns-sensor: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
