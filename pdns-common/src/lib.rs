//! Types shared between the `pdns-ebpf` socket filter and the `pdns-sensor`
//! userspace.
//!
//! Everything here is `no_std`, `#[repr(C)]` and `Copy`, because the same
//! definitions are compiled for the `bpfel-unknown-none` target and for the
//! host, and the layout must agree byte for byte across that boundary.
#![no_std]

/// The DNS port watched when the user names none.
pub const DEFAULT_DNS_PORT: u16 = 53;

/// Most ports the kernel filter can be told to accept.
///
/// The eBPF port map is a fixed-size array; userspace refuses more ports than
/// this instead of silently ignoring the rest.
pub const MAX_PORTS: usize = 16;
