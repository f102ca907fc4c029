//! The pieces rdata text is made of, each written exactly as BIND 9.18's
//! `dig` writes it: names, character strings and their three quoting
//! styles, hex and base64 split into 56-character words, base32hex,
//! addresses as glibc's `inet_ntop` prints them, RRSIG times, record type
//! mnemonics and type bitmaps.
//!
//! Why by hand: `domain` renders correct presentation format, but not
//! dig's (it splits nothing, quotes SVCB values differently, drops the
//! final dot of some names, writes hex in lower case). Analysts paste our
//! text next to dig's and DNSDB's, and tools correlate on it: the bytes
//! have to be the same, so the rules are BIND's, one function per rule.

use std::fmt::Write as _;

/// The width of one word of split hex or base64: dig's default (`+split`
/// unset gives a 60-column text context; BIND splits at width − 2 rounded
/// down to whole base64 quanta, 56).
const WORD: usize = 56;

/// A name in rdata, absolute, with BIND's escapes: `"();.\` get a
/// backslash, anything outside printable ASCII is `\DDD`. (`@` and `$` are
/// escaped only in zone files, not in dig's answer text.)
pub(super) fn name(out: &mut String, wire: &[u8]) {
    let mut pos = 0;
    let mut any = false;
    while let Some(&len) = wire.get(pos) {
        if len == 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(wire.len());
        for &b in &wire[pos + 1..end] {
            match b {
                b'"' | b'(' | b')' | b'.' | b';' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                0x21..=0x7e => out.push(char::from(b)),
                _ => push_decimal_escape(out, b),
            }
        }
        out.push('.');
        any = true;
        pos = end;
    }
    if !any {
        out.push('.');
    }
}

fn push_decimal_escape(out: &mut String, b: u8) {
    out.push('\\');
    out.push(char::from(b'0' + b / 100));
    out.push(char::from(b'0' + b / 10 % 10));
    out.push(char::from(b'0' + b % 10));
}

/// How a character string is quoted (BIND's `commatxt_totext`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Quoting {
    /// In double quotes: `"` and `\` escaped, bytes below space or above
    /// `~` as `\DDD` (TXT, HINFO, NAPTR, …).
    Quoted,
    /// Bare: also space as `\032`, and `@` and `;` escaped (the CAA tag).
    Bare,
    /// An element of an SVCB `alpn` list: bare, but commas and backslashes
    /// escaped twice over (`\\,`, `\\\\`), the list itself in quotes.
    AlpnElement,
}

/// One `<character-string>`'s contents, quoted as `quoting` says.
pub(super) fn char_string(out: &mut String, bytes: &[u8], quoting: Quoting) {
    let quoted = quoting == Quoting::Quoted;
    if quoted {
        out.push('"');
    }
    for &b in bytes {
        if b < if quoted { b' ' } else { b'!' } || b >= 0x7f {
            push_decimal_escape(out, b);
            continue;
        }
        match (quoting, b) {
            (_, b'"') => out.push('\\'),
            (Quoting::AlpnElement, b',') => out.push_str("\\\\"),
            (Quoting::AlpnElement, b'\\') => out.push_str("\\\\\\"),
            (_, b'\\') => out.push('\\'),
            (Quoting::Bare, b'@' | b';') => out.push('\\'),
            _ => {}
        }
        out.push(char::from(b));
    }
    if quoted {
        out.push('"');
    }
}

/// Raw bytes as one quoted string, whatever their length (BIND's
/// `multitxt_totext`: CAA values, URI targets, SVCB values of unknown keys).
pub(super) fn multi_text(out: &mut String, bytes: &[u8]) {
    char_string(out, bytes, Quoting::Quoted);
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// Upper-case hex in words of [`WORD`] characters separated by spaces, as
/// dig prints digests, fingerprints and RFC 3597 data.
pub(super) fn hex_split(out: &mut String, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(WORD / 2).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        hex(out, chunk);
    }
}

/// Upper-case hex, unsplit.
pub(super) fn hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
        out.push(char::from(HEX_UPPER[usize::from(b & 15)]));
    }
}

/// Lower-case hex, unsplit (NSAP, ATMA).
pub(super) fn hex_lower(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        let _ = write!(out, "{b:02x}");
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Base64 in words of [`WORD`] characters separated by spaces (keys,
/// signatures, certificates).
pub(super) fn base64_split(out: &mut String, bytes: &[u8]) {
    for (i, chunk) in bytes.chunks(WORD / 4 * 3).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        base64(out, chunk);
    }
}

/// Base64, padded, unsplit.
pub(super) fn base64(out: &mut String, bytes: &[u8]) {
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

/// Base32 with the extended hex alphabet, upper case, no padding (NSEC3
/// next hashed owner).
pub(super) fn base32hex(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHIJKLMNOPQRSTUV";
    let mut acc: u64 = 0;
    let mut bits = 0;
    for &b in bytes {
        acc = acc << 8 | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[(acc >> bits & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[(acc << (5 - bits) & 31) as usize]));
    }
}

/// Dotted quad.
pub(super) fn ipv4(out: &mut String, octets: &[u8]) {
    for (i, &b) in octets.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if b >= 100 {
            out.push(char::from(b'0' + b / 100));
        }
        if b >= 10 {
            out.push(char::from(b'0' + b / 10 % 10));
        }
        out.push(char::from(b'0' + b % 10));
    }
}

/// An IPv6 address as glibc's `inet_ntop` writes it, which is what dig
/// prints: the longest run of two or more zero groups (the first if tied)
/// becomes `::`, groups in lower-case hex without leading zeros, and the
/// last 32 bits as a dotted quad for IPv4-mapped (`::ffff:a.b.c.d`) and
/// IPv4-compatible (`::a.b.c.d`, not `::` or `::1`-style small values)
/// addresses. (Rust's formatter differs on the last case.)
pub(super) fn ipv6(out: &mut String, octets: &[u8; 16]) {
    let words: [u16; 8] =
        std::array::from_fn(|i| u16::from_be_bytes([octets[2 * i], octets[2 * i + 1]]));
    // The longest run of zero words.
    let (mut best, mut best_len) = (usize::MAX, 0);
    let mut i = 0;
    while i < 8 {
        if words[i] == 0 {
            let start = i;
            while i < 8 && words[i] == 0 {
                i += 1;
            }
            if i - start > best_len {
                best = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    if best_len < 2 {
        best_len = 0;
    }
    let in_run = |i: usize| best_len > 0 && (best..best + best_len).contains(&i);
    for i in 0..8 {
        if in_run(i) {
            if i == best {
                out.push(':');
            }
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        // glibc: the embedded IPv4 form when the run starts at 0 and is
        // six words long, or five words followed by ffff.
        if i == 6
            && best_len > 0
            && best == 0
            && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))
        {
            ipv4(out, &octets[12..]);
            return;
        }
        let _ = write!(out, "{:x}", words[i]);
    }
    if best_len > 0 && best + best_len == 8 {
        out.push(':');
    }
}

/// An RRSIG/SIG time: 32-bit serial-number arithmetic around now (as BIND
/// does: a value "after" now by serial arithmetic is in the future), as
/// `YYYYMMDDHHMMSS` in UTC.
pub(super) fn time32(out: &mut String, value: u32) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    time32_at(out, value, now);
}

pub(super) fn time32_at(out: &mut String, value: u32, now: u64) {
    let now32 = now as u32;
    let diff = value.wrapping_sub(now32) as i32;
    let t = now as i64 + i64::from(diff);
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The mnemonics BIND 9.18 knows, by type code. `dig` prints any other
/// type as `TYPEnnn` (KEYDATA, 65533, is internal to BIND and printed so
/// too).
pub(super) fn type_mnemonic(code: u16) -> Option<&'static str> {
    Some(match code {
        1 => "A",
        2 => "NS",
        3 => "MD",
        4 => "MF",
        5 => "CNAME",
        6 => "SOA",
        7 => "MB",
        8 => "MG",
        9 => "MR",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        14 => "MINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        19 => "X25",
        20 => "ISDN",
        21 => "RT",
        22 => "NSAP",
        23 => "NSAP-PTR",
        24 => "SIG",
        25 => "KEY",
        26 => "PX",
        27 => "GPOS",
        28 => "AAAA",
        29 => "LOC",
        30 => "NXT",
        31 => "EID",
        32 => "NIMLOC",
        33 => "SRV",
        34 => "ATMA",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        38 => "A6",
        39 => "DNAME",
        40 => "SINK",
        41 => "OPT",
        42 => "APL",
        43 => "DS",
        44 => "SSHFP",
        45 => "IPSECKEY",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        49 => "DHCID",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        53 => "SMIMEA",
        55 => "HIP",
        56 => "NINFO",
        57 => "RKEY",
        58 => "TALINK",
        59 => "CDS",
        60 => "CDNSKEY",
        61 => "OPENPGPKEY",
        62 => "CSYNC",
        63 => "ZONEMD",
        64 => "SVCB",
        65 => "HTTPS",
        66 => "DSYNC",
        67 => "HHIT",
        68 => "BRID",
        99 => "SPF",
        100 => "UINFO",
        101 => "UID",
        102 => "GID",
        103 => "UNSPEC",
        104 => "NID",
        105 => "L32",
        106 => "L64",
        107 => "LP",
        108 => "EUI48",
        109 => "EUI64",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        253 => "MAILB",
        254 => "MAILA",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        258 => "AVC",
        259 => "DOA",
        260 => "AMTRELAY",
        261 => "RESINFO",
        262 => "WALLET",
        32768 => "TA",
        32769 => "DLV",
        _ => return None,
    })
}

/// A type as dig names it: its mnemonic or `TYPEnnn`.
pub(super) fn type_name(out: &mut String, code: u16) {
    match type_mnemonic(code) {
        Some(m) => out.push_str(m),
        None => {
            let _ = write!(out, "TYPE{code}");
        }
    }
}

/// An NSEC/NSEC3/CSYNC type bitmap: window blocks, each type present
/// named. A malformed bitmap (empty or over-long block) is an error.
pub(super) fn type_bitmap(
    out: &mut String,
    mut bitmap: &[u8],
) -> Result<(), super::wire::Malformed> {
    let mut first = true;
    while !bitmap.is_empty() {
        let [window, len, ref rest @ ..] = *bitmap else {
            return Err(super::wire::Malformed);
        };
        let len = usize::from(len);
        if len == 0 || len > 32 || rest.len() < len {
            return Err(super::wire::Malformed);
        }
        for (j, &byte) in rest[..len].iter().enumerate() {
            for k in 0..8 {
                if byte & (0x80 >> k) != 0 {
                    if !first {
                        out.push(' ');
                    }
                    first = false;
                    type_name(out, u16::from(window) * 256 + (j * 8 + k) as u16);
                }
            }
        }
        bitmap = &rest[len..];
    }
    Ok(())
}

/// A DNSSEC algorithm as BIND's `dns_secalg_totext` prints it (CERT).
pub(super) fn secalg(out: &mut String, alg: u8) {
    let name = match alg {
        1 => "RSAMD5",
        2 => "DH",
        3 => "DSA",
        5 => "RSASHA1",
        6 => "NSEC3DSA",
        7 => "NSEC3RSASHA1",
        8 => "RSASHA256",
        10 => "RSASHA512",
        12 => "ECCGOST",
        13 => "ECDSAP256SHA256",
        14 => "ECDSAP384SHA384",
        15 => "ED25519",
        16 => "ED448",
        252 => "INDIRECT",
        253 => "PRIVATEDNS",
        254 => "PRIVATEOID",
        _ => {
            let _ = write!(out, "{alg}");
            return;
        }
    };
    out.push_str(name);
}

/// A CERT certificate type (RFC 4398 mnemonics).
pub(super) fn cert_type(out: &mut String, t: u16) {
    let name = match t {
        1 => "PKIX",
        2 => "SPKI",
        3 => "PGP",
        4 => "IPKIX",
        5 => "ISPKI",
        6 => "IPGP",
        7 => "ACPKIX",
        8 => "IACPKIX",
        253 => "URI",
        254 => "OID",
        _ => {
            let _ = write!(out, "{t}");
            return;
        }
    };
    out.push_str(name);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut String)) -> String {
        let mut s = String::new();
        f(&mut s);
        s
    }

    #[test]
    fn ipv6_as_glibc_prints_it() {
        for (text, want) in [
            ("::", "::"),
            ("::1", "::1"),
            ("::2", "::2"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
            ("::192.0.2.1", "::192.0.2.1"),
            ("::1:0:0:0", "::1:0:0:0"),
            ("2001:db8::1", "2001:db8::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
            ("2001:0:0:1::1", "2001:0:0:1::1"),
            ("2001:db8::", "2001:db8::"),
            ("fe80::", "fe80::"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"),
            ("0:0:1::", "0:0:1::"),
            ("::ffff:0:0", "::ffff:0.0.0.0"),
        ] {
            let octets = text.parse::<std::net::Ipv6Addr>().unwrap().octets();
            assert_eq!(with(|s| ipv6(s, &octets)), want, "{text}");
        }
    }

    #[test]
    fn encodings() {
        assert_eq!(with(|s| base64(s, b"")), "");
        assert_eq!(with(|s| base64(s, b"f")), "Zg==");
        assert_eq!(with(|s| base64(s, b"fo")), "Zm8=");
        assert_eq!(with(|s| base64(s, b"foobar")), "Zm9vYmFy");
        assert_eq!(with(|s| base32hex(s, b"foobar")), "CPNMUOJ1E8");
        assert_eq!(with(|s| base32hex(s, b"f")), "CO");
        let long: Vec<u8> = (0..=255).collect();
        let split = with(|s| base64_split(s, &long));
        assert!(split.split(' ').rev().skip(1).all(|w| w.len() == 56));
        assert_eq!(split.replace(' ', ""), with(|s| base64(s, &long)));
        let split = with(|s| hex_split(s, &long));
        assert!(split.split(' ').rev().skip(1).all(|w| w.len() == 56));
    }

    #[test]
    fn times_follow_serial_arithmetic() {
        let now = 1_780_000_000; // 2026-05-28
        assert_eq!(with(|s| time32_at(s, 1_735_689_600, now)), "20250101000000");
        assert_eq!(with(|s| time32_at(s, 0, now)), "19700101000000");
        // A value "behind" now by more than 2^31 is in the future.
        assert_eq!(
            with(|s| time32_at(s, 1000, 3_000_000_000)),
            "21060207064456"
        );
        assert_eq!(
            with(|s| time32_at(s, 951_782_400, 951_782_400)),
            "20000229000000"
        );
    }

    #[test]
    fn strings_quote_as_bind_does() {
        let q = |b: &[u8], quoting| with(|s| char_string(s, b, quoting));
        assert_eq!(q(b"a \"b\" \\ c", Quoting::Quoted), r#""a \"b\" \\ c""#);
        assert_eq!(q(b"\t\xff\x7f", Quoting::Quoted), r#""\009\255\127""#);
        assert_eq!(q(b"a b@;", Quoting::Bare), r"a\032b\@\;");
        assert_eq!(q(b"h2,x\\", Quoting::AlpnElement), r"h2\\,x\\\\");
        assert_eq!(
            with(|s| name(s, b"\x03a.b\x02@$\x01\x00\x00")),
            r"a\.b.@$.\000."
        );
        assert_eq!(with(|s| name(s, b"\x00")), ".");
    }
}
