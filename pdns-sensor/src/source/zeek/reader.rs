//! Reading log files: plain or gzip, told apart by content, and split into
//! lines with bounded memory.
//!
//! Compression is detected from the magic bytes (`1f 8b`), never from the
//! name: rotated archives are `.log.gz`, but a renamed or hand-compressed
//! file must work too. Multi-member gzip (concatenated `.gz`) is read to
//! the end. Other compressions are recognised only to say so clearly.
//!
//! A file's identity for idempotent imports is the SHA-256 of its
//! *decompressed* bytes ([`hash_content`]), so the same log plain and
//! gzipped is the same file. A truncated or corrupt gzip stream is hashed
//! and read up to the last byte that decoded; the error is returned beside
//! what was read, so everything before the damage is kept.
//!
//! [`LineReader`] hands out lines as slices of one reused buffer (no
//! allocation per line), tracks the byte position after the last line it
//! returned (the resume point persisted with the data), and can feed every
//! byte it consumes to a running hash (used by the follower). A line longer
//! than its bound is skipped, not buffered: binary garbage cannot exhaust
//! memory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

use flate2::read::MultiGzDecoder;
use sha2::{Digest, Sha256};

use crate::source::progress::{Counted, ReadProgress};

/// Longest line kept; longer ones are skipped and counted.
pub const MAX_LINE: usize = 1 << 20;
/// Read size.
const CHUNK: usize = 256 * 1024;

/// How a file is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Plain,
    Gzip,
}

/// Opens a log, transparently decompressing gzip.
pub fn open(path: &Path) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    stream(File::open(path)?)
}

/// [`open`], counting the bytes read from the file (compressed, for a gzip
/// log) in `progress`.
pub(crate) fn open_counted(
    path: &Path,
    progress: &Arc<ReadProgress>,
) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    stream(Counted::new(File::open(path)?, Arc::clone(progress)))
}

fn stream(mut file: impl Read + Send + 'static) -> io::Result<(Box<dyn Read + Send>, Compression)> {
    let mut magic = [0u8; 6];
    let mut n = 0;
    while n < magic.len() {
        match file.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &magic[..n];
    let other = if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some("zstd")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    };
    if let Some(kind) = other {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "compressed with {kind}; only plain and gzip logs are read (decompress it first)"
            ),
        ));
    }
    let stream = io::Cursor::new(head.to_vec()).chain(file);
    if head.starts_with(&[0x1f, 0x8b]) {
        let decoder = MultiGzDecoder::new(BufReader::with_capacity(CHUNK, stream));
        Ok((Box::new(decoder), Compression::Gzip))
    } else {
        Ok((Box::new(stream), Compression::Plain))
    }
}

/// The content hash of a log.
#[derive(Debug)]
pub struct ContentHash {
    /// SHA-256 of the decompressed bytes read, lowercase hex.
    pub sha256: String,
    /// Decompressed bytes read.
    pub len: u64,
    pub compression: Compression,
    /// Why reading stopped early (truncated or corrupt gzip, I/O error).
    pub error: Option<io::Error>,
}

/// Hashes a file's decompressed content (a first pass before importing).
pub fn hash_content(path: &Path) -> io::Result<ContentHash> {
    hash_content_and_prefixes(path, &mut [])
}

/// [`hash_content`], also hashing the content's first `n` bytes for each
/// `(n, hash)` of `prefixes`: each hash is filled in (lowercase hex) when
/// the content is at least `n` bytes long, and left empty otherwise. One
/// pass over the file, however many prefixes.
pub fn hash_content_and_prefixes(
    path: &Path,
    prefixes: &mut [(u64, String)],
) -> io::Result<ContentHash> {
    let (mut reader, compression) = open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    let mut error = None;
    let mut order: Vec<usize> = (0..prefixes.len()).collect();
    order.sort_by_key(|&i| prefixes[i].0);
    for &i in &order {
        prefixes[i].1.clear();
    }
    let mut next = order.iter().peekable();
    while let Some(&&i) = next.peek() {
        if prefixes[i].0 > 0 {
            break;
        }
        prefixes[i].1 = hex(&hasher.clone().finalize());
        next.next();
    }
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut chunk = &buf[..n];
                while let Some(&&i) = next.peek() {
                    let Some(take) = prefixes[i]
                        .0
                        .checked_sub(len)
                        .filter(|&t| t <= chunk.len() as u64)
                    else {
                        break;
                    };
                    let (head, rest) = chunk.split_at(take as usize);
                    hasher.update(head);
                    len += take;
                    chunk = rest;
                    prefixes[i].1 = hex(&hasher.clone().finalize());
                    next.next();
                }
                hasher.update(chunk);
                len += chunk.len() as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    Ok(ContentHash {
        sha256: hex(&hasher.finalize()),
        len,
        compression,
        error,
    })
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// One line handed out by [`LineReader::next_line`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// The line without its `\n`.
    Text(&'a [u8]),
    /// A line longer than the bound, skipped.
    TooLong,
}

/// Splits a byte stream into lines.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Where to resume looking for `\n` in `buf[start..end]`.
    scanned: usize,
    /// Bytes consumed: the position just after the last line returned.
    pos: u64,
    /// Discarding an over-long line until its end.
    discarding: bool,
    hasher: Option<Sha256>,
    max_line: usize,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; CHUNK],
            start: 0,
            end: 0,
            scanned: 0,
            pos: 0,
            discarding: false,
            hasher: None,
            max_line: MAX_LINE,
        }
    }

    /// Also hashes every consumed byte (see [`LineReader::hash_hex`]).
    pub fn with_hash(mut self) -> Self {
        self.hasher = Some(Sha256::new());
        self
    }

    pub fn with_max_line(mut self, max: usize) -> Self {
        self.max_line = max.max(1);
        self
    }

    /// The position after the last line returned.
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Bytes read from the inner reader but not returned yet (a partial
    /// last line).
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// SHA-256 (hex) of the bytes consumed so far, if hashing.
    pub fn hash_hex(&self) -> Option<String> {
        self.hasher.as_ref().map(|h| hex(&h.clone().finalize()))
    }

    fn consume(&mut self, n: usize) {
        if let Some(h) = &mut self.hasher {
            h.update(&self.buf[self.start..self.start + n]);
        }
        self.start += n;
        self.pos += n as u64;
    }

    /// The next line. At the end of the data a last line without `\n` is
    /// returned only if `take_partial` (a finished file); otherwise it stays
    /// buffered until more data arrives (a file being written).
    pub fn next_line(&mut self, take_partial: bool) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.scanned..self.end]) {
                let nl = self.scanned + i;
                let line_start = self.start;
                self.consume(nl + 1 - self.start);
                self.scanned = self.start;
                if self.discarding || nl - line_start > self.max_line {
                    self.discarding = false;
                    return Ok(Some(Line::TooLong));
                }
                return Ok(Some(Line::Text(&self.buf[line_start..nl])));
            }
            self.scanned = self.end;
            if self.end - self.start > self.max_line {
                // Too long: drop what is buffered and keep dropping until
                // the end of the line.
                self.consume(self.end - self.start);
                self.scanned = self.start;
                self.discarding = true;
            }
            if self.start > 0 && (self.start == self.end || self.end == self.buf.len()) {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.scanned -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grown = (self.buf.len() * 2).min(self.max_line + CHUNK + 1);
                self.buf.resize(grown.max(self.buf.len() + CHUNK), 0);
            }
            let n = match self.inner.read(&mut self.buf[self.end..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                if take_partial && self.end > self.start {
                    let line_start = self.start;
                    let line_end = self.end;
                    self.consume(self.end - self.start);
                    self.scanned = self.start;
                    if self.discarding || line_end - line_start > self.max_line {
                        self.discarding = false;
                        return Ok(Some(Line::TooLong));
                    }
                    return Ok(Some(Line::Text(&self.buf[line_start..line_end])));
                }
                if take_partial && self.discarding {
                    self.discarding = false;
                    return Ok(Some(Line::TooLong));
                }
                return Ok(None);
            }
            self.end += n;
        }
    }

    /// Gives the inner reader back (buffered bytes are dropped).
    pub fn into_inner(self) -> R {
        self.inner
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_hashed_in_the_same_pass() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        // Longer than one read, so prefixes fall inside, at and across
        // read boundaries.
        let data: Vec<u8> = (0..CHUNK * 2 + 777).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let at = [
            0,
            1,
            4096,
            CHUNK - 1,
            CHUNK,
            CHUNK + 1,
            data.len(),
            data.len() + 1,
        ];
        let mut prefixes: Vec<(u64, String)> = at
            .iter()
            .rev()
            .map(|&n| (n as u64, "stale".to_string()))
            .collect();
        let whole = hash_content_and_prefixes(&path, &mut prefixes).unwrap();
        assert_eq!(whole.len, data.len() as u64);
        assert_eq!(whole.sha256, hex(&Sha256::digest(&data)));
        for (n, hash) in &prefixes {
            let n = *n as usize;
            if n > data.len() {
                assert!(hash.is_empty(), "past the end: {n}");
            } else {
                assert_eq!(*hash, hex(&Sha256::digest(&data[..n])), "prefix {n}");
            }
        }
    }

    fn lines(data: &[u8], max: usize, chunk: usize) -> Vec<Line<'static>> {
        struct Slow<'a>(&'a [u8], usize);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(self.1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut r = LineReader::new(Slow(data, chunk)).with_max_line(max);
        let mut out = Vec::new();
        while let Some(l) = r.next_line(true).unwrap() {
            out.push(match l {
                Line::Text(t) => Line::Text(t.to_vec().leak()),
                Line::TooLong => Line::TooLong,
            });
        }
        assert_eq!(r.pos(), data.len() as u64);
        out
    }

    #[test]
    fn splits_lines_across_reads() {
        let data = b"one\ntwo\n\nthree";
        for chunk in [1, 2, 3, 100] {
            assert_eq!(
                lines(data, 100, chunk),
                vec![
                    Line::Text(b"one"),
                    Line::Text(b"two"),
                    Line::Text(b""),
                    Line::Text(b"three")
                ]
            );
        }
    }

    #[test]
    fn long_lines_are_skipped() {
        let mut data = vec![b'x'; 50];
        data.extend_from_slice(b"\nok\n");
        data.extend(vec![b'y'; 30]);
        for chunk in [1, 7, 1000] {
            assert_eq!(
                lines(&data, 10, chunk),
                vec![Line::TooLong, Line::Text(b"ok"), Line::TooLong]
            );
        }
    }

    #[test]
    fn partial_lines_wait_and_hash_follows_consumption() {
        let mut r = LineReader::new(io::Cursor::new(b"a\nb".to_vec())).with_hash();
        assert_eq!(r.next_line(false).unwrap(), Some(Line::Text(b"a")));
        assert_eq!(r.next_line(false).unwrap(), None);
        assert_eq!(r.pos(), 2);
        assert_eq!(r.buffered(), 1);
        assert_eq!(r.hash_hex().unwrap(), hex(&Sha256::digest(b"a\n")));
    }

    #[test]
    fn gzip_is_detected_by_content() {
        use flate2::{Compression as Level, write::GzEncoder};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("dns.log");
        let gz = dir.path().join("renamed.txt");
        std::fs::write(&plain, b"hello\n").unwrap();
        let mut enc = GzEncoder::new(Vec::new(), Level::default());
        enc.write_all(b"hello\n").unwrap();
        let bytes = enc.finish().unwrap();
        std::fs::write(&gz, &bytes).unwrap();
        let a = hash_content(&plain).unwrap();
        let b = hash_content(&gz).unwrap();
        assert_eq!(a.sha256, b.sha256);
        assert_eq!(b.compression, Compression::Gzip);
        // Truncated: an error, and what decoded before it.
        std::fs::write(&gz, &bytes[..bytes.len() - 6]).unwrap();
        let c = hash_content(&gz).unwrap();
        assert!(c.error.is_some());
    }
}
