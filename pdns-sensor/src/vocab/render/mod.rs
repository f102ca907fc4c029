//! Presentation format: how stored records look to people and tools.
//!
//! Rdata is stored in canonical wire form and rendered here exactly as
//! `dig` (BIND 9.18) prints it on one line, which is also how DNSDB shows
//! it: absolute names with their final dot, dig's quoting and escapes, hex
//! and base64 in 56-character words, no parentheses. The same text goes to
//! every surface (dump, DNSDB, CIRCL, bro-pdns, exports), and a test checks
//! it against dig's own output for answers from a real server.
//!
//! | module | holds |
//! |---|---|
//! | [`wire`] | a bounded cursor over rdata |
//! | [`text`] | the pieces: names, strings, hex, base64, addresses, times, type names |
//! | [`types`] | each type's fields in order |
//! | [`svcb`], [`loc`] | the two types with a grammar of their own |
//!
//! Types dig does not know, types it prints generically (NULL…), and rdata
//! that does not parse as its type are written in the RFC 3597 form
//! `\# <len> <HEX>`, as dig writes it. Stored data never changes with the
//! rendering, so a better rendering needs no migration.

mod loc;
mod svcb;
mod text;
mod types;
mod wire;

use std::str::FromStr;

use domain::base::iana::Rtype;

/// The mnemonic of a record type as dig prints it (`A`, `HTTPS`,
/// `TYPE65280`).
pub fn rtype_name(rtype: Rtype) -> String {
    let mut s = String::new();
    write_rtype_name(rtype, &mut s);
    s
}

/// [`rtype_name`], appended to `out`.
pub fn write_rtype_name(rtype: Rtype, out: &mut String) {
    text::type_name(out, rtype.to_int());
}

/// Parses a record type mnemonic or `TYPEnnn` (case-insensitive): dig's
/// mnemonics, and any other `domain` knows.
pub fn parse_rtype(text: &str) -> Option<Rtype> {
    let upper = text.trim().to_ascii_uppercase();
    if let Some(n) = upper.strip_prefix("TYPE") {
        return n.parse().ok().map(Rtype::from_int);
    }
    // Every mnemonic BIND knows is below 263 or one of the two at 32768.
    let mut codes = (0..263).chain([32768, 32769]);
    if let Some(code) = codes.find(|&c| text::type_mnemonic(c) == Some(upper.as_str())) {
        return Some(Rtype::from_int(code));
    }
    Rtype::from_str(&upper).ok()
}

/// Renders rdata (canonical wire form) in presentation format, as dig
/// prints it.
pub fn rdata(rtype: Rtype, wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len() * 2 + 8);
    write_rdata(rtype, wire, &mut s);
    s
}

/// [`rdata`], appended to `out`.
pub fn write_rdata(rtype: Rtype, wire: &[u8], out: &mut String) {
    // Addresses and single names are most of what a resolver answers: done
    // without the general machinery.
    match (rtype, wire.len()) {
        (Rtype::A, 4) => return text::ipv4(out, wire),
        (Rtype::AAAA, 16) => {
            let octets: &[u8; 16] = wire.try_into().expect("16 bytes");
            return text::ipv6(out, octets);
        }
        _ => {}
    }
    let start = out.len();
    match types::present(rtype.to_int(), wire, out) {
        Ok(Some(())) => {}
        Ok(None) | Err(_) => {
            out.truncate(start);
            write_generic(wire, out);
        }
    }
}

/// RFC 3597 generic rdata as dig writes it: `\# 4 C0000201`, the hex
/// upper case and split into 56-character words.
pub fn generic(wire: &[u8]) -> String {
    let mut s = String::with_capacity(8 + wire.len() * 2);
    write_generic(wire, &mut s);
    s
}

fn write_generic(wire: &[u8], out: &mut String) {
    use std::fmt::Write as _;
    let _ = write!(out, "\\# {}", wire.len());
    if !wire.is_empty() {
        out.push(' ');
        text::hex_split(out, wire);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(code: u16, wire: &[u8]) -> String {
        rdata(Rtype::from_int(code), wire)
    }

    #[test]
    fn addresses() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let v4 = (x >> 7).to_be_bytes();
            assert_eq!(
                t(1, &v4[..4]),
                std::net::Ipv4Addr::new(v4[0], v4[1], v4[2], v4[3]).to_string()
            );
            // Outside ::/96 glibc and Rust agree.
            let mut v6 = [0u8; 16];
            for (i, b) in v6.iter_mut().enumerate() {
                *b = if (x >> (i % 8 * 8)) & 3 == 0 {
                    0
                } else {
                    (x >> i) as u8
                };
            }
            v6[0] |= 0x20;
            assert_eq!(t(28, &v6), std::net::Ipv6Addr::from(v6).to_string());
        }
        assert_eq!(t(1, &[1, 2, 3]), "\\# 3 010203");
    }

    #[test]
    fn what_the_issue_saw_now_renders_like_dig() {
        // SRV keeps its final dot.
        assert_eq!(
            t(33, b"\x00\x0a\x00\x3c\x13\xc4\x03sip\x07example\x00"),
            "10 60 5060 sip.example."
        );
        // SSHFP and TLSA on one line, hex in upper case, 56-column words.
        let fp: Vec<u8> = (0..20).collect();
        let mut sshfp = vec![1, 1];
        sshfp.extend(&fp);
        assert_eq!(
            t(44, &sshfp),
            "1 1 000102030405060708090A0B0C0D0E0F10111213"
        );
        let mut tlsa = vec![3, 1, 1];
        tlsa.extend(0..32u8);
        assert_eq!(
            t(52, &tlsa),
            "3 1 1 000102030405060708090A0B0C0D0E0F101112131415161718191A1B 1C1D1E1F"
        );
        // HTTPS alias mode has no trailing space.
        assert_eq!(t(65, b"\x00\x00\x03www\x07example\x00"), "0 www.example.");
        // URI is not generic.
        assert_eq!(
            t(256, b"\x00\x0a\x00\x01https://x.example/"),
            "10 1 \"https://x.example/\""
        );
        // SVCB values quoted as dig quotes them.
        assert_eq!(
            t(
                64,
                b"\x00\x01\x00\x00\x01\x00\x06\x02h2\x02h3\x00\x03\x00\x02\x20\xfb\xfd\xe8\x00\x03abc"
            ),
            "1 . alpn=\"h2,h3\" port=8443 key65000=\"abc\""
        );
    }

    #[test]
    fn names_and_strings() {
        assert_eq!(t(5, b"\x01x\x03cdn\x04test\x00"), "x.cdn.test.");
        assert_eq!(t(5, b"\x00"), ".");
        assert_eq!(t(5, b"\x03a.b\x01@\x00"), "a\\.b.@.");
        assert_eq!(
            t(15, b"\x00\x0a\x04mail\x07example\x00"),
            "10 mail.example."
        );
        assert_eq!(t(16, b"\x05hello\x03a b\x00"), "\"hello\" \"a b\" \"\"");
        assert_eq!(
            t(13, b"\x08PC Intel\x07Linux 6"),
            "\"PC Intel\" \"Linux 6\""
        );
        assert_eq!(
            t(257, b"\x00\x05issueletsencrypt.org"),
            "0 issue \"letsencrypt.org\""
        );
    }

    #[test]
    fn generic_form_is_dig_s() {
        assert_eq!(t(65280, &[0xde, 0xad]), "\\# 2 DEAD");
        assert_eq!(t(65280, &[]), "\\# 0");
        assert_eq!(t(10, &[1, 2, 3]), "\\# 3 010203");
        // Trailing bytes, cut names: not the type they claim to be.
        assert_eq!(t(5, b"\x01x\x00\x01"), "\\# 4 01780001");
        assert_eq!(t(15, b"\x00\x0a\x04ma"), "\\# 5 000A046D61");
        // LOC of another version.
        assert_eq!(t(29, &[1; 16]), format!("\\# 16 {}", "01".repeat(16)));
    }

    #[test]
    fn never_panics_and_stays_on_one_line() {
        let mut x: u64 = 42;
        let mut codes: Vec<u16> = (0..=300).collect();
        codes.extend([32768, 32769, 65280, 65533]);
        for _ in 0..200 {
            for &code in &codes {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let len = (x >> 56) as usize % 40;
                let wire: Vec<u8> = (0..len).map(|i| (x >> (i % 7 * 8)) as u8 % 12).collect();
                let text = t(code, &wire);
                assert!(!text.contains('\n'), "{code} {wire:?} {text}");
            }
        }
    }

    #[test]
    fn type_names_round_trip() {
        assert_eq!(rtype_name(Rtype::HTTPS), "HTTPS");
        assert_eq!(rtype_name(Rtype::from_int(65280)), "TYPE65280");
        assert_eq!(rtype_name(Rtype::from_int(65533)), "TYPE65533");
        assert_eq!(rtype_name(Rtype::from_int(23)), "NSAP-PTR");
        assert_eq!(parse_rtype("aaaa"), Some(Rtype::AAAA));
        assert_eq!(parse_rtype("nsap-ptr"), Some(Rtype::from_int(23)));
        assert_eq!(parse_rtype("TYPE65280"), Some(Rtype::from_int(65280)));
        assert_eq!(parse_rtype("nonsense"), None);
        for code in 0..=u16::MAX {
            if let Some(m) = text::type_mnemonic(code) {
                assert_eq!(parse_rtype(m), Some(Rtype::from_int(code)));
            }
        }
    }
}
