//! Two private network namespaces joined by a veth pair.
//!
//! Frames written to the sending end (`veth-a` in the tx namespace) arrive
//! on the receiving end (`veth-b` in the rx namespace) and go nowhere else:
//! neither end has an address, IPv6 is off (no neighbour discovery noise),
//! and the rx namespace's stack drops what it receives as martians. The
//! namespaces (and with them the veth pair) are deleted when the
//! [`VethPair`] is dropped ([`crate::netns`] does the namespaces).

use std::process::Command;

use anyhow::Result;

use crate::netns::{Netns, SETUP_TIMEOUT, run_bounded};

/// The receiving end's MAC address (frames are retargeted to it).
pub(crate) const RX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
/// The sending end's MAC address.
pub(crate) const TX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
/// Interface names inside the namespaces.
pub(crate) const TX_IF: &str = "veth-a";
pub(crate) const RX_IF: &str = "veth-b";

/// The tx and rx namespaces and the veth pair between them.
pub(crate) struct VethPair {
    pub tx: Netns,
    pub rx: Netns,
}

impl VethPair {
    pub(crate) fn new() -> Result<VethPair> {
        let tx = Netns::new("tx")?;
        tx.disable_ipv6()?;
        let rx = Netns::new("rx")?;
        rx.disable_ipv6()?;
        run_bounded(
            Command::new("ip").args([
                "link",
                "add",
                TX_IF,
                "netns",
                tx.name(),
                "type",
                "veth",
                "peer",
                "name",
                RX_IF,
                "netns",
                rx.name(),
            ]),
            SETUP_TIMEOUT,
        )?;
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        tx.run(&["ip", "link", "set", TX_IF, "address", &mac(TX_MAC), "up"])?;
        rx.run(&["ip", "link", "set", RX_IF, "address", &mac(RX_MAC), "up"])?;
        Ok(VethPair { tx, rx })
    }
}
