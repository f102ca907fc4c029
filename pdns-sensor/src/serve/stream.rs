//! Streaming response bodies with bounded memory: a blocking thread reads
//! the store and pushes chunks of lines through a small channel; the HTTP
//! side sends them as they come. If the client goes away, the reader stops
//! at its next line.
//!
//! Lines are written into a [`BytesMut`]; a full chunk is split off and
//! frozen into the [`Bytes`] the body sends, without copying, and the
//! buffer keeps its remaining capacity for the next chunk.
//!
//! Most answers are small — a name's few records, one address — and end
//! before the first chunk fills. Such an answer is sent whole, with a
//! `Content-Length`, so headers and body leave in one write; only answers
//! larger than a chunk are sent chunked as they are read. (Measured on a
//! cached store: the chunked form cost an exact-name lookup a second
//! write and wake-up for its terminating chunk.)

use axum::body::Body;
use bytes::{BufMut, Bytes, BytesMut};
use std::convert::Infallible;
use tokio::sync::mpsc;

use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

/// Bytes gathered before a chunk is sent.
const CHUNK: usize = 32 << 10;
/// Chunks in flight: bounds memory per response at about 8 × 32 KiB.
const DEPTH: usize = 8;

/// What the reader sends: a full chunk, or the rest once it is done.
enum Piece {
    More(Bytes),
    Last(Bytes),
}

/// Where a producer writes its output.
pub(super) struct Sink {
    tx: mpsc::Sender<Piece>,
    buf: BytesMut,
    closed: bool,
}

impl Sink {
    /// Appends raw text; returns false once the client is gone.
    pub(super) fn write(&mut self, text: &str) -> bool {
        if self.closed {
            return false;
        }
        self.buf.extend_from_slice(text.as_bytes());
        if self.buf.len() >= CHUNK {
            self.flush();
        }
        !self.closed
    }

    /// Appends one JSON value and a newline.
    pub(super) fn line(&mut self, value: &(impl serde::Serialize + ?Sized)) -> bool {
        if self.closed {
            return false;
        }
        // Writing JSON into memory cannot fail.
        let _ = serde_json::to_writer((&mut self.buf).writer(), value);
        self.buf.put_u8(b'\n');
        if self.buf.len() >= CHUNK {
            self.flush();
        }
        !self.closed
    }

    fn flush(&mut self) {
        if self.buf.is_empty() || self.closed {
            return;
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        if self.tx.blocking_send(Piece::More(chunk)).is_err() {
            self.closed = true;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if !self.closed {
            let rest = self.buf.split().freeze();
            let _ = self.tx.blocking_send(Piece::Last(rest));
        }
    }
}

/// A body fed by `produce`, which runs on a blocking thread. Resolves once
/// the answer is known to fit one chunk (a `Content-Length` body) or has
/// filled its first chunk (a streamed body).
pub(super) async fn body(produce: impl FnOnce(&mut Sink) + Send + 'static) -> Body {
    let (tx, mut rx) = mpsc::channel(DEPTH);
    tokio::task::spawn_blocking(move || {
        let mut sink = Sink {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
            closed: false,
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
        // The producer panicked before it wrote anything.
        None => Body::empty(),
    }
}
