//! pcap and pcapng files, read with `pcap-parser`.
//!
//! Both classic pcap (microsecond and nanosecond, either byte order) and
//! pcapng (several sections, several interfaces each with its own link type
//! and timestamp resolution) are read block by block, so file size does not
//! matter. A capture file is mapped into memory and read in place
//! ([`mapped`], [`slice`]); a stream (a pipe, a device) is read through a
//! buffer that grows only for a block that needs it. Frames are borrowed
//! from the mapping or the buffer for the duration of the callback. Both
//! readers go through one loop ([`read_blocks`]) and give the same frames
//! and summary for the same bytes.
//!
//! A file that ends in the middle of a block is *truncated*, not broken:
//! everything before the cut is delivered, and [`ReadSummary::truncated`]
//! says so. A file that is not a capture at all is an error.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};

use mapped::MappedFile;
use slice::SliceReader;

use super::progress::{Counted, ITEMS_BATCH, ReadProgress};
use crate::vocab::packet::{Frame, LinkType, Timestamp};

mod mapped;
mod sigbus;
mod slice;

/// Initial read buffer of a stream; grown for larger blocks, up to
/// [`MAX_BUFFER`]. A larger block is refused by both readers.
const BUFFER: usize = 1 << 20;
const MAX_BUFFER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a pcap or pcapng file")]
    NotCapture { path: String },
    #[error("{path}: {detail}")]
    Malformed { path: String, detail: String },
}

/// What reading one file found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadSummary {
    pub frames: u64,
    /// The file ended inside a block; frames before it were delivered.
    pub truncated: bool,
    /// Packet blocks naming an interface the file never described.
    pub unknown_interface: u64,
}

#[derive(Clone, Copy)]
struct Interface {
    link: LinkType,
    /// Timestamp units per second.
    resolution: u64,
    offset: i64,
}

/// Reads a capture file, calling `on_frame` for every packet.
pub fn read_file(
    path: &Path,
    on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    read_file_counted(path, &Arc::new(ReadProgress::default()), on_frame)
}

/// [`read_file`], counting the bytes and packets read in `progress` (bytes
/// per buffer refill or mapped chunk, packets per [`ITEMS_BATCH`]).
pub(crate) fn read_file_counted(
    path: &Path,
    progress: &Arc<ReadProgress>,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    let display = path.display().to_string();
    let file = File::open(path).map_err(|source| SourceError::Open {
        path: display.clone(),
        source,
    })?;
    let mut pending = 0;
    let mut count = |frame: &Frame<'_>| {
        on_frame(frame);
        pending += 1;
        if pending == ITEMS_BATCH {
            progress.add_items(pending);
            pending = 0;
        }
    };
    let result = match MappedFile::open(&file) {
        Some(mapped) => {
            let on_chunk = mapped.on_chunk(progress);
            let result =
                match SliceReader::new(mapped.bytes(), Some(on_chunk), Some(mapped.valid())) {
                    Ok(mut reader) => read_blocks(&mut reader, &display, &mut count),
                    Err(e) => Err(open_error(e, &display)),
                };
            match mapped.shrunk_at() {
                None => result,
                Some(at) => shrunk(result, &display, at),
            }
        }
        None => read(
            Counted::new(file, Arc::clone(progress)),
            &display,
            &mut count,
        ),
    };
    progress.add_items(pending);
    result
}

/// What reading a mapped file that shrank under the reader amounts to:
/// the frames before byte `at`, and a file cut short there.
fn shrunk(
    result: Result<ReadSummary, SourceError>,
    name: &str,
    at: usize,
) -> Result<ReadSummary, SourceError> {
    let detail = format!("the file shrank to {at} bytes while it was read");
    match result {
        Ok(mut summary) => {
            tracing::warn!("{name}: {detail}, after {} frames", summary.frames);
            summary.truncated = true;
            Ok(summary)
        }
        Err(_) => Err(SourceError::Malformed {
            path: name.to_string(),
            detail,
        }),
    }
}

/// Reads a capture from any byte stream (`name` is used in errors).
pub fn read(
    input: impl Read + Send,
    name: &str,
    on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    let mut reader = pcap_parser::create_reader(BUFFER, input).map_err(|e| open_error(e, name))?;
    read_blocks(&mut *reader, name, on_frame)
}

/// Reads a capture held in memory, in place (`name` is used in errors):
/// the same frames and summary as [`read`] over the same bytes.
pub fn read_slice(
    data: &[u8],
    name: &str,
    on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    let mut reader = SliceReader::new(data, None, None).map_err(|e| open_error(e, name))?;
    read_blocks(&mut reader, name, on_frame)
}

fn read_error(name: &str) -> SourceError {
    SourceError::Malformed {
        path: name.to_string(),
        detail: "read error".into(),
    }
}

/// Why a capture could not be opened, from what its reader said of the
/// first bytes.
fn open_error(e: PcapError<&[u8]>, name: &str) -> SourceError {
    match e {
        PcapError::ReadError => read_error(name),
        // Empty, shorter than a file header, or not one.
        _ => SourceError::NotCapture {
            path: name.to_string(),
        },
    }
}

/// Delivers the frames of every block `reader` yields, whichever reader
/// it is: the format's rules (interfaces, sections, timestamps) and what
/// counts as cut short or broken are the same for a stream and a slice.
fn read_blocks<R: PcapReaderIterator + ?Sized>(
    reader: &mut R,
    name: &str,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    let mut summary = ReadSummary::default();
    let mut capacity = BUFFER;
    // Classic pcap: one link type and resolution for the whole file.
    let mut legacy = Interface {
        link: LinkType::Ethernet,
        resolution: 1_000_000,
        offset: 0,
    };
    // pcapng: interfaces of the current section.
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut last_ts = Timestamp::default();
    // pcapng: the byte order of the current section (`None` in classic pcap).
    let mut section_big_endian: Option<bool> = None;

    loop {
        if let Some(len) = short_pcapng_block(reader.data(), section_big_endian) {
            // pcap-parser 0.17 subtracts 12 from a block's length without
            // checking it (an overflow panic where overflow checks are on, a
            // 4 GiB read where they are off). No block is shorter than its
            // type, two lengths and nothing else: 12 bytes.
            let detail = format!("pcapng block length {len} is below the minimum of 12");
            unreadable(&mut summary, name, detail)?;
            break;
        }
        // The block is looked at where `next` returned it (`ref`): moved
        // out, its copy read the bytes `next` had just stored in pieces
        // with wider loads, a store-forwarding stall on every frame (3 %
        // of a 10 k-name ingest's decoder thread). So it is consumed once
        // the result is gone.
        let consumed = match reader.next() {
            Ok((offset, ref block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(header) => {
                        legacy.link = LinkType::from_pcap(header.network.0 as u32);
                        legacy.resolution = if header.is_nanosecond_precision() {
                            1_000_000_000
                        } else {
                            1_000_000
                        };
                    }
                    PcapBlockOwned::Legacy(packet) => {
                        let ts =
                            timestamp(u64::from(packet.ts_sec), u64::from(packet.ts_usec), &legacy);
                        last_ts = ts;
                        summary.frames += 1;
                        on_frame(&Frame {
                            ts,
                            link: legacy.link,
                            data: packet.data,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        section_big_endian = Some(shb.big_endian());
                        interfaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        interfaces.push(Interface {
                            link: LinkType::from_pcap(idb.linktype.0 as u32),
                            resolution: pcap_parser::build_ts_resolution(idb.if_tsresol)
                                .unwrap_or(1_000_000),
                            offset: idb.if_tsoffset,
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match interfaces.get(epb.if_id as usize) {
                            Some(iface) => {
                                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                // All of it a fraction: `timestamp` carries
                                // the whole seconds.
                                let ts = timestamp(0, raw, iface);
                                last_ts = ts;
                                summary.frames += 1;
                                let len = (epb.caplen as usize).min(epb.data.len());
                                on_frame(&Frame {
                                    ts,
                                    link: iface.link,
                                    data: &epb.data[..len],
                                });
                            }
                            None => summary.unknown_interface += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match interfaces.first() {
                        // No timestamp in a simple packet block: use the last one seen.
                        Some(iface) => {
                            summary.frames += 1;
                            let len = (spb.origlen as usize).min(spb.data.len());
                            on_frame(&Frame {
                                ts: last_ts,
                                link: iface.link,
                                data: &spb.data[..len],
                            });
                        }
                        None => summary.unknown_interface += 1,
                    },
                    PcapBlockOwned::NG(_) => {}
                }
                Some(offset)
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    // Ended inside a block: a truncated file.
                    summary.truncated = !reader.data().is_empty();
                    break;
                }
                if reader.refill().is_err() {
                    return Err(read_error(name));
                }
                None
            }
            // A block larger than the stream reader's buffer: grown, up to
            // MAX_BUFFER (the in-memory reader cannot grow, and only says so
            // for a block larger than that).
            Err(PcapError::BufferTooSmall) => {
                if capacity >= MAX_BUFFER || !reader.grow(capacity * 2) {
                    let detail = format!("block larger than {MAX_BUFFER} bytes");
                    unreadable(&mut summary, name, detail)?;
                    break;
                }
                capacity *= 2;
                if reader.refill().is_err() {
                    return Err(read_error(name));
                }
                None
            }
            Err(e) => {
                unreadable(&mut summary, name, format!("{e:?}"))?;
                break;
            }
        };
        if let Some(offset) = consumed {
            reader.consume(offset);
        }
    }
    Ok(summary)
}

/// A block that cannot be read: after good frames, the file is cut short
/// there (said, and kept); as the first thing after the header, the file
/// is malformed.
fn unreadable(summary: &mut ReadSummary, name: &str, detail: String) -> Result<(), SourceError> {
    if summary.frames > 0 {
        summary.truncated = true;
        tracing::warn!(
            "{name}: unreadable block after {} frames ({detail})",
            summary.frames
        );
        return Ok(());
    }
    Err(SourceError::Malformed {
        path: name.to_string(),
        detail,
    })
}

/// The length of the pcapng block at the head of `data` if it is below 12
/// bytes, the least any block can be. `section_big_endian` is the byte order
/// of the section being read, `None` outside pcapng; a section header
/// carries its own byte order.
fn short_pcapng_block(data: &[u8], section_big_endian: Option<bool>) -> Option<u32> {
    const SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    const MINIMUM: u32 = 12;
    let length: [u8; 4] = data.get(4..8)?.try_into().ok()?;
    let big_endian = if data[..4] == SECTION_HEADER {
        match data.get(8..12)? {
            [0x1a, 0x2b, 0x3c, 0x4d] => true,
            [0x4d, 0x3c, 0x2b, 0x1a] => false,
            // Not a byte-order magic: pcap-parser rejects it itself.
            _ => return None,
        }
    } else {
        section_big_endian?
    };
    let length = if big_endian {
        u32::from_be_bytes(length)
    } else {
        u32::from_le_bytes(length)
    };
    (length < MINIMUM).then_some(length)
}

/// A packet's time from whole seconds and a fraction in the interface's
/// units. A classic pcap record may hold a fraction of a second or more (a
/// hostile or broken writer's `ts_usec` of 10⁶ and above): the whole
/// seconds in it are carried, so `nanos` always stays below a second.
///
/// Microseconds and nanoseconds, what nearly every capture holds, are
/// divided by constants (a multiplication); any other resolution by a
/// 128-bit division, which was a seventh of the reader's time per frame
/// when every frame took it.
#[inline]
fn timestamp(secs: u64, fraction: u64, iface: &Interface) -> Timestamp {
    let (carried, nanos) = match iface.resolution {
        1_000_000 => (fraction / 1_000_000, (fraction % 1_000_000) as u32 * 1_000),
        1_000_000_000 => (fraction / 1_000_000_000, (fraction % 1_000_000_000) as u32),
        resolution => {
            let resolution = resolution.max(1);
            let nanos = u128::from(fraction % resolution) * 1_000_000_000 / u128::from(resolution);
            (fraction / resolution, nanos as u32)
        }
    };
    Timestamp {
        secs: secs
            .saturating_add(carried)
            .saturating_add_signed(iface.offset),
        nanos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_blocks_shorter_than_12_bytes_are_found_in_either_byte_order() {
        let mut block = vec![0x01, 0, 0, 0x80, 8, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(short_pcapng_block(&block, Some(false)), Some(8));
        assert_eq!(short_pcapng_block(&block, Some(true)), None);
        assert_eq!(short_pcapng_block(&block, None), None, "classic pcap");
        block[4..8].copy_from_slice(&12u32.to_le_bytes());
        assert_eq!(short_pcapng_block(&block, Some(false)), None);
        assert_eq!(short_pcapng_block(&block[..7], Some(false)), None);

        let mut section = vec![0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 4, 0x1a, 0x2b, 0x3c, 0x4d];
        assert_eq!(short_pcapng_block(&section, None), Some(4));
        section[4..8].copy_from_slice(&28u32.to_be_bytes());
        assert_eq!(short_pcapng_block(&section, None), None);
    }

    #[test]
    fn a_short_pcapng_block_is_malformed_not_a_giant_read() {
        // A valid section header, then a block that says it is 8 bytes long.
        let mut file = vec![
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        ];
        file.extend_from_slice(&[0xff; 8]);
        file.extend_from_slice(&28u32.to_le_bytes());
        file.extend_from_slice(&[1, 0, 0, 0x80, 8, 0, 0, 0, 8, 0, 0, 0]);
        let err = read(&file[..], "short", |_| {}).unwrap_err();
        assert!(err.to_string().contains("below the minimum"), "{err}");
    }

    /// A classic pcap (Ethernet, microseconds) holding records of these
    /// captured lengths, each claiming `claims` bytes where given.
    fn legacy_pcap(records: &[(usize, Option<u32>)]) -> Vec<u8> {
        let mut file = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        file.extend_from_slice(&[0; 8]);
        file.extend_from_slice(&(256u32 << 10).to_le_bytes());
        file.extend_from_slice(&1u32.to_le_bytes());
        for (i, &(len, claims)) in records.iter().enumerate() {
            file.extend_from_slice(&(i as u32).to_le_bytes());
            file.extend_from_slice(&0u32.to_le_bytes());
            file.extend_from_slice(&claims.unwrap_or(len as u32).to_le_bytes());
            file.extend_from_slice(&(len as u32).to_le_bytes());
            file.extend(std::iter::repeat_n(i as u8, len));
        }
        file
    }

    fn both(file: &[u8]) -> [(Result<ReadSummary, String>, Vec<usize>); 2] {
        let mut out = [
            (Ok(ReadSummary::default()), Vec::new()),
            (Ok(ReadSummary::default()), Vec::new()),
        ];
        for (in_place, (result, lens)) in out.iter_mut().enumerate() {
            let keep = |f: &Frame<'_>| lens.push(f.data.len());
            *result = if in_place == 1 {
                read_slice(file, "f", keep)
            } else {
                read(file, "f", keep)
            }
            .map_err(|e| e.to_string());
        }
        out
    }

    #[test]
    fn a_block_larger_than_the_first_buffer_is_read_by_both_readers() {
        // 3 MiB: the stream reader's buffer grows twice for it (it used to
        // stop there and call the file cut short).
        let file = legacy_pcap(&[(100, None), (3 << 20, None), (60, None)]);
        let [streamed, in_place] = both(&file);
        assert_eq!(streamed, in_place);
        let (summary, lens) = streamed;
        assert_eq!(lens, [100, 3 << 20, 60]);
        assert!(!summary.unwrap().truncated);
    }

    #[test]
    fn a_block_larger_than_max_buffer_is_refused_alike() {
        // Present: 64 MiB and one byte, as the first record (the stream
        // reader's buffer grows to 64 MiB for it, then gives up).
        let file = legacy_pcap(&[(MAX_BUFFER + 1 - 16, None)]);
        let [streamed, in_place] = both(&file);
        assert_eq!(streamed, in_place);
        let err = streamed.0.unwrap_err();
        assert!(err.contains("block larger than 67108864 bytes"), "{err}");
        // Exactly 64 MiB is read.
        let file = legacy_pcap(&[(MAX_BUFFER - 16, None), (60, None)]);
        let [streamed, in_place] = both(&file);
        assert_eq!(streamed, in_place);
        assert_eq!(streamed.1, [MAX_BUFFER - 16, 60]);

        // Claimed, not present (a damaged length) after a good frame: the
        // file is cut short there, whatever the claim.
        for claims in [MAX_BUFFER as u32 + 1, u32::MAX, 3 << 20] {
            let file = legacy_pcap(&[(100, None), (60, Some(claims)), (60, None)]);
            let [streamed, in_place] = both(&file);
            assert_eq!(streamed, in_place, "claims {claims}");
            assert_eq!(streamed.1, [100]);
            assert!(streamed.0.unwrap().truncated);
        }
    }

    #[test]
    fn microseconds_and_nanoseconds_agree_with_the_general_division() {
        // The general path, forced by a resolution it does not special-case
        // but that scales exactly: 10 µs units and 10 ns units.
        let at = |resolution| Interface {
            link: LinkType::Ethernet,
            resolution,
            offset: -3,
        };
        let fractions = [
            0,
            1,
            7,
            999_999,
            1_000_000,
            3_892_570,
            u64::from(u32::MAX),
            u64::MAX,
        ];
        for (unit, resolution, nanos_per_unit) in
            [("µs", 1_000_000, 1_000), ("ns", 1_000_000_000, 1)]
        {
            for fraction in fractions {
                let ts = timestamp(10, fraction, &at(resolution));
                if fraction % 10 == 0 {
                    let general = timestamp(10, fraction / 10, &at(resolution / 10));
                    assert_eq!(ts, general, "{fraction} {unit}");
                }
                assert_eq!(
                    ts.nanos as u64,
                    fraction % resolution * nanos_per_unit,
                    "{fraction} {unit}"
                );
                assert!(ts.nanos < 1_000_000_000);
            }
        }
    }

    #[test]
    fn a_fraction_of_a_second_or_more_is_carried() {
        let iface = Interface {
            link: LinkType::Ethernet,
            resolution: 1_000_000,
            offset: 0,
        };
        assert_eq!(
            timestamp(10, 3_892_570, &iface),
            Timestamp {
                secs: 13,
                nanos: 892_570_000
            }
        );
        assert_eq!(
            timestamp(10, 999_999, &iface),
            Timestamp {
                secs: 10,
                nanos: 999_999_000
            }
        );
    }
}
