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
