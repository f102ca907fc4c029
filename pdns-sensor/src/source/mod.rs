//! Capture: where frames come from.
//!
//! A source hands [`crate::decode::Frame`]s, borrowed from its own buffers,
//! to a callback. Files ([`pcap`]) are the first source; live AF_PACKET rings
//! and Zeek logs feed the same pipeline later.

pub mod pcap;
pub mod zeek;
