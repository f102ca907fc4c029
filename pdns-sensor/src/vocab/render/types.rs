//! Rdata of each type BIND 9.18 knows, field by field as its `totext`
//! writes it in dig's one-line style (`dig +nomultiline`, which is also
//! DNSDB's): no parentheses, hex and base64 split into 56-character words.
//!
//! [`present`] answers `None` for a type BIND prints in the generic form
//! (NULL, UINFO…, types it does not know, and shapes it declines such as a
//! LOC of another version), and an error for rdata that does not parse as
//! its type; both end up as RFC 3597 text in the caller.

use std::fmt::Write as _;

use super::loc;
use super::svcb;
use super::text::{self, Quoting};
use super::wire::{Malformed, Reader, Result};

/// Writes `wire` as presentation text of type `code` to `out`. `Ok(None)`
/// means BIND has no specific text form for it.
pub(super) fn present(code: u16, wire: &[u8], out: &mut String) -> Result<Option<()>> {
    let mut r = Reader::new(wire);
    let known = write(code, &mut r, out)?;
    if known.is_some() {
        r.finish()?;
    }
    Ok(known)
}

fn num(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n}");
}

/// `n ` (a number and a space).
fn num_sp(out: &mut String, n: impl std::fmt::Display) {
    let _ = write!(out, "{n} ");
}

fn name(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    text::name(out, r.name()?);
    Ok(())
}

fn quoted(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    text::char_string(out, r.char_string()?, Quoting::Quoted);
    Ok(())
}

/// TXT and its kin: one or more quoted strings.
fn strings(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    if r.is_empty() {
        return Err(Malformed);
    }
    while !r.is_empty() {
        quoted(out, r)?;
        if !r.is_empty() {
            out.push(' ');
        }
    }
    Ok(())
}

fn ipv6(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    let octets: &[u8; 16] = r.take(16)?.try_into().map_err(|_| Malformed)?;
    text::ipv6(out, octets);
    Ok(())
}

/// A 64-bit locator (NID, L64): four hex groups.
fn locator64(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    for i in 0..4 {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{:x}", r.u16()?);
    }
    Ok(())
}

/// A type covered (RRSIG, DSYNC): mnemonic, or `TYPEnnn` (type 0 too).
fn covered(out: &mut String, code: u16) {
    if code == 0 {
        out.push_str("TYPE0");
    } else {
        text::type_name(out, code);
    }
}

fn write(code: u16, r: &mut Reader<'_>, out: &mut String) -> Result<Option<()>> {
    match code {
        // A
        1 => text::ipv4(out, r.take(4)?),
        // NS MD MF CNAME MB MG MR PTR NSAP-PTR DNAME
        2..=5 | 7..=9 | 12 | 23 | 39 => name(out, r)?,
        6 => {
            // SOA
            name(out, r)?;
            out.push(' ');
            name(out, r)?;
            for _ in 0..5 {
                out.push(' ');
                num(out, r.u32()?);
            }
        }
        // WKS
        11 => {
            text::ipv4(out, r.take(4)?);
            out.push(' ');
            num(out, r.u8()?);
            let bitmap = r.rest();
            if bitmap.len() > 8 * 1024 {
                return Err(Malformed);
            }
            for (i, &b) in bitmap.iter().enumerate() {
                for j in 0..8 {
                    if b & (0x80 >> j) != 0 {
                        out.push(' ');
                        num(out, i * 8 + j);
                    }
                }
            }
        }
        // HINFO
        13 => {
            quoted(out, r)?;
            out.push(' ');
            quoted(out, r)?;
        }
        // MINFO RP TALINK
        14 | 17 | 58 => {
            name(out, r)?;
            out.push(' ');
            name(out, r)?;
        }
        // MX AFSDB RT KX LP
        15 | 18 | 21 | 36 | 107 => {
            num_sp(out, r.u16()?);
            name(out, r)?;
        }
        // TXT SPF AVC NINFO RESINFO WALLET
        16 | 99 | 258 | 56 | 261 | 262 => strings(out, r)?,
        // X25
        19 => quoted(out, r)?,
        // ISDN: an address and an optional subaddress
        20 => {
            quoted(out, r)?;
            if !r.is_empty() {
                out.push(' ');
                quoted(out, r)?;
            }
        }
        // NSAP
        22 => {
            out.push_str("0x");
            text::hex_lower(out, r.rest());
        }
        // SIG RRSIG: the same fields; SIG names a covered type BIND does
        // not know by its bare number, RRSIG as TYPEnnn.
        24 | 46 => {
            let covered_type = r.u16()?;
            match text::type_mnemonic(covered_type).filter(|_| covered_type != 0) {
                Some(m) => out.push_str(m),
                None if code == 24 => num(out, covered_type),
                None => covered(out, covered_type),
            }
            out.push(' ');
            num_sp(out, r.u8()?);
            num_sp(out, r.u8()?);
            num_sp(out, r.u32()?);
            text::time32(out, r.u32()?);
            out.push(' ');
            text::time32(out, r.u32()?);
            out.push(' ');
            num_sp(out, r.u16()?);
            name(out, r)?;
            out.push(' ');
            text::base64_split(out, r.rest());
        }
        // KEY DNSKEY CDNSKEY RKEY
        25 | 48 | 60 | 57 => {
            let flags = r.u16()?;
            num_sp(out, flags);
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            // A KEY saying "no key" has none to print.
            if code == 25 && flags & 0xc000 == 0xc000 {
                return Ok(Some(()));
            }
            out.push(' ');
            text::base64_split(out, r.rest());
        }
        // PX
        26 => {
            num_sp(out, r.u16()?);
            name(out, r)?;
            out.push(' ');
            name(out, r)?;
        }
        // GPOS
        27 => {
            quoted(out, r)?;
            out.push(' ');
            quoted(out, r)?;
            out.push(' ');
            quoted(out, r)?;
        }
        // AAAA
        28 => ipv6(out, r)?,
        // LOC
        29 => return loc::write(r, out),
        // NXT
        30 => {
            name(out, r)?;
            for (i, &b) in r.rest().iter().enumerate() {
                for j in 0..8 {
                    if b & (0x80 >> j) != 0 {
                        out.push(' ');
                        let t = (i * 8 + j) as u16;
                        match text::type_mnemonic(t) {
                            Some(m) => out.push_str(m),
                            None => num(out, t),
                        }
                    }
                }
            }
        }
        // EID NIMLOC
        31 | 32 => text::hex_split(out, r.rest()),
        // SRV
        33 => {
            num_sp(out, r.u16()?);
            num_sp(out, r.u16()?);
            num_sp(out, r.u16()?);
            name(out, r)?;
        }
        // ATMA
        34 => match r.u8()? {
            0 => text::hex_lower(out, r.rest()),
            1 => {
                out.push('+');
                let digits = r.rest();
                if !digits.iter().all(u8::is_ascii_digit) {
                    return Err(Malformed);
                }
                out.extend(digits.iter().map(|&b| char::from(b)));
            }
            _ => return Ok(None),
        },
        // NAPTR
        35 => {
            num_sp(out, r.u16()?);
            num_sp(out, r.u16()?);
            for _ in 0..3 {
                quoted(out, r)?;
                out.push(' ');
            }
            name(out, r)?;
        }
        // CERT
        37 => {
            text::cert_type(out, r.u16()?);
            out.push(' ');
            num_sp(out, r.u16()?);
            text::secalg(out, r.u8()?);
            out.push(' ');
            text::base64_split(out, r.rest());
        }
        // A6
        38 => {
            let prefix = r.u8()?;
            if prefix > 128 {
                return Err(Malformed);
            }
            num(out, prefix);
            out.push(' ');
            if prefix != 128 {
                let octets = usize::from(prefix / 8);
                let mut addr = [0u8; 16];
                addr[octets..].copy_from_slice(r.take(16 - octets)?);
                addr[octets] &= 0xff >> (prefix % 8);
                text::ipv6(out, &addr);
            }
            if prefix != 0 {
                out.push(' ');
                name(out, r)?;
            }
        }
        // SINK
        40 => {
            num_sp(out, r.u8()?);
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            if !r.is_empty() {
                out.push(' ');
                text::base64_split(out, r.rest());
            }
        }
        // APL
        42 => {
            let mut first = true;
            while !r.is_empty() {
                let family = r.u16()?;
                let prefix = r.u8()?;
                let flags = r.u8()?;
                let len = usize::from(flags & 0x7f);
                let data = r.take(len)?;
                if !first {
                    out.push(' ');
                }
                first = false;
                if flags & 0x80 != 0 {
                    out.push('!');
                }
                let _ = write!(out, "{family}:");
                match family {
                    1 if len <= 4 && prefix <= 32 => {
                        let mut a = [0u8; 4];
                        a[..len].copy_from_slice(data);
                        text::ipv4(out, &a);
                    }
                    2 if len <= 16 && prefix <= 128 => {
                        let mut a = [0u8; 16];
                        a[..len].copy_from_slice(data);
                        text::ipv6(out, &a);
                    }
                    1 | 2 => return Err(Malformed),
                    _ => return Ok(None),
                }
                let _ = write!(out, "/{prefix}");
            }
        }
        // DS CDS TA DLV
        43 | 59 | 32768 | 32769 => {
            num_sp(out, r.u16()?);
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            out.push(' ');
            text::hex_split(out, r.rest());
        }
        // SSHFP
        44 => {
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            if !r.is_empty() {
                out.push(' ');
                text::hex_split(out, r.rest());
            }
        }
        // IPSECKEY
        45 => {
            let precedence = r.u8()?;
            let gateway = r.u8()?;
            if gateway > 3 {
                return Ok(None);
            }
            num_sp(out, precedence);
            num_sp(out, gateway);
            num_sp(out, r.u8()?);
            match gateway {
                0 => out.push('.'),
                1 => text::ipv4(out, r.take(4)?),
                2 => ipv6(out, r)?,
                _ => name(out, r)?,
            }
            if !r.is_empty() {
                out.push(' ');
                text::base64_split(out, r.rest());
            }
        }
        // NSEC
        47 => {
            name(out, r)?;
            if !r.is_empty() {
                out.push(' ');
            }
            text::type_bitmap(out, r.rest())?;
        }
        // DHCID OPENPGPKEY HHIT BRID
        49 | 61 | 67 | 68 => text::base64_split(out, r.rest()),
        // NSEC3
        50 => {
            num_sp(out, r.u8()?);
            num_sp(out, r.u8()?);
            num_sp(out, r.u16()?);
            salt(out, r)?;
            out.push(' ');
            let hash = r.char_string()?;
            text::base32hex(out, hash);
            if !r.is_empty() {
                out.push(' ');
            }
            text::type_bitmap(out, r.rest())?;
        }
        // NSEC3PARAM
        51 => {
            num_sp(out, r.u8()?);
            num_sp(out, r.u8()?);
            num_sp(out, r.u16()?);
            salt(out, r)?;
        }
        // TLSA SMIMEA
        52 | 53 => {
            num_sp(out, r.u8()?);
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            out.push(' ');
            text::hex_split(out, r.rest());
        }
        // HIP
        55 => {
            let hit_len = usize::from(r.u8()?);
            let algorithm = r.u8()?;
            let key_len = usize::from(r.u16()?);
            num_sp(out, algorithm);
            text::hex(out, r.take(hit_len)?);
            out.push(' ');
            text::base64(out, r.take(key_len)?);
            while !r.is_empty() {
                out.push(' ');
                name(out, r)?;
            }
        }
        // CSYNC
        62 => {
            num_sp(out, r.u32()?);
            num(out, r.u16()?);
            if !r.is_empty() {
                out.push(' ');
            }
            text::type_bitmap(out, r.rest())?;
        }
        // ZONEMD
        63 => {
            num_sp(out, r.u32()?);
            num_sp(out, r.u8()?);
            num(out, r.u8()?);
            out.push(' ');
            text::hex_split(out, r.rest());
        }
        // SVCB HTTPS
        64 | 65 => svcb::write(r, out)?,
        // DSYNC
        66 => {
            covered(out, r.u16()?);
            out.push(' ');
            match r.u8()? {
                1 => out.push_str("NOTIFY"),
                scheme => num(out, scheme),
            }
            out.push(' ');
            num_sp(out, r.u16()?);
            name(out, r)?;
        }
        // NID L64
        104 | 106 => {
            num_sp(out, r.u16()?);
            locator64(out, r)?;
        }
        // L32
        105 => {
            num_sp(out, r.u16()?);
            text::ipv4(out, r.take(4)?);
        }
        // EUI48 EUI64
        108 | 109 => {
            let len = if code == 108 { 6 } else { 8 };
            for (i, b) in r.take(len)?.iter().enumerate() {
                if i > 0 {
                    out.push('-');
                }
                let _ = write!(out, "{b:02x}");
            }
        }
        // URI
        256 => {
            num_sp(out, r.u16()?);
            num_sp(out, r.u16()?);
            text::multi_text(out, r.rest());
        }
        // CAA
        257 => {
            num_sp(out, r.u8()?);
            text::char_string(out, r.char_string()?, Quoting::Bare);
            out.push(' ');
            text::multi_text(out, r.rest());
        }
        // DOA
        259 => {
            num_sp(out, r.u32()?);
            num_sp(out, r.u32()?);
            num_sp(out, r.u8()?);
            quoted(out, r)?;
            out.push(' ');
            if r.is_empty() {
                out.push('-');
            } else {
                text::base64(out, r.rest());
            }
        }
        // AMTRELAY
        260 => {
            let precedence = r.u8()?;
            let d_and_type = r.u8()?;
            let gateway = d_and_type & 0x7f;
            if gateway > 3 {
                return Ok(None);
            }
            num_sp(out, precedence);
            let _ = write!(out, "{} {gateway} ", d_and_type >> 7);
            match gateway {
                0 => out.push('.'),
                1 => text::ipv4(out, r.take(4)?),
                2 => ipv6(out, r)?,
                _ => name(out, r)?,
            }
        }
        // NULL, UINFO UID GID UNSPEC, KEYDATA, meta types and everything
        // BIND does not know: the generic form.
        _ => return Ok(None),
    }
    Ok(Some(()))
}

/// An NSEC3/NSEC3PARAM salt: hex, or `-` when empty.
fn salt(out: &mut String, r: &mut Reader<'_>) -> Result<()> {
    let salt = r.char_string()?;
    if salt.is_empty() {
        out.push('-');
    } else {
        text::hex(out, salt);
    }
    Ok(())
}
