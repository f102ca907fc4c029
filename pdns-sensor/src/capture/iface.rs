//! Network interfaces: names to indices, which ones we can capture on, and
//! the default-route interface `run` uses when none is named.
//!
//! The filter and the decoder both expect Ethernet framing, so only
//! Ethernet-like interfaces (Ethernet, veth, bridges, bonds, VLAN devices)
//! and loopback (whose fake Ethernet header carries the real EtherType) are
//! accepted; anything else is refused by name rather than captured as
//! garbage.

use std::ffi::CString;
use std::path::Path;

use anyhow::{Context, Result, bail};

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK` from `/sys/class/net/*/type`.
const ARPHRD_ETHER: u32 = 1;
const ARPHRD_LOOPBACK: u32 = 772;

/// An interface we can open a capture ring on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// Loopback sees every packet twice (outgoing and incoming); the socket
    /// ignores the outgoing copy there, and only there.
    pub loopback: bool,
}

impl Interface {
    /// Looks an interface up by name.
    pub fn resolve(name: &str) -> Result<Interface> {
        let c = CString::new(name).context("interface name contains a NUL byte")?;
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index == 0 {
            bail!(
                "no interface named {name:?}: {}",
                std::io::Error::last_os_error()
            );
        }
        let type_path = Path::new("/sys/class/net").join(name).join("type");
        let kind: u32 = std::fs::read_to_string(&type_path)
            .with_context(|| format!("reading {}", type_path.display()))?
            .trim()
            .parse()
            .with_context(|| format!("parsing {}", type_path.display()))?;
        let loopback = match kind {
            ARPHRD_ETHER => false,
            ARPHRD_LOOPBACK => true,
            other => bail!(
                "interface {name} has link type {other} (ARPHRD); only Ethernet-framed \
                 interfaces and loopback can be captured"
            ),
        };
        Ok(Interface {
            name: name.to_string(),
            index,
            loopback,
        })
    }
}

/// What an interface name stands for right now (see [`probe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Presence {
    /// No interface has this name (not created yet, or deleted).
    Absent,
    /// An interface has it.
    Present {
        index: u32,
        /// Its ARPHRD link type.
        kind: u32,
        /// Administratively up, with a carrier (`carrier` rather than
        /// `operstate`, which the kernel updates up to a second later).
        up: bool,
    },
}

impl Presence {
    /// Whether this is an Ethernet-framed interface (or loopback, when
    /// `loopback` says the capture was set up for it).
    pub fn capturable(kind: u32, loopback: bool) -> bool {
        if loopback {
            kind == ARPHRD_LOOPBACK
        } else {
            kind == ARPHRD_ETHER
        }
    }
}

/// Looks at interface `name` now: its index (`if_nametoindex`), link type
/// and state (`/sys/class/net/NAME/{type,flags,carrier}`). Cheap enough
/// to call once a second: one ioctl and three small sysfs reads. An
/// interface deleted between the reads is absent.
pub fn probe(name: &str) -> Presence {
    const IFF_UP: u32 = 0x1;
    let Ok(c) = CString::new(name) else {
        return Presence::Absent;
    };
    // SAFETY: `c` is a valid NUL-terminated string for the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Presence::Absent;
    }
    let dir = Path::new("/sys/class/net").join(name);
    let read = |file: &str| std::fs::read_to_string(dir.join(file)).ok();
    let Some(kind) = read("type").and_then(|t| t.trim().parse::<u32>().ok()) else {
        return Presence::Absent;
    };
    let flags = read("flags")
        .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    // Reading `carrier` fails (EINVAL) while the interface is down.
    let carrier = read("carrier").is_some_and(|c| c.trim() == "1");
    let up = flags & IFF_UP != 0 && carrier;
    Presence::Present { index, kind, up }
}

/// The interface of the IPv4 default route with the lowest metric, else of
/// the IPv6 default route. The tables are read under `/proc/self/net`,
/// where `/proc/net` links: systemd's `ProcSubset=pid` (the packaged unit)
/// hides `/proc/net` but not the process's own directory.
pub fn default_route_interface() -> Result<String> {
    let v4 = std::fs::read_to_string("/proc/self/net/route").unwrap_or_default();
    if let Some(name) = default_v4(&v4) {
        return Ok(name);
    }
    let v6 = std::fs::read_to_string("/proc/self/net/ipv6_route").unwrap_or_default();
    if let Some(name) = default_v6(&v6) {
        return Ok(name);
    }
    bail!(
        "no default route found in /proc/self/net/route or /proc/self/net/ipv6_route; \
         name one with --interface"
    )
}

/// Parses `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use
/// Metric Mask ...`, hex fields; the default route has destination and mask
/// 0 and the RTF_UP flag.
fn default_v4(table: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            let metric: u32 = f[6].parse().ok()?;
            (f[1] == "00000000" && f[7] == "00000000" && flags & RTF_UP != 0)
                .then(|| (metric, f[0].to_string()))
        })
        .min()
        .map(|(_, name)| name)
}

/// Parses `/proc/net/ipv6_route`: `dest plen src splen nexthop metric
/// refcnt use flags iface`; the default route is `::/0` on a device other
/// than `lo` (the kernel lists unreachable defaults on `lo`).
fn default_v6(table: &str) -> Option<String> {
    table
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                return None;
            }
            let metric = u32::from_str_radix(f[5], 16).ok()?;
            (f[0].bytes().all(|b| b == b'0') && f[1] == "00" && f[9] != "lo")
                .then(|| (metric, f[9].to_string()))
        })
        .min()
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_default_route_lowest_metric() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth1\t00000000\t0102000A\t0003\t0\t0\t200\t00000000\t0\t0\t0\n\
                     eth0\t00000000\t0101000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
                     eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(default_v4(table).as_deref(), Some("eth0"));
        assert_eq!(default_v4("Iface\tDestination\n"), None);
    }

    #[test]
    fn ipv6_default_route_skips_lo() {
        let table = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
                     00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     ens3\n";
        assert_eq!(default_v6(table).as_deref(), Some("ens3"));
    }

    #[test]
    fn loopback_resolves() {
        let lo = Interface::resolve("lo").unwrap();
        assert!(lo.loopback);
        assert!(lo.index > 0);
        assert!(Interface::resolve("no-such-if0").is_err());
    }

    #[test]
    fn probe_sees_loopback_and_absence() {
        match probe("lo") {
            Presence::Present { index, kind, up } => {
                assert!(index > 0);
                assert!(Presence::capturable(kind, true));
                assert!(!Presence::capturable(kind, false));
                assert!(up, "lo is up");
            }
            Presence::Absent => panic!("lo is absent"),
        }
        assert_eq!(probe("no-such-if0"), Presence::Absent);
    }
}
