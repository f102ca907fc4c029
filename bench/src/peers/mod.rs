//! Peer systems measured beside the sensor on the same input in the same
//! run (the peers scenario).
//!
//! Each peer module answers two questions: is the peer present on this
//! machine (if not, why — reported, never faked), and what does it measure
//! on a prepared workload. The `peers` scenario turns those figures into
//! entries with ours/theirs ratios.

pub mod balboa;
pub mod decoders;
pub mod gamelinux;
