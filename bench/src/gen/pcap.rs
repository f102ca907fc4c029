//! Streaming classic-pcap writer.
//!
//! Records are framed directly in one large buffer that is flushed to the
//! sink in big chunks, so memory stays constant however many packets are
//! written and the per-packet cost is a few appends.

use std::io::{self, Write};

/// LINKTYPE_ETHERNET.
pub const LINKTYPE_ETHERNET: u32 = 1;
pub const SNAPLEN: u32 = 65535;
const FLUSH_AT: usize = 1 << 20;

/// Buffered pcap sink; frames are written into `buf` between
/// [`PcapWriter::begin`] and [`PcapWriter::end`].
pub struct PcapWriter<W: Write> {
    sink: W,
    pub buf: Vec<u8>,
    pending: usize,
    packets: u64,
    bytes: u64,
}

impl<W: Write> PcapWriter<W> {
    pub fn new(sink: W) -> io::Result<Self> {
        let mut w = PcapWriter {
            sink,
            buf: Vec::with_capacity(FLUSH_AT + 70_000),
            pending: 0,
            packets: 0,
            bytes: 0,
        };
        w.buf.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        w.buf.extend_from_slice(&2u16.to_le_bytes());
        w.buf.extend_from_slice(&4u16.to_le_bytes());
        w.buf.extend_from_slice(&0i32.to_le_bytes());
        w.buf.extend_from_slice(&0u32.to_le_bytes());
        w.buf.extend_from_slice(&SNAPLEN.to_le_bytes());
        w.buf.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        Ok(w)
    }

    /// Starts a record stamped `ts_us` microseconds since the epoch; the
    /// frame is then appended to `self.buf`.
    #[inline]
    pub fn begin(&mut self, ts_us: u64) {
        self.pending = self.buf.len();
        self.buf
            .extend_from_slice(&((ts_us / 1_000_000) as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&((ts_us % 1_000_000) as u32).to_le_bytes());
        self.buf.extend_from_slice(&[0; 8]);
    }

    /// Finishes the record started by `begin`, filling in its lengths.
    #[inline]
    pub fn end(&mut self) -> io::Result<()> {
        let start = self.pending;
        let len = (self.buf.len() - start - 16) as u32;
        self.buf[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 12..start + 16].copy_from_slice(&len.to_le_bytes());
        self.packets += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flushes everything and returns the sink and total bytes written.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.flush_buf()?;
        self.sink.flush()?;
        Ok((self.sink, self.bytes))
    }
}
