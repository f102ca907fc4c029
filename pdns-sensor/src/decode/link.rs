//! Link layer: find the IP packet inside a captured frame.
//!
//! Supported: Ethernet II with any stack of 802.1Q / 802.1ad (QinQ) tags,
//! MPLS label stacks and PPPoE sessions; Linux cooked capture v1 (SLL) and
//! v2 (SLL2); BSD loopback (NULL, either byte order, and LOOP); raw IP
//! (IPv4, IPv6 or either). The outer VLAN tag a NIC strips into packet
//! metadata never reaches this code, so nothing here depends on it.

use super::DropReason;
use crate::vocab::packet::LinkType;

const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ETH_P_QINQ_OLD: u16 = 0x9100;
const ETH_P_MPLS_UC: u16 = 0x8847;
const ETH_P_MPLS_MC: u16 = 0x8848;
const ETH_P_PPPOE_SESSION: u16 = 0x8864;

/// Most VLAN tags or MPLS labels we walk through before giving up.
const MAX_STACK: usize = 8;

/// Returns the bytes starting at the IP header.
pub fn strip(link: LinkType, frame: &[u8]) -> Result<&[u8], DropReason> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(frame, 12).ok_or(DropReason::LinkTruncated)?;
            ethertype_payload(ethertype, &frame[14..])
        }
        LinkType::LinuxSll => {
            let proto = be16(frame, 14).ok_or(DropReason::LinkTruncated)?;
            ethertype_payload(proto, &frame[16..])
        }
        LinkType::LinuxSll2 => {
            let proto = be16(frame, 0).ok_or(DropReason::LinkTruncated)?;
            if frame.len() < 20 {
                return Err(DropReason::LinkTruncated);
            }
            ethertype_payload(proto, &frame[20..])
        }
        LinkType::Null | LinkType::Loop => {
            let family: [u8; 4] = frame
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .ok_or(DropReason::LinkTruncated)?;
            let family = if link == LinkType::Loop {
                u32::from_be_bytes(family)
            } else {
                // Host byte order of whoever captured: accept either.
                let le = u32::from_le_bytes(family);
                if le < 0x1_0000 {
                    le
                } else {
                    u32::from_be_bytes(family)
                }
            };
            match family {
                // AF_INET everywhere; AF_INET6 on the BSDs, macOS and Linux.
                2 | 10 | 24 | 28 | 30 => Ok(&frame[4..]),
                _ => Err(DropReason::NotIp),
            }
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => Ok(frame),
        LinkType::Radiotap => {
            let len = frame.get(2..4).ok_or(DropReason::LinkTruncated)?;
            let len = u16::from_le_bytes([len[0], len[1]]) as usize;
            ieee80211_payload(frame.get(len..).ok_or(DropReason::LinkTruncated)?)
        }
        LinkType::Ieee80211 => ieee80211_payload(frame),
        LinkType::Other(_) => Err(DropReason::LinkUnsupported),
    }
}

/// Walks VLAN tags, MPLS labels and PPPoE down to IP.
fn ethertype_payload(mut ethertype: u16, mut rest: &[u8]) -> Result<&[u8], DropReason> {
    for _ in 0..MAX_STACK {
        match ethertype {
            ETH_P_IPV4 | ETH_P_IPV6 => return Ok(rest),
            ETH_P_8021Q | ETH_P_8021AD | ETH_P_QINQ_OLD => {
                ethertype = be16(rest, 2).ok_or(DropReason::LinkTruncated)?;
                rest = &rest[4..];
            }
            ETH_P_MPLS_UC | ETH_P_MPLS_MC => return mpls_payload(rest),
            ETH_P_PPPOE_SESSION => {
                // 6-byte PPPoE header, then the 2-byte PPP protocol.
                let ppp = be16(rest, 6).ok_or(DropReason::LinkTruncated)?;
                return match ppp {
                    0x0021 | 0x0057 => Ok(&rest[8..]),
                    _ => Err(DropReason::NotIp),
                };
            }
            _ => return Err(DropReason::NotIp),
        }
    }
    Err(DropReason::NotIp)
}

/// An 802.11 data frame's payload, through its LLC/SNAP header. Other
/// frame types carry no IP; protected (encrypted) frames cannot be read.
fn ieee80211_payload(frame: &[u8]) -> Result<&[u8], DropReason> {
    let (&fc0, rest) = frame.split_first().ok_or(DropReason::LinkTruncated)?;
    let &fc1 = rest.first().ok_or(DropReason::LinkTruncated)?;
    let (frame_type, subtype) = ((fc0 >> 2) & 3, fc0 >> 4);
    if frame_type != 2 || subtype & 0x4 != 0 || fc1 & 0x40 != 0 {
        return Err(DropReason::NotIp); // management, control, null data, encrypted
    }
    let mut header = 24;
    if fc1 & 0x03 == 0x03 {
        header += 6; // four addresses (WDS)
    }
    if subtype & 0x8 != 0 {
        header += 2; // QoS control
        if fc1 & 0x80 != 0 {
            header += 4; // HT control
        }
    }
    let llc = frame
        .get(header..header + 8)
        .ok_or(DropReason::LinkTruncated)?;
    if llc[..6] != [0xaa, 0xaa, 0x03, 0, 0, 0] {
        return Err(DropReason::NotIp);
    }
    ethertype_payload(u16::from_be_bytes([llc[6], llc[7]]), &frame[header + 8..])
}

/// Pops MPLS labels until the bottom of the stack; the payload's IP version
/// nibble tells IPv4 from IPv6.
fn mpls_payload(mut rest: &[u8]) -> Result<&[u8], DropReason> {
    for _ in 0..MAX_STACK {
        let label = rest.get(..4).ok_or(DropReason::LinkTruncated)?;
        let bottom = label[2] & 1 == 1;
        rest = &rest[4..];
        if bottom {
            return match rest.first().map(|b| b >> 4) {
                Some(4) | Some(6) => Ok(rest),
                Some(_) => Err(DropReason::NotIp),
                None => Err(DropReason::LinkTruncated),
            };
        }
    }
    Err(DropReason::NotIp)
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn ethernet_with_qinq_reaches_ip() {
        let mut inner = Vec::new();
        inner.extend_from_slice(&[0x00, 0x64]); // VLAN 100
        inner.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        inner.extend_from_slice(&[0x00, 0x0b]); // VLAN 11
        inner.extend_from_slice(&ETH_P_IPV4.to_be_bytes());
        inner.push(0x45);
        let frame = eth(ETH_P_8021AD, &inner);
        assert_eq!(strip(LinkType::Ethernet, &frame), Ok(&[0x45u8][..]));
    }

    #[test]
    fn truncated_and_foreign_frames_are_classified() {
        assert_eq!(
            strip(LinkType::Ethernet, &[0; 10]),
            Err(DropReason::LinkTruncated)
        );
        assert_eq!(
            strip(LinkType::Ethernet, &eth(0x0806, &[1, 2])),
            Err(DropReason::NotIp)
        );
        assert_eq!(
            strip(LinkType::Ethernet, &eth(ETH_P_8021Q, &[0, 1])),
            Err(DropReason::LinkTruncated)
        );
        assert_eq!(
            strip(LinkType::Other(105), &[0; 64]),
            Err(DropReason::LinkUnsupported)
        );
    }

    #[test]
    fn null_accepts_both_byte_orders() {
        assert_eq!(
            strip(LinkType::Null, &[2, 0, 0, 0, 0x45]),
            Ok(&[0x45u8][..])
        );
        assert_eq!(
            strip(LinkType::Null, &[0, 0, 0, 30, 0x60]),
            Ok(&[0x60u8][..])
        );
        assert_eq!(
            strip(LinkType::Null, &[7, 0, 0, 0, 0x45]),
            Err(DropReason::NotIp)
        );
    }

    #[test]
    fn mpls_stack_is_popped() {
        // Two labels, the second with the bottom-of-stack bit.
        let frame = eth(ETH_P_MPLS_UC, &[0, 0, 0x10, 64, 0, 0, 0x11, 64, 0x60, 0]);
        assert_eq!(strip(LinkType::Ethernet, &frame), Ok(&[0x60u8, 0][..]));
    }
}
