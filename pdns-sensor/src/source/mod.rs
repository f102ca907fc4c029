//! Capture: where frames come from.
//!
//! Sources: where observations come from.
//!
//! A packet source hands [`Frame`](crate::vocab::packet::Frame)s, borrowed
//! from its own buffers, to a callback: capture files ([`pcap`]); live
//! AF_PACKET rings are in [`crate::capture`]. [`zeek`] reads dns.log files,
//! which hold no packets, and hands rebuilt responses to the pipeline's
//! worker at the extraction step. [`dnstap`] receives DNS messages from
//! DNS servers (sockets, and files for `ingest`) and hands them to the
//! worker at the same step. [`bro_pdns`] reads the aggregated tables of
//! bro-pdns databases, which hold Zeek's answer strings one per row, and
//! writes their records with the counts those tables kept. [`answers`]
//! holds the rules both Zeek-fed sources rebuild records with.
//! [`progress`] counts how far a source has read, for the progress shown
//! on long jobs.

/// An enum of skip reasons with their metric labels: `ALL` in a stable
/// order and `as_str`. Shared by the importers (Zeek logs, bro-pdns
/// databases), whose counters and reports list every reason.
macro_rules! reasons {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(usize)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every reason, in a stable order (metrics and reports).
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The label used in metrics and reports.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)*
                }
            }
        }
    };
}

pub mod answers;
pub mod bro_pdns;
pub mod dnstap;
pub mod pcap;
pub mod progress;
pub mod zeek;
