//! Streaming response bodies with bounded memory: a blocking thread reads
//! the store and pushes chunks of lines through a small channel; the HTTP
//! side sends them as they come. If the client goes away, the reader stops
//! at its next line.
//!
//! Lines are written straight into the chunk being filled, a `Vec` with
//! room for a chunk and a long line; a full chunk becomes the [`Bytes`] the
//! body sends without copying, and the next one gets a fresh allocation.
//! (Lines were once serialized into a line buffer and copied into a
//! `BytesMut` chunk: serde_json writes a line in a dozen small pieces, each
//! a reserve check and a call into a `BytesMut`. Into a `Vec` they are
//! cheap, and the copy of every line is gone: about 5 % of a
//! 10 000-record wildcard answer's CPU in a profile.)
//!
//! Most answers are small — a name's few records, one address — and end
//! before the first chunk fills. Such an answer is sent whole, with a
//! `Content-Length`, so headers and body leave in one write; only answers
//! larger than a chunk are sent chunked as they are read. (Measured on a
//! cached store: the chunked form cost an exact-name lookup a second
//! write and wake-up for its terminating chunk.) [`answer`] goes one step
//! further for lookups of the local store: it first tries the read on the
//! request's own thread ([`super::inline`]).

use std::convert::Infallible;
use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::backend::Backend;
use super::inline;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 32 << 10;
/// Room beyond [`CHUNK`] in a chunk's allocation, for the line that fills
/// it (a longer line grows the chunk, which is correct, only slower).
const SLACK: usize = 4 << 10;
/// Chunks in flight: bounds memory per response at about 8 × 36 KiB
/// ([`CHUNK`] and [`SLACK`] each).
const DEPTH: usize = 8;
/// The most an answer read on the request's thread may hold. A larger one
/// is read again from the start on the pool, so what it wrote here is
/// lost work: two chunks hold a /24's records (about 30 KiB) and lose a
/// 2 MiB wildcard answer 3 % (with eight, 12 % of its time, measured).
const INLINE_MAX: usize = 2 * CHUNK;

/// What the reader sends: a full chunk, or the rest once it is done.
enum Piece {
    More(Bytes),
    Last(Bytes),
}

/// Where a [`Sink`]'s bytes go.
enum Out {
    /// To the HTTP side, chunk by chunk, from a blocking thread.
    Channel(mpsc::Sender<Piece>),
    /// Kept whole (a read tried on the request's thread); `full` once it
    /// outgrew [`INLINE_MAX`] and stopped taking more.
    Kept { full: bool },
}

/// Where a producer writes its output.
pub(super) struct Sink {
    out: Out,
    buf: Vec<u8>,
    closed: bool,
    deadline: Instant,
}

impl Sink {
    /// When the producer's reads must stop: the query's deadline, or the
    /// shorter budget of a read tried on the request's thread.
    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Appends raw text; returns false once the client is gone.
    pub(super) fn write(&mut self, text: &str) -> bool {
        if self.closed {
            return false;
        }
        self.buf.extend_from_slice(text.as_bytes());
        self.filled();
        !self.closed
    }

    /// Appends one JSON value and a newline.
    pub(super) fn line(&mut self, value: &(impl serde::Serialize + ?Sized)) -> bool {
        // Writing JSON into memory cannot fail.
        self.line_with(|out| {
            let _ = serde_json::to_writer(out, value);
        })
    }

    /// Appends one line that `write` writes (the newline is added); returns
    /// false once the client is gone.
    pub(super) fn line_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> bool {
        if self.closed {
            return false;
        }
        write(&mut self.buf);
        self.buf.push(b'\n');
        self.filled();
        !self.closed
    }

    /// Sends a full chunk on, or stops a kept answer that grew too big.
    fn filled(&mut self) {
        match &mut self.out {
            Out::Channel(_) if self.buf.len() >= CHUNK => self.flush(),
            Out::Kept { full } if self.buf.len() > INLINE_MAX => {
                *full = true;
                self.closed = true;
            }
            _ => {}
        }
    }

    fn flush(&mut self) {
        let Out::Channel(tx) = &self.out else { return };
        if self.buf.is_empty() || self.closed {
            return;
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, chunk_buffer()));
        if tx.blocking_send(Piece::More(chunk)).is_err() {
            self.closed = true;
        }
    }
}

/// An empty chunk with room for a full one.
fn chunk_buffer() -> Vec<u8> {
    Vec::with_capacity(CHUNK + SLACK)
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Out::Channel(tx) = &self.out
            && !self.closed
        {
            let rest = Bytes::from(std::mem::take(&mut self.buf));
            let _ = tx.blocking_send(Piece::Last(rest));
        }
    }
}

/// A body fed by `produce`, which runs on a blocking thread with a sink
/// whose deadline is `deadline`. Resolves once the answer is known to fit
/// one chunk (a `Content-Length` body) or has filled its first chunk (a
/// streamed body).
pub(super) async fn body(
    deadline: Instant,
    produce: impl FnOnce(&mut Sink) + Send + 'static,
) -> Body {
    let (tx, mut rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            out: Out::Channel(tx),
            buf: chunk_buffer(),
            closed: false,
            deadline,
        };
        produce(&mut sink);
    });
    match rx.recv().await {
        Some(Piece::Last(whole)) => Body::from(whole),
        Some(Piece::More(first)) => {
            let rest = ReceiverStream::new(rx).filter_map(|piece| match piece {
                Piece::More(b) | Piece::Last(b) if !b.is_empty() => Some(Ok::<_, Infallible>(b)),
                _ => None,
            });
            Body::from_stream(tokio_stream::once(Ok(first)).chain(rest))
        }
        // The blocking pool never ran the producer (the runtime is
        // shutting down).
        None => Body::empty(),
    }
}

/// The body of a lookup: `produce` tried on this thread first (see
/// [`super::inline`]) and kept whole when it finishes within the budget
/// and [`INLINE_MAX`]; otherwise thrown away and run again as a [`body`].
/// `produce` must take its reads' deadline from [`Sink::deadline`].
pub(super) async fn answer(
    backend: &Backend,
    deadline: Instant,
    produce: impl Fn(&mut Sink) + Send + Sync + 'static,
) -> Body {
    let kept = inline::attempt(backend, deadline, |budget| {
        let mut sink = Sink {
            out: Out::Kept { full: false },
            buf: Vec::new(),
            closed: false,
            deadline: budget,
        };
        produce(&mut sink);
        match sink.out {
            Out::Kept { full: false } => Some(Bytes::from(std::mem::take(&mut sink.buf))),
            _ => None,
        }
    });
    if let Some(whole) = kept {
        return Body::from(whole);
    }
    body(deadline, produce).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::HttpBody;
    use std::sync::Arc;

    fn store() -> (tempfile::TempDir, Backend) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        (dir, Backend::Store(Arc::new(store)))
    }

    fn lines(n: usize) -> impl Fn(&mut Sink) + Send + Sync + 'static {
        move |sink: &mut Sink| {
            for i in 0..n {
                if !sink.line(&serde_json::json!({ "line": i, "pad": "x".repeat(100) })) {
                    return;
                }
            }
        }
    }

    fn expected(n: usize) -> Vec<u8> {
        let mut sink = Vec::new();
        for i in 0..n {
            serde_json::to_writer(
                &mut sink,
                &serde_json::json!({ "line": i, "pad": "x".repeat(100) }),
            )
            .unwrap();
            sink.push(b'\n');
        }
        sink
    }

    async fn collect(body: Body) -> (Option<u64>, Vec<u8>) {
        let exact = body.size_hint().exact();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        (exact, bytes.to_vec())
    }

    /// Small answers are whole bodies (a `Content-Length`), big ones are
    /// streamed, and either way every byte arrives in order — tried on
    /// the request's thread or not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_answers_are_whole_and_big_ones_stream() {
        let (_dir, backend) = store();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        for n in [0, 1, 10, 200, 1_000, 5_000] {
            let size = expected(n).len();
            let (exact, bytes) = collect(body(later, lines(n)).await).await;
            assert_eq!(bytes, expected(n), "{n} lines, blocking");
            assert_eq!(
                exact.is_some(),
                size < CHUNK,
                "{n} lines ({size} B), blocking"
            );
            let (exact, bytes) = collect(answer(&backend, later, lines(n)).await).await;
            assert_eq!(bytes, expected(n), "{n} lines, tried inline");
            // Between one chunk and the inline cap, whole or streamed
            // depends on whether this machine wrote it within the budget.
            if size < CHUNK {
                assert!(exact.is_some(), "{n} lines ({size} B), tried inline");
            } else if size > INLINE_MAX {
                assert!(exact.is_none(), "{n} lines ({size} B), tried inline");
            }
        }
    }

    /// A read that outruns the budget on the request's thread is run
    /// again on the pool with the query's deadline, and its answer is the
    /// second run's alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_read_is_run_again_with_the_real_deadline() {
        let (_dir, backend) = store();
        let later = Instant::now() + std::time::Duration::from_secs(60);
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&runs);
        let produce = move |sink: &mut Sink| {
            let run = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // The first run sees the short budget and stops at it.
            std::thread::sleep(inline::BUDGET + std::time::Duration::from_millis(1));
            let timed_out = Instant::now() >= sink.deadline();
            sink.line(&serde_json::json!({ "run": run, "timed_out": timed_out }));
        };
        let (_, bytes) = collect(answer(&backend, later, produce).await).await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 2);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "{\"run\":1,\"timed_out\":false}\n"
        );
    }
}
