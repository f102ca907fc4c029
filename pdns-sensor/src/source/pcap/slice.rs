//! A capture already in memory, read block by block in place.
//!
//! `pcap-parser`'s own readers pull from an [`std::io::Read`] into a
//! circular buffer: every byte of a file is copied twice on its way to the
//! parser, once by the kernel's `read` and once when the buffer shifts its
//! unread tail back to the front (each time half of it is consumed). For a
//! file mapped into memory (see [`super::mapped`]) both copies are waste:
//! [`SliceReader`] hands out blocks borrowed straight from the mapping.
//!
//! It implements the crate's own [`PcapReaderIterator`], with the crate's
//! parsers (one of them, the little-endian classic record, copied here so
//! that it inlines: see [`parse_le_record`]) and the crate's rules: the
//! same format detection (in the first
//! [`BUFFER`](super::BUFFER) bytes, what the stream reader's first read
//! sees), the file header first in classic pcap, each pcapng section read
//! in the byte order its header gives, and a block cut short by the end of
//! the data reported as `UnexpectedEof`, as an exhausted stream reader
//! does. So [`super::read_blocks`] treats both alike, and a test and the
//! `pcap_read` fuzz target check that both readers deliver the same frames
//! and the same summary for any input.
//!
//! Nothing is allocated for a block here, but the stream reader's limit
//! holds all the same: a block larger than [`MAX_BUFFER`](super::MAX_BUFFER)
//! is refused (`BufferTooSmall`, what the stream reader says once its
//! buffer cannot grow further), so the two never disagree on a file.

use std::sync::atomic::{AtomicUsize, Ordering};

use pcap_parser::nom::{self, Needed};
use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{
    LegacyPcapBlock, PcapBlockOwned, PcapError, PcapHeader, parse_block_be, parse_block_le,
    parse_pcap_frame_be, parse_pcap_frame_modified, parse_pcap_header, parse_sectionheaderblock,
};

type LegacyParse = fn(&[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>;

/// How a classic pcap file's records are parsed.
enum LegacyRecords {
    /// Little-endian, the usual layout: [`parse_le_record`], inlined here.
    LittleEndian,
    /// Big-endian or the modified (Kuznetzov) layout: the crate's parser.
    Other(LegacyParse),
}

enum Format {
    /// Classic pcap: the file header, then one parser for every record.
    Legacy {
        header: PcapHeader,
        records: LegacyRecords,
    },
    /// pcapng: the byte order of the section being read.
    Ng { big_endian: bool },
}

/// Called with the offset reached, each time another [`CHUNK`] bytes
/// are consumed and once at the end of the data.
pub(super) type OnChunk<'a> = Box<dyn FnMut(usize) + 'a>;

/// How often [`OnChunk`] is called: rarely enough to cost nothing per
/// block, often enough for a progress display, and to keep what the
/// process holds of a mapped file small. Measured at 1 k names: 8 MiB
/// chunks kept 9 MiB more resident than reading through a buffer, 1 MiB
/// chunks 3 MiB (the kernel maps a little ahead of the reader), at the
/// same speed.
pub(super) const CHUNK: usize = 1 << 20;

/// Reads the blocks of a capture held in `data`.
pub(super) struct SliceReader<'a> {
    data: &'a [u8],
    /// Bytes consumed.
    at: usize,
    format: Format,
    on_chunk: Option<OnChunk<'a>>,
    /// Where `on_chunk` is next called.
    next_chunk: usize,
    /// For a mapped file, how many bytes from the start the file still
    /// backs (see [`super::sigbus`]); blocks past it are not delivered.
    valid: Option<&'a AtomicUsize>,
    /// Where the next cache line to prefetch starts (see [`PREFETCH_AHEAD`]).
    prefetched: usize,
}

impl<'a> SliceReader<'a> {
    /// A reader over `data`, or why it is not a capture: the errors
    /// `pcap_parser::create_reader` gives for the same bytes.
    pub(super) fn new(
        data: &'a [u8],
        on_chunk: Option<OnChunk<'a>>,
        valid: Option<&'a AtomicUsize>,
    ) -> Result<Self, PcapError<&'static [u8]>> {
        if data.is_empty() {
            return Err(PcapError::Eof);
        }
        // What the stream reader's first read holds.
        let first = &data[..data.len().min(super::BUFFER)];
        let format = if parse_sectionheaderblock(first).is_ok() {
            Format::Ng { big_endian: false }
        } else {
            match parse_pcap_header(first) {
                Ok((_, header)) => {
                    let records = if header.is_modified_format() {
                        LegacyRecords::Other(parse_pcap_frame_modified)
                    } else if header.is_bigendian() {
                        LegacyRecords::Other(parse_pcap_frame_be)
                    } else {
                        LegacyRecords::LittleEndian
                    };
                    Format::Legacy { header, records }
                }
                Err(nom::Err::Incomplete(Needed::Size(n))) => {
                    return Err(PcapError::Incomplete(n.into()));
                }
                Err(nom::Err::Incomplete(Needed::Unknown)) => return Err(PcapError::Incomplete(0)),
                Err(_) => return Err(PcapError::HeaderNotRecognized),
            }
        };
        Ok(SliceReader {
            data,
            at: 0,
            format,
            on_chunk,
            next_chunk: CHUNK,
            valid,
            prefetched: 0,
        })
    }
}

/// `pcap_parser::parse_pcap_frame` (a little-endian classic pcap record:
/// its 16-byte header, then `caplen` bytes), with the same results and
/// errors, written here so that it inlines into the reader. Called through
/// a function pointer, the crate's parser returned its block through
/// memory, in stores the reader's wider loads of the same bytes then had to
/// wait for (a store-forwarding stall): 4 to 5 % of a 10 k-name ingest's
/// decoder thread. The big-endian and modified layouts, rare, still use
/// the crate's.
#[inline(always)]
fn parse_le_record(i: &[u8]) -> nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>> {
    const HEADER: usize = 16;
    let Some((header, rest)) = i.split_first_chunk::<HEADER>() else {
        return Err(nom::Err::Incomplete(Needed::new(HEADER - i.len())));
    };
    let word = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let caplen = word(8);
    let Some((data, left)) = rest.split_at_checked(caplen as usize) else {
        return Err(nom::Err::Incomplete(Needed::new(
            caplen as usize - rest.len(),
        )));
    };
    Ok((
        left,
        LegacyPcapBlock {
            ts_sec: word(0),
            ts_usec: word(4),
            caplen,
            origlen: word(12),
            data,
        },
    ))
}

/// How far ahead of the reader the bytes of a capture are asked into the
/// CPU's cache. A file's bytes come from the page cache, not from any CPU
/// cache, and the hardware's own prefetcher does not follow a stream read
/// this slowly (about one frame per 200 ns of decoding) across page
/// boundaries: without this the first touch of each frame's bytes stalled,
/// the largest single cost of a 10 k-name ingest (11 % of the decoder
/// thread, in `next`). Measured on a 2 M-packet, 10 k-name file, ten runs
/// each: 0.545 s median without, 0.50 s at 512 to 2048 bytes ahead, 0.52 s
/// at 256; further ahead gained nothing more.
const PREFETCH_AHEAD: usize = 1024;

/// The cache line size the prefetch steps by.
const LINE: usize = 64;

impl SliceReader<'_> {
    /// Prefetches the lines up to [`PREFETCH_AHEAD`] bytes past the reader
    /// that no earlier call has: a few per block, each line once.
    #[inline]
    fn prefetch_ahead(&mut self) {
        let end = self.at.saturating_add(PREFETCH_AHEAD).min(self.data.len());
        let mut at = self.prefetched.max(self.at);
        while at < end {
            crate::hint::prefetch(&self.data[at]);
            at += LINE;
        }
        self.prefetched = at;
    }

    /// The checks every parsed block of `len` bytes at the reader passes
    /// before it is handed out, with the error a stream reader would give
    /// where it fails.
    #[inline(always)]
    fn check<'b>(&self, rest: &[u8], len: usize) -> Result<(), PcapError<&'b [u8]>> {
        if len > super::MAX_BUFFER {
            return Err(PcapError::BufferTooSmall);
        }
        if let Some(valid) = self.valid {
            // Read the block's last byte now, so that a file cut short
            // inside it faults here and not in a frame's callback: the
            // bytes before it are then backed too (a file shrinks from its
            // end).
            if let Some(&last) = rest.get(len.wrapping_sub(1)) {
                std::hint::black_box(last);
            }
            if self.at + len > valid.load(Ordering::Acquire) {
                return Err(PcapError::UnexpectedEof);
            }
        }
        Ok(())
    }
}

/// What a stream reader says where a block parser failed on `rest`.
#[inline]
fn failure<'b>(rest: &[u8], e: nom::Err<PcapError<&'b [u8]>>) -> PcapError<&'b [u8]> {
    match e {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        // All there is is here: what a stream reader says once its input
        // is exhausted, or, when what is left fills its largest buffer and
        // still holds less than the block, that the block is too large.
        nom::Err::Incomplete(_) if rest.len() >= super::MAX_BUFFER => PcapError::BufferTooSmall,
        nom::Err::Incomplete(_) => PcapError::UnexpectedEof,
    }
}

impl PcapReaderIterator for SliceReader<'_> {
    #[inline]
    fn next(&mut self) -> Result<(usize, PcapBlockOwned<'_>), PcapError<&[u8]>> {
        let data: &[u8] = self.data;
        let rest = &data[self.at..];
        let parsed = match &mut self.format {
            Format::Legacy { header, .. } if self.at == 0 => {
                return Ok((header.size(), PcapBlockOwned::from(header.clone())));
            }
            _ if rest.is_empty() => return Err(PcapError::Eof),
            // The usual record, on a path of its own: its block is built
            // once, in the result, instead of in a variable the result is
            // then copied from, a copy that stalled on the stores just
            // made (see `parse_le_record`).
            Format::Legacy {
                records: LegacyRecords::LittleEndian,
                ..
            } => {
                return match parse_le_record(rest) {
                    Ok((left, block)) => {
                        let len = rest.len() - left.len();
                        self.check(rest, len)?;
                        Ok((len, PcapBlockOwned::Legacy(block)))
                    }
                    Err(e) => Err(failure(rest, e)),
                };
            }
            Format::Legacy {
                records: LegacyRecords::Other(parse),
                ..
            } => parse(rest).map(|(left, block)| (left, PcapBlockOwned::from(block))),
            Format::Ng { big_endian } => {
                let parse = if *big_endian {
                    parse_block_be
                } else {
                    parse_block_le
                };
                parse(rest).map(|(left, block)| {
                    if let Block::SectionHeader(shb) = &block {
                        *big_endian = shb.big_endian();
                    }
                    (left, PcapBlockOwned::from(block))
                })
            }
        };
        match parsed {
            Ok((left, block)) => {
                let len = rest.len() - left.len();
                self.check(rest, len)?;
                Ok((len, block))
            }
            Err(e) => Err(failure(rest, e)),
        }
    }

    #[inline]
    fn consume(&mut self, offset: usize) {
        self.at = self.at.saturating_add(offset).min(self.data.len());
        self.prefetch_ahead();
        if self.at >= self.next_chunk || self.at == self.data.len() {
            self.next_chunk = self.at.saturating_add(CHUNK);
            if let Some(on_chunk) = &mut self.on_chunk {
                on_chunk(self.at);
            }
        }
    }

    fn consume_noshift(&mut self, offset: usize) {
        self.consume(offset);
    }

    fn consumed(&self) -> usize {
        self.at
    }

    fn refill(&mut self) -> Result<(), PcapError<&[u8]>> {
        Ok(())
    }

    fn position(&self) -> usize {
        0
    }

    fn grow(&mut self, _new_size: usize) -> bool {
        false
    }

    fn data(&self) -> &[u8] {
        &self.data[self.at..]
    }

    fn reader_exhausted(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use pcap_parser::parse_pcap_frame;
    use proptest::prelude::*;

    use super::*;

    /// Both parsers' outcome in comparable form: the block's fields and
    /// where its data and the rest lie, or the error.
    fn outcome(result: nom::IResult<&[u8], LegacyPcapBlock<'_>, PcapError<&[u8]>>) -> String {
        match result {
            Ok((left, b)) => format!(
                "ts {} {} caplen {} origlen {} data {:p}+{} rest {:p}+{}",
                b.ts_sec,
                b.ts_usec,
                b.caplen,
                b.origlen,
                b.data.as_ptr(),
                b.data.len(),
                left.as_ptr(),
                left.len(),
            ),
            Err(e) => format!("error {e:?}"),
        }
    }

    proptest! {
        /// The inlined record parser is the crate's, result for result and
        /// error for error, for any bytes: short headers, data cut short,
        /// caplen 0 and caplen past the end.
        #[test]
        fn le_records_parse_as_the_crate_parses_them(
            mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
            caplen in prop_oneof![Just(None), (0u32..220).prop_map(Some), any::<u32>().prop_map(Some)],
        ) {
            if let (Some(caplen), true) = (caplen, bytes.len() >= 12) {
                bytes[8..12].copy_from_slice(&caplen.to_le_bytes());
            }
            prop_assert_eq!(outcome(parse_le_record(&bytes)), outcome(parse_pcap_frame(&bytes)));
        }
    }
}
