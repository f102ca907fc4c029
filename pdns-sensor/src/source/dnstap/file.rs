//! Frame Streams files: what `fstrm_capture` and BIND's `dnstap-output
//! file` write, read by `ingest` beside pcap and pcapng.
//!
//! A file is a unidirectional stream (START, data frames, STOP) and is read
//! by the same [`Receiver`] as a socket. It is recognised by its content,
//! not its name: an escape (four zero bytes), a control length, and the
//! START control type — no pcap or pcapng file starts with zeros.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use bytes::BytesMut;

use super::message::{Response, Selection};
use super::receiver::{DnstapStats, Ending, Receiver};

/// Bytes read per call.
const READ_SIZE: usize = 256 << 10;

/// Whether a file starting with `head` is a Frame Streams file (at least
/// its first 12 bytes are needed).
pub fn is_frame_streams(head: &[u8]) -> bool {
    head.len() >= 12 && head[..4] == [0; 4] && head[8..12] == [0, 0, 0, 2]
}

/// Whether the file at `path` is a Frame Streams file. Only a regular file
/// is looked at: reading the start of a pipe would take it from the pcap
/// reader (a dnstap stream is piped in through a socket, not a pipe).
pub fn detect(path: &Path) -> std::io::Result<bool> {
    if !std::fs::metadata(path)?.is_file() {
        return Ok(false);
    }
    let mut head = [0u8; 12];
    let mut file = File::open(path)?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(is_frame_streams(&head[..got]))
}

/// What reading one file found.
#[derive(Debug)]
pub struct FileRead {
    pub stats: DnstapStats,
    /// How the stream in it ended: `Finished` (STOP), `Closed` (no STOP: a
    /// file still being written), `Truncated` (cut inside a frame, which is
    /// lost), or a protocol error (what came before it was read).
    pub ending: Ending,
}

/// Reads a Frame Streams file, calling `on_response` for every response
/// to record, and `on_bytes` with the bytes read (for progress).
pub fn read_file(
    path: &Path,
    max_frame: usize,
    selection: Selection,
    mut on_bytes: impl FnMut(u64),
    mut on_response: impl FnMut(&Response),
) -> std::io::Result<FileRead> {
    let mut file = File::open(path)?;
    let mut receiver = Receiver::new(max_frame, selection);
    let mut buf = BytesMut::with_capacity(READ_SIZE);
    let mut out = Vec::new();
    let mut reply = Vec::new();
    let ending = loop {
        let len = buf.len();
        buf.resize(len + READ_SIZE, 0);
        let n = match file.read(&mut buf[len..]) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {
                buf.truncate(len);
                continue;
            }
            Err(e) => return Err(e),
        };
        buf.truncate(len + n);
        on_bytes(n as u64);
        if n == 0 {
            break receiver.end(&buf);
        }
        let step = receiver.process(&mut buf, &mut reply, &mut out);
        for response in out.drain(..) {
            on_response(&response);
        }
        match step {
            Ok(Some(ending)) => break ending,
            Ok(None) => {}
            Err(e) => break Ending::Protocol(e),
        }
    };
    Ok(FileRead {
        stats: receiver.stats,
        ending,
    })
}

#[cfg(test)]
mod tests {
    use super::super::frame_streams::{CONTENT_TYPE, ControlType, encode_control, encode_data};
    use super::*;

    #[test]
    fn recognised_by_content() {
        let start = encode_control(ControlType::Start, Some(CONTENT_TYPE));
        assert!(is_frame_streams(&start));
        // pcap (both byte orders), pcapng, empty, short.
        for other in [
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0][..],
            &[0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0],
            &[
                0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 0x1c, 0x4d, 0x3c, 0x2b, 0x1a,
            ],
            &[],
            &[0, 0, 0, 0],
        ] {
            assert!(!is_frame_streams(other));
        }
    }

    #[test]
    fn a_file_cut_short_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.fstrm");
        let mut wire = encode_control(ControlType::Start, Some(CONTENT_TYPE));
        encode_data(b"\xff not protobuf", &mut wire);
        encode_data(b"\xff not protobuf either", &mut wire);
        wire.truncate(wire.len() - 1);
        std::fs::write(&path, &wire).unwrap();
        assert!(detect(&path).unwrap());
        let mut bytes = 0;
        let read = read_file(&path, 1 << 20, Selection::default(), |n| bytes += n, |_| {}).unwrap();
        assert_eq!(read.ending, Ending::Truncated);
        assert_eq!(read.stats.frames, 1);
        assert_eq!(bytes, wire.len() as u64);
    }
}
