//! The shared vocabulary: the types and encodings every stage of the
//! pipeline speaks, and nothing else.
//!
//! Stages depend on this module and not on each other for their words: the
//! decoder, the extractor, the Zeek reconstruction, the aggregator, the
//! store and the query surfaces all encode a name, build a key or merge a
//! value the same way because there is only one way, here. This module
//! depends on no stage (only on `domain` for DNS types), so it can be read
//! on its own and changed without chasing cycles.
//!
//! | module | holds |
//! |---|---|
//! | [`packet`] | frames and DNS messages as sources hand them over, capture time |
//! | [`name`] | the reversed name encoding and every conversion into and out of it |
//! | [`observation`] | the interface between extraction and aggregation |
//! | [`key`] | the store's key layouts (records, rdata index, negative answers) |
//! | [`value`] | the per-key aggregate, its associative merge, origins |
//! | [`nod`] | registrable domains, the newly-observed-domain entry |
//! | [`batch`] | a flushed batch of aggregates and the bookkeeping written with it |
//! | [`rcode`] | response code names (NODATA included) |
//! | [`render`] | presentation format of types and rdata |
//! | [`time`] | times as users write and read them |
//!
//! Record types are `domain`'s [`Rtype`] and response codes its
//! [`OptRcode`], re-exported here.

pub mod batch;
pub mod key;
pub mod name;
pub mod nod;
pub mod observation;
pub mod packet;
pub mod rcode;
pub mod render;
pub mod time;
pub mod value;

pub use domain::base::iana::Rtype;
pub use rcode::OptRcode;
