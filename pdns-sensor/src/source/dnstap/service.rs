//! The running dnstap input of `run`: listeners, one thread per sender
//! connection, and the pipeline workers they feed.
//!
//! ```text
//! listener ─accept─▶ connection thread ─┐  (read, frames, protobuf, judge)
//! listener ─accept─▶ connection thread ─┼─▶ bounded queue ─▶ worker(s) ─▶ store
//!                    connection thread ─┘    (batches)       extract, aggregate
//! ```
//!
//! Each connection thread reads its socket, cuts frames and decodes them
//! (so the protobuf work spreads over connections: PowerDNS Recursor opens
//! one per thread), and hands the responses to record over one bounded
//! queue, a batch per read. The queue is the back-pressure: when the
//! workers fall behind, connection threads wait on it, stop reading, the
//! socket buffers fill and the sender notices — its own policy then says
//! whether it waits or drops (Unbound and dnsdist drop and count on their
//! side). Nothing is discarded here for being too fast, and the time spent
//! waiting is a metric (`pdns_dnstap_backpressure_seconds_total`), as is
//! the queue's length.
//!
//! A frame is discarded only for what it is (see [`super::message`]), a
//! connection is ended only for breaking the protocol (logged, counted),
//! and neither affects the other connections.
//!
//! Shutdown ([`DnstapService::stop`]): listeners close, every connection
//! reads what its socket already holds, hands it over and closes; the
//! workers record everything queued and flush. A sender that had more to
//! send reconnects to the next sensor process.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::BytesMut;
use crossbeam_channel::{Receiver as Queue, RecvTimeoutError, Sender, TrySendError};

use super::DnstapConfig;
use super::endpoint::{Endpoint, Listener};
use super::message::Response;
use super::receiver::{DnstapStats, Ending, Receiver};
use crate::metrics;
use crate::pipeline::{PipelineConfig, PipelineError, Summary, Worker};
use crate::report::DnstapConnections;
use crate::store::Store;
use crate::vocab::packet::DnsMessage;
use crate::vocab::value::Origin;

/// Bytes asked of the socket per read.
const READ_SIZE: usize = 64 << 10;
/// Batches queued between connections and workers (each one read's worth).
const QUEUE_BATCHES: usize = 64;
/// How often blocked threads look at the stop flag (and so how long a
/// stop waits for them).
const POLL: Duration = Duration::from_millis(50);
/// Longest wait for a sender to take a handshake reply.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Counters are published at least this often while data flows.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);
/// Bytes read from a socket after the stop signal, at most.
const DRAIN_LIMIT: usize = 64 << 20;

type Batch = Vec<Response>;

/// What every thread of the service shares.
struct Shared {
    config: DnstapConfig,
    stop: AtomicBool,
    open: AtomicUsize,
    /// Everything counted so far (for the report at the end).
    stats: Mutex<DnstapStats>,
    connections: Mutex<DnstapConnections>,
    /// Connection threads, joined at stop.
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Emptied batches coming back from the workers, for reuse.
    free: Queue<Batch>,
}

/// The dnstap input, running (see the module docs).
pub struct DnstapService {
    shared: Arc<Shared>,
    acceptors: Vec<JoinHandle<()>>,
    workers: Vec<JoinHandle<Result<Summary, PipelineError>>>,
    endpoints: Vec<Endpoint>,
    /// The queue's receiving end, for its length.
    backlog: Queue<Batch>,
}

/// What the service did, at its end.
pub struct DnstapOutcome {
    pub summary: Summary,
    pub stats: DnstapStats,
    pub connections: DnstapConnections,
    /// The first error a worker stopped at (the store's).
    pub error: Option<PipelineError>,
}

impl DnstapService {
    /// Starts accepting on `listeners` and recording into `store` with
    /// `config.workers` pipeline workers (records marked as dnstap's).
    /// `pipeline.max_entries` is each worker's share of the aggregator
    /// bound: the caller divides it among every worker it starts, these
    /// and its rings (see [`PipelineConfig::per_worker`]).
    pub fn start(
        listeners: Vec<Listener>,
        config: DnstapConfig,
        pipeline: &PipelineConfig,
        store: Arc<Store>,
    ) -> Result<DnstapService> {
        let (queue, batches) = crossbeam_channel::bounded::<Batch>(QUEUE_BATCHES);
        let (free_tx, free) = crossbeam_channel::bounded::<Batch>(QUEUE_BATCHES);
        let pipeline = PipelineConfig {
            origin: Origin::DNSTAP,
            ..pipeline.clone()
        };
        let mut workers = Vec::new();
        for i in 0..config.worker_count() {
            let worker = Worker::new(
                &pipeline,
                Arc::clone(&store),
                &format!("pdns-store-dnstap-{i}"),
            )?;
            let batches = batches.clone();
            let free_tx = free_tx.clone();
            workers.push(
                std::thread::Builder::new()
                    .name(format!("pdns-dnstap-{i}"))
                    .spawn(move || work(worker, &batches, &free_tx))
                    .context("starting a dnstap worker thread")?,
            );
        }
        let endpoints: Vec<Endpoint> = listeners.iter().map(Listener::endpoint).collect();
        let shared = Arc::new(Shared {
            config,
            stop: AtomicBool::new(false),
            open: AtomicUsize::new(0),
            stats: Mutex::new(DnstapStats::default()),
            connections: Mutex::new(DnstapConnections::default()),
            threads: Mutex::new(Vec::new()),
            free,
        });
        let mut acceptors = Vec::new();
        for listener in listeners {
            let shared = Arc::clone(&shared);
            let queue = queue.clone();
            let name = listener.endpoint().to_string();
            acceptors.push(
                std::thread::Builder::new()
                    .name("pdns-dnstap-accept".into())
                    .spawn(move || accept_loop(listener, &shared, &queue))
                    .with_context(|| format!("starting the dnstap listener on {name}"))?,
            );
        }
        tracing::info!(
            "dnstap: listening on {} (recording {})",
            endpoints
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            shared.config.selection.labels().join(", ")
        );
        // From now on the acceptors and connections hold the only senders:
        // once they are all gone, the workers drain the queue and end.
        drop(queue);
        Ok(DnstapService {
            shared,
            acceptors,
            workers,
            endpoints,
            backlog: batches,
        })
    }

    /// Where senders connect (TCP ports as bound).
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// Whether a worker has stopped (the store failed): the run should end.
    pub fn failed(&self) -> bool {
        self.workers.iter().any(JoinHandle::is_finished)
    }

    /// Publishes the queue's length (called once a second).
    pub fn publish(&self) {
        metrics::publish_dnstap_backlog(self.backlog.len());
    }

    /// Stops (see the module docs) and says what was done.
    pub fn stop(self) -> DnstapOutcome {
        let DnstapService {
            shared,
            acceptors,
            workers,
            backlog,
            ..
        } = self;
        drop(backlog);
        shared.stop.store(true, Ordering::Release);
        for a in acceptors {
            let _ = a.join();
        }
        let threads = std::mem::take(&mut *lock(&shared.threads));
        for t in threads {
            let _ = t.join();
        }
        // Every sender of the queue is gone with its thread: the workers
        // drain it and end.
        let mut summary = Summary::default();
        let mut error = None;
        for w in workers {
            match w.join() {
                Ok(Ok(s)) => summary.add(&s),
                Ok(Err(e)) => {
                    error.get_or_insert(e);
                }
                Err(_) => {
                    error.get_or_insert(PipelineError::Panicked("dnstap worker"));
                }
            }
        }
        metrics::publish_dnstap_backlog(0);
        DnstapOutcome {
            summary,
            stats: lock(&shared.stats).clone(),
            connections: *lock(&shared.connections),
            error,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A worker: records the queued responses, flushing on its schedule.
fn work(
    mut worker: Worker,
    batches: &Queue<Batch>,
    free: &Sender<Batch>,
) -> Result<Summary, PipelineError> {
    loop {
        match batches.recv_timeout(POLL) {
            Ok(mut batch) => {
                for r in batch.drain(..) {
                    worker.message(&DnsMessage {
                        ts: r.ts,
                        transport: r.transport,
                        data: &r.dns,
                    })?;
                }
                let _ = free.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => worker.tick()?,
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    worker.finish()
}

/// A connected sender.
enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn set_read_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_read_timeout(t),
            Conn::Tcp(s) => s.set_read_timeout(t),
        }
    }

    fn set_write_timeout(&self, t: Option<Duration>) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_write_timeout(t),
            Conn::Tcp(s) => s.set_write_timeout(t),
        }
    }

    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        match self {
            Conn::Unix(s) => s.set_nonblocking(on),
            Conn::Tcp(s) => s.set_nonblocking(on),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Unix(s) => s.write(buf),
            Conn::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits up to [`POLL`] for `fd` to become readable.
fn wait_readable(fd: std::os::fd::RawFd) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is one valid, live pollfd; the count says one.
    unsafe {
        libc::poll(&mut pfd, 1, POLL.as_millis() as libc::c_int);
    }
}

/// Accepts connections until stopped; each gets its own thread.
fn accept_loop(listener: Listener, shared: &Arc<Shared>, queue: &Sender<Batch>) {
    let endpoint = listener.endpoint();
    let mut serial = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        let accepted = match &listener {
            Listener::Unix { listener, .. } => {
                listener.accept().map(|(s, _)| (Conn::Unix(s), None))
            }
            Listener::Tcp(l) => l.accept().map(|(s, peer)| (Conn::Tcp(s), Some(peer))),
        };
        let (conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                wait_readable(listener.raw_fd());
                continue;
            }
            Err(e) => {
                // Out of descriptors, say: wait, and try again.
                tracing::warn!("dnstap: accepting on {endpoint}: {e}");
                std::thread::sleep(POLL);
                continue;
            }
        };
        serial += 1;
        let peer = match peer {
            Some(p) => format!("{p} on {endpoint}"),
            None => format!("#{serial} on {endpoint}"),
        };
        if shared.open.load(Ordering::Acquire) >= shared.config.max_connections {
            tracing::warn!(
                "dnstap: refusing sender {peer}: {} connections open (--dnstap-max-connections)",
                shared.config.max_connections
            );
            lock(&shared.connections).refused += 1;
            metrics::publish_dnstap_connection("refused");
            continue;
        }
        // The accepted socket must block (with timeouts), whatever it
        // inherited from the listener.
        if let Err(e) = conn
            .set_nonblocking(false)
            .and_then(|()| conn.set_read_timeout(Some(POLL)))
            .and_then(|()| conn.set_write_timeout(Some(WRITE_TIMEOUT)))
        {
            tracing::warn!("dnstap: setting up the connection of {peer}: {e}");
            continue;
        }
        shared.open.fetch_add(1, Ordering::AcqRel);
        lock(&shared.connections).accepted += 1;
        metrics::publish_dnstap_connection("accepted");
        metrics::publish_dnstap_open(1);
        tracing::info!("dnstap: sender {peer} connected");
        let thread_shared = Arc::clone(shared);
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name("pdns-dnstap-conn".into())
            .spawn(move || {
                connection(conn, &peer, &thread_shared, &queue);
                thread_shared.open.fetch_sub(1, Ordering::AcqRel);
                metrics::publish_dnstap_open(-1);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = lock(&shared.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                tracing::error!("dnstap: no thread for a new connection: {e}");
                shared.open.fetch_sub(1, Ordering::AcqRel);
                metrics::publish_dnstap_open(-1);
            }
        }
    }
}

/// How a connection ended, beyond the stream's own [`Ending`].
enum End {
    Stream(Ending),
    /// The sensor is stopping.
    Shutdown,
    Io(std::io::Error),
    /// The workers are gone (the store failed).
    WorkersGone,
}

/// Reads one sender until it stops, breaks the protocol or the sensor
/// stops.
fn connection(mut conn: Conn, peer: &str, shared: &Shared, queue: &Sender<Batch>) {
    let mut receiver = Receiver::new(shared.config.max_frame, shared.config.selection);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut reply = Vec::new();
    let mut out: Batch = shared.free.try_recv().unwrap_or_default();
    let mut draining: Option<usize> = None;
    let mut published = Instant::now();
    let end = loop {
        if draining.is_none() && shared.stop.load(Ordering::Acquire) {
            let _ = conn.set_nonblocking(true);
            draining = Some(0);
        }
        let len = buf.len();
        buf.resize(len + READ_SIZE, 0);
        let read = conn.read(&mut buf[len..]);
        let n = match read {
            Ok(n) => n,
            Err(e) => {
                buf.truncate(len);
                match e.kind() {
                    ErrorKind::WouldBlock | ErrorKind::TimedOut if draining.is_some() => {
                        break End::Shutdown;
                    }
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => {
                        publish(&mut receiver.stats, shared);
                        published = Instant::now();
                        continue;
                    }
                    _ => break End::Io(e),
                }
            }
        };
        buf.truncate(len + n);
        if n == 0 {
            break End::Stream(receiver.end(&buf));
        }
        if let Some(drained) = &mut draining {
            *drained += n;
        }
        let step = receiver.process(&mut buf, &mut reply, &mut out);
        if !reply.is_empty() {
            let written = conn.write_all(&reply);
            reply.clear();
            if let Err(e) = written {
                // Unbound closes right after its STOP without waiting for
                // FINISH: the stream still ended properly.
                if !matches!(step, Ok(Some(Ending::Finished))) {
                    break End::Io(e);
                }
            }
        }
        if !out.is_empty() && !hand_over(&mut out, shared, queue) {
            break End::WorkersGone;
        }
        if published.elapsed() >= PUBLISH_EVERY {
            publish(&mut receiver.stats, shared);
            published = Instant::now();
        }
        match step {
            Ok(Some(ending)) => break End::Stream(ending),
            Ok(None) => {}
            Err(e) => break End::Stream(Ending::Protocol(e)),
        }
        if draining.is_some_and(|d| d >= DRAIN_LIMIT) {
            break End::Shutdown;
        }
    };
    if !out.is_empty() {
        hand_over(&mut out, shared, queue);
    }
    let handshake_failed =
        matches!(&end, End::Stream(Ending::Protocol(e)) if e.is_handshake() && !receiver.started());
    publish(&mut receiver.stats, shared);
    let how = {
        let mut c = lock(&shared.connections);
        match &end {
            End::Stream(Ending::Finished) => {
                c.finished += 1;
                tracing::info!("dnstap: sender {peer} stopped");
                "finished"
            }
            End::Stream(Ending::Closed) => {
                c.closed += 1;
                tracing::info!("dnstap: sender {peer} disconnected");
                "closed"
            }
            End::Stream(Ending::Truncated) => {
                c.truncated += 1;
                tracing::warn!("dnstap: sender {peer} disconnected in the middle of a frame");
                "truncated"
            }
            End::Stream(Ending::Protocol(e)) => {
                c.protocol_errors += 1;
                c.handshake_failures += u64::from(handshake_failed);
                tracing::warn!("dnstap: closing the connection of {peer}: {e}");
                "protocol_error"
            }
            End::Io(e) => {
                c.io_errors += 1;
                tracing::warn!("dnstap: connection of {peer} failed: {e}");
                "io_error"
            }
            End::Shutdown => {
                c.shutdown += 1;
                "shutdown"
            }
            End::WorkersGone => {
                c.shutdown += 1;
                "shutdown"
            }
        }
    };
    metrics::publish_dnstap_ended(how, handshake_failed);
}

/// Queues a batch for the workers, waiting (and counting the wait) while
/// the queue is full. False if the workers are gone.
fn hand_over(out: &mut Batch, shared: &Shared, queue: &Sender<Batch>) -> bool {
    let next = shared.free.try_recv().unwrap_or_default();
    let batch = std::mem::replace(out, next);
    match queue.try_send(batch) {
        Ok(()) => true,
        Err(TrySendError::Disconnected(_)) => false,
        Err(TrySendError::Full(batch)) => {
            let waited = Instant::now();
            let sent = queue.send(batch).is_ok();
            metrics::publish_dnstap_backpressure(waited.elapsed());
            sent
        }
    }
}

/// Publishes a connection's counters and adds them to the totals.
fn publish(stats: &mut DnstapStats, shared: &Shared) {
    if stats.is_empty() {
        return;
    }
    let delta = stats.take();
    metrics::publish_dnstap(&delta);
    lock(&shared.stats).add(&delta);
}
