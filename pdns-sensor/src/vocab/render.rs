//! Presentation format: how stored records look to people and tools.
//!
//! Rdata is stored in canonical wire form and rendered here as RFC 1035
//! presentation format, the way `dig` prints it, by `domain`'s record data
//! types. Types `domain` does not know, and rdata it cannot parse, fall back
//! to the RFC 3597 generic form `\# <len> <hex>`.

use std::fmt::Write as _;
use std::str::FromStr;

use domain::base::iana::Rtype;
use domain::base::name::ParsedName;
use domain::base::rdata::ParseRecordData;
use domain::rdata::AllRecordData;
use octseq::Parser;

/// The mnemonic of a record type (`A`, `HTTPS`, `TYPE65280`).
pub fn rtype_name(rtype: Rtype) -> String {
    rtype.to_string()
}

/// Parses a record type mnemonic or `TYPEnnn` (case-insensitive).
pub fn parse_rtype(text: &str) -> Option<Rtype> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE") {
        return n.parse().ok().map(Rtype::from_int);
    }
    Rtype::from_str(&upper).ok()
}

/// Renders rdata (canonical wire form) in presentation format.
pub fn rdata(rtype: Rtype, wire: &[u8]) -> String {
    // Addresses are most of what a resolver answers, and `domain` prints
    // them with the standard library's formatting anyway: done directly,
    // without parsing into the all-types enum first (a tenth of the work;
    // it is the export encoder's main cost).
    match (rtype, wire.len()) {
        (Rtype::A, 4) => return ipv4(wire),
        (Rtype::CNAME | Rtype::NS | Rtype::PTR | Rtype::DNAME, _) => {
            if let Some(text) = wire_name(wire) {
                return text;
            }
        }
        (Rtype::AAAA, 16) => {
            let octets: [u8; 16] = wire.try_into().expect("16 bytes");
            return std::net::Ipv6Addr::from(octets).to_string();
        }
        _ => {}
    }
    rdata_parsed(rtype, wire)
}

/// Dotted-quad text of four bytes (the standard library's `Display` for
/// addresses goes through its padding machinery: ten times the work).
fn ipv4(octets: &[u8]) -> String {
    let mut s = String::with_capacity(15);
    for (i, &b) in octets.iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if b >= 100 {
            s.push(char::from(b'0' + b / 100));
        }
        if b >= 10 {
            s.push(char::from(b'0' + b / 10 % 10));
        }
        s.push(char::from(b'0' + b % 10));
    }
    s
}

/// The presentation form of rdata that is exactly one uncompressed name,
/// escaped as `domain` escapes it (`\.`, `\\`, `\DDD` outside printable
/// ASCII), or `None` if the rdata is anything else.
fn wire_name(wire: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(wire.len() + 1);
    let mut pos = 0;
    loop {
        let len = usize::from(*wire.get(pos)?);
        if len == 0 {
            if pos + 1 != wire.len() {
                return None;
            }
            if s.is_empty() {
                s.push('.');
            }
            return Some(s);
        }
        if len > 63 {
            return None;
        }
        let label = wire.get(pos + 1..pos + 1 + len)?;
        for &b in label {
            match b {
                b'.' | b'\\' => {
                    s.push('\\');
                    s.push(char::from(b));
                }
                0x21..=0x7e => s.push(char::from(b)),
                _ => {
                    let _ = write!(s, "\\{b:03}");
                }
            }
        }
        s.push('.');
        pos += 1 + len;
    }
}

/// [`rdata`] through `domain`'s record data types, whatever the type.
fn rdata_parsed(rtype: Rtype, wire: &[u8]) -> String {
    let mut parser = Parser::from_ref(wire);
    let parsed = AllRecordData::<&[u8], ParsedName<&[u8]>>::parse_rdata(rtype, &mut parser);
    match parsed {
        Ok(Some(AllRecordData::Unknown(_))) | Ok(None) | Err(_) => generic(wire),
        Ok(Some(data)) if parser.remaining() == 0 => {
            // A Display impl may fail on odd data; never let that panic.
            let mut s = String::new();
            match write!(s, "{data}") {
                Ok(()) => s,
                Err(_) => generic(wire),
            }
        }
        Ok(Some(_)) => generic(wire),
    }
}

/// RFC 3597 generic rdata: `\# 4 c0000201`.
pub fn generic(wire: &[u8]) -> String {
    let mut s = String::with_capacity(8 + wire.len() * 2);
    let _ = write!(s, "\\# {}", wire.len());
    if !wire.is_empty() {
        s.push(' ');
        for b in wire {
            let _ = write!(s, "{b:02x}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_render_as_domain_renders_them() {
        let mut v6 = vec![
            [0u8; 16],
            std::net::Ipv6Addr::LOCALHOST.octets(),
            "::ffff:192.0.2.1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "2001:db8::1:0:0:1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "2001:db8:0:0:1::"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
            "fe80::".parse::<std::net::Ipv6Addr>().unwrap().octets(),
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let mut a = [0u8; 16];
            for (i, b) in a.iter_mut().enumerate() {
                // Runs of zero groups as often as not.
                *b = if (x >> (i % 8 * 8)) & 3 == 0 {
                    0
                } else {
                    (x >> i) as u8
                };
            }
            v6.push(a);
            let v4 = (x >> 7).to_be_bytes();
            assert_eq!(
                ipv4(&v4[..4]),
                std::net::Ipv4Addr::new(v4[0], v4[1], v4[2], v4[3]).to_string()
            );
            assert_eq!(rdata(Rtype::A, &v4[..4]), rdata_parsed(Rtype::A, &v4[..4]));
        }
        for a in v6 {
            assert_eq!(
                rdata(Rtype::AAAA, &a),
                rdata_parsed(Rtype::AAAA, &a),
                "{a:?}"
            );
        }
        for edge in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 9, 100],
            [1, 20, 199, 200],
        ] {
            assert_eq!(rdata(Rtype::A, &edge), rdata_parsed(Rtype::A, &edge));
        }
        // Names, odd bytes included, as domain prints them.
        let mut x: u64 = 7;
        for _ in 0..3000 {
            let mut wire = Vec::new();
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            for l in 0..(x % 5) {
                let len = 1 + (x >> (8 + l)) % 6;
                wire.push(len as u8);
                for k in 0..len {
                    let r = x.rotate_left((l * 7 + k) as u32);
                    wire.push(match r % 5 {
                        0 => (r >> 8) as u8,
                        1 => b".\\-_"[(r >> 16) as usize % 4],
                        _ => b'a' + (r >> 24) as u8 % 26,
                    });
                }
            }
            wire.push(0);
            for rtype in [Rtype::CNAME, Rtype::NS, Rtype::PTR, Rtype::DNAME] {
                assert_eq!(rdata(rtype, &wire), rdata_parsed(rtype, &wire), "{wire:?}");
            }
            // Trailing bytes or a cut name: not one name; domain decides.
            let mut longer = wire.clone();
            longer.push(1);
            assert_eq!(
                rdata(Rtype::CNAME, &longer),
                rdata_parsed(Rtype::CNAME, &longer)
            );
            let cut = &wire[..wire.len() - 1];
            assert_eq!(rdata(Rtype::CNAME, cut), rdata_parsed(Rtype::CNAME, cut));
        }
        // Wrong lengths still go the generic way.
        assert_eq!(rdata(Rtype::A, &[1, 2, 3]), "\\# 3 010203");
    }

    #[test]
    fn common_types_render_like_dig() {
        assert_eq!(rdata(Rtype::from_int(1), &[192, 0, 2, 1]), "192.0.2.1");
        assert_eq!(
            rdata(
                Rtype::from_int(28),
                &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]
            ),
            "2001:db8::1"
        );
        assert_eq!(
            rdata(Rtype::from_int(5), b"\x01x\x03cdn\x04test\x00"),
            "x.cdn.test."
        );
        assert_eq!(
            rdata(Rtype::from_int(15), b"\x00\x0a\x04mail\x07example\x00"),
            "10 mail.example."
        );
        assert_eq!(
            rdata(Rtype::from_int(16), b"\x05hello\x03a b"),
            "\"hello\" \"a b\""
        );
    }

    #[test]
    fn unknown_and_broken_rdata_use_generic_form() {
        assert_eq!(rdata(Rtype::from_int(65280), &[0xde, 0xad]), "\\# 2 dead");
        assert_eq!(rdata(Rtype::from_int(1), &[1, 2, 3]), "\\# 3 010203");
        assert_eq!(rdata(Rtype::from_int(65280), &[]), "\\# 0");
    }

    #[test]
    fn type_names_round_trip() {
        assert_eq!(rtype_name(Rtype::HTTPS), "HTTPS");
        assert_eq!(rtype_name(Rtype::from_int(65280)), "TYPE65280");
        assert_eq!(parse_rtype("aaaa"), Some(Rtype::AAAA));
        assert_eq!(parse_rtype("TYPE65280"), Some(Rtype::from_int(65280)));
        assert_eq!(parse_rtype("nonsense"), None);
    }
}
