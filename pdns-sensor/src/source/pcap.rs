//! pcap and pcapng files, read with `pcap-parser`.
//!
//! Both classic pcap (microsecond and nanosecond, either byte order) and
//! pcapng (several sections, several interfaces each with its own link type
//! and timestamp resolution) are read in streaming fashion through a fixed
//! buffer, so file size does not matter. Frames are borrowed from that
//! buffer for the duration of the callback.
//!
//! A file that ends in the middle of a block is *truncated*, not broken:
//! everything before the cut is delivered, and [`ReadSummary::truncated`]
//! says so. A file that is not a capture at all is an error.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};

use super::progress::{Counted, ITEMS_BATCH, ReadProgress};
use crate::vocab::packet::{Frame, LinkType, Timestamp};

/// Initial read buffer; grown (up to [`MAX_BUFFER`]) for larger blocks.
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
/// per buffer refill, packets per [`ITEMS_BATCH`]).
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
    let result = read(
        Counted::new(file, Arc::clone(progress)),
        &display,
        |frame| {
            on_frame(frame);
            pending += 1;
            if pending == ITEMS_BATCH {
                progress.add_items(pending);
                pending = 0;
            }
        },
    );
    progress.add_items(pending);
    result
}

/// Reads a capture from any byte stream (`name` is used in errors).
pub fn read(
    input: impl Read + Send,
    name: &str,
    mut on_frame: impl FnMut(&Frame<'_>),
) -> Result<ReadSummary, SourceError> {
    let mut summary = ReadSummary::default();
    let mut reader = match pcap_parser::create_reader(BUFFER, input) {
        Ok(r) => r,
        Err(PcapError::Eof) | Err(PcapError::Incomplete(_)) => {
            // Empty, or shorter than a file header.
            return Err(SourceError::NotCapture {
                path: name.to_string(),
            });
        }
        Err(PcapError::ReadError) => {
            return Err(SourceError::Malformed {
                path: name.to_string(),
                detail: "read error".into(),
            });
        }
        Err(_) => {
            return Err(SourceError::NotCapture {
                path: name.to_string(),
            });
        }
    };
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
            if summary.frames > 0 {
                summary.truncated = true;
                tracing::warn!("{name}: {detail} after {} frames", summary.frames);
                break;
            }
            return Err(SourceError::Malformed {
                path: name.to_string(),
                detail,
            });
        }
        match reader.next() {
            Ok((offset, block)) => {
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
                                let ts = timestamp(
                                    raw / iface.resolution,
                                    raw % iface.resolution,
                                    iface,
                                );
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
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    // Ended inside a block: a truncated file.
                    summary.truncated = !reader.data().is_empty();
                    break;
                }
                let before = reader.data().len();
                if reader.refill().is_err() {
                    return Err(SourceError::Malformed {
                        path: name.to_string(),
                        detail: "read error".into(),
                    });
                }
                if reader.data().len() == before {
                    // The buffer is full and still holds less than one block.
                    if capacity >= MAX_BUFFER || !reader.grow(capacity * 2) {
                        return Err(SourceError::Malformed {
                            path: name.to_string(),
                            detail: format!("block larger than {} bytes", MAX_BUFFER),
                        });
                    }
                    capacity *= 2;
                    if reader.refill().is_err() {
                        return Err(SourceError::Malformed {
                            path: name.to_string(),
                            detail: "read error".into(),
                        });
                    }
                }
            }
            Err(e) => {
                if summary.frames > 0 {
                    // Garbage after good data: keep what we read, say so.
                    summary.truncated = true;
                    tracing::warn!(
                        "{name}: unreadable block after {} frames ({e:?})",
                        summary.frames
                    );
                    break;
                }
                return Err(SourceError::Malformed {
                    path: name.to_string(),
                    detail: format!("{e:?}"),
                });
            }
        }
    }
    Ok(summary)
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
fn timestamp(secs: u64, fraction: u64, iface: &Interface) -> Timestamp {
    let resolution = iface.resolution.max(1);
    let nanos = (u128::from(fraction % resolution) * 1_000_000_000 / u128::from(resolution)) as u32;
    Timestamp {
        secs: secs
            .saturating_add(fraction / resolution)
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
