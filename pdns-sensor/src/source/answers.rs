//! Zeek's answer strings: what each one is, and what a name among them
//! is, written once for every source that holds them.
//!
//! Zeek logs a reply's answer section as a list of strings under the
//! question name, with neither owner nor type per answer, each type
//! rendered its own way by Zeek's base DNS scripts. Two sources keep such
//! strings: Zeek's own `dns.log` ([`super::zeek`], a list per reply, in
//! order) and bro-pdns's databases ([`super::bro_pdns`], one string per
//! row, the reply's order lost). Both rebuild records with the rules here,
//! so a record rebuilt by one is the record the other rebuilds from the
//! same answer:
//!
//! * [`classify`]: an answer's kind from its shape alone — an IPv4 address
//!   (`A`), an IPv6 address (`AAAA`), `TXT`/`SPF` text, a name, an `RRSIG`
//!   summary (with the type it covers), or one of the renderings that keep
//!   only a summary of the rdata (counted under an [`AnswerSkip`] reason,
//!   never stored);
//! * [`append_data`]: the canonical rdata of an address or text answer;
//! * [`name_role`]: what a name answer is under a query type, given what
//!   else the reply (or, for bro-pdns, the question) held: a CNAME hop, a
//!   record of the query's name type (NS, PTR, MX), or not rebuildable;
//! * [`append_name`]: the canonical rdata of a name answer of that type
//!   (MX with preference 0: Zeek drops the preference).
//!
//! What the rules are, and why, is told in [`super::zeek`]'s
//! `reconstruct` docs; what an unordered source cannot tell, in
//! [`super::bro_pdns`].

use std::net::{Ipv4Addr, Ipv6Addr};

use super::zeek::AnswerSkip;
use crate::vocab::Rtype;
use crate::vocab::name;

/// What one answer string is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    V4([u8; 4]),
    V6([u8; 16]),
    /// TXT (16) or SPF (99).
    Text(u16),
    Name,
    /// `RRSIG <type covered> ...`.
    Rrsig(u16),
    Skip(AnswerSkip),
}

impl Kind {
    /// Data that can only be the final RRset of a chain.
    pub fn is_data(self) -> bool {
        matches!(self, Kind::V4(_) | Kind::V6(_) | Kind::Text(_))
    }
}

/// What a name answer is, once the context has been looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A CNAME from the current owner to this name, which owns what
    /// follows.
    CnameHop,
    /// A record of this type owned by the current owner.
    Record(u16),
    Skip(AnswerSkip),
}

/// What is known around a name answer when its role is decided.
#[derive(Clone, Copy, Debug, Default)]
pub struct NameContext {
    /// An address or text may follow it in the reply (NS, PTR and MX
    /// answers never carry one: the name was then a CNAME hop).
    pub data_may_follow: bool,
    /// It is a reverse name (`*.in-addr.arpa`, `*.ip6.arpa`) and another
    /// name may follow it (classless reverse delegation, RFC 2317).
    pub reverse_then_name: bool,
    /// The type covered by the `RRSIG` right after the run of names, when
    /// the order of the reply is known.
    pub rrsig_after: Option<u16>,
}

/// Query types whose answers Zeek never puts in `answers`: an empty list
/// for them is not NODATA.
pub fn answers_unlogged(qtype: u16) -> bool {
    matches!(
        qtype,
        11 | 13 | 41 | 64 | 65 | 249 | 250 | 251 | 252 | 253 | 254 | 255 | 257
    )
}

/// Decides what a name answer is under `qtype` (`None`: the query was
/// not seen), see the module docs of `zeek::reconstruct`.
pub fn name_role(qtype: Option<u16>, ctx: &NameContext) -> Role {
    match qtype {
        Some(5) => Role::CnameHop,
        Some(t @ (2 | 12 | 15)) => {
            if ctx.data_may_follow || (t == 12 && ctx.reverse_then_name) {
                Role::CnameHop
            } else {
                Role::Record(t)
            }
        }
        Some(t @ (6 | 33)) => {
            if ctx.data_may_follow {
                Role::CnameHop
            } else if t == 6 {
                Role::Skip(AnswerSkip::SoaMname)
            } else {
                Role::Skip(AnswerSkip::SrvTarget)
            }
        }
        None | Some(255) => {
            if qtype.is_none() && ctx.data_may_follow {
                return Role::CnameHop;
            }
            match ctx.rrsig_after {
                Some(5) => Role::CnameHop,
                Some(t @ (2 | 12 | 15)) => Role::Record(t),
                _ => Role::Skip(AnswerSkip::Ambiguous),
            }
        }
        Some(_) => Role::CnameHop,
    }
}

/// What an answer string is, from its shape alone.
pub fn classify(a: &[u8]) -> Kind {
    if a.is_empty() {
        return Kind::Skip(AnswerSkip::Unrecognised);
    }
    let first = a[0];
    if first.is_ascii_digit() && a.iter().all(|b| b.is_ascii_digit() || *b == b'.') {
        if let Some(ip) = parse_ip::<Ipv4Addr>(a) {
            return Kind::V4(ip.octets());
        }
    } else if a.contains(&b':')
        && a.iter().all(|b| b.is_ascii_hexdigit() || b":.".contains(b))
        && let Some(ip) = parse_ip::<Ipv6Addr>(a)
    {
        return Kind::V6(ip.octets());
    }
    // Zeek lowercases every name it logs, so an upper-case ASCII letter
    // means one of its renderings.
    if first.is_ascii_uppercase() || first == b'<' {
        let starts = |p: &[u8]| a.starts_with(p);
        let digit_after =
            |p: &[u8]| a.starts_with(p) && a.get(p.len()).is_some_and(u8::is_ascii_digit);
        return if digit_after(b"TXT ") {
            Kind::Text(16)
        } else if digit_after(b"SPF ") {
            Kind::Text(99)
        } else if digit_after(b"RRSIG ") {
            let digits = &a[6..];
            let end = digits
                .iter()
                .position(|b| !b.is_ascii_digit())
                .unwrap_or(digits.len());
            Kind::Rrsig(parse_u16(&digits[..end]).unwrap_or(0))
        } else if starts(b"DNSKEY ") {
            Kind::Skip(AnswerSkip::Dnskey)
        } else if starts(b"DS ") {
            Kind::Skip(AnswerSkip::Ds)
        } else if starts(b"NSEC3") {
            Kind::Skip(AnswerSkip::Nsec3)
        } else if starts(b"NSEC ") {
            Kind::Skip(AnswerSkip::Nsec)
        } else if starts(b"SSHFP") {
            Kind::Skip(AnswerSkip::Sshfp)
        } else if starts(b"LOC:") {
            Kind::Skip(AnswerSkip::Loc)
        } else if starts(b"NAPTR ") {
            Kind::Skip(AnswerSkip::Naptr)
        } else if a == b"BIND9 signing signal" {
            Kind::Skip(AnswerSkip::Bind9)
        } else if starts(b"<unknown type=") {
            Kind::Skip(AnswerSkip::UnknownType)
        } else {
            Kind::Skip(AnswerSkip::Unrecognised)
        };
    }
    if a.iter().any(u8::is_ascii_uppercase) {
        return Kind::Skip(AnswerSkip::Unrecognised);
    }
    Kind::Name
}

/// Appends the canonical rdata of an address or text answer of kind
/// `kind` and returns its type; `Err` (appending nothing) for text whose
/// lengths do not add up. `None` for the kinds that are not data.
pub fn append_data(
    kind: Kind,
    answer: &[u8],
    out: &mut Vec<u8>,
) -> Option<Result<Rtype, AnswerSkip>> {
    let start = out.len();
    Some(match kind {
        Kind::V4(a) => {
            out.extend_from_slice(&a);
            Ok(Rtype::A)
        }
        Kind::V6(a) => {
            out.extend_from_slice(&a);
            Ok(Rtype::AAAA)
        }
        Kind::Text(rtype) => {
            if text_rdata(rtype, answer, out) {
                Ok(Rtype::from_int(rtype))
            } else {
                out.truncate(start);
                Err(AnswerSkip::BadTxt)
            }
        }
        _ => return None,
    })
}

/// Appends the canonical rdata of a name answer that is a record of type
/// `rtype` (CNAME, NS, PTR, MX: an MX's preference is not logged and is
/// stored as 0); `Err` (appending nothing) if it is not a valid name.
pub fn append_name(rtype: u16, answer: &[u8], out: &mut Vec<u8>) -> Result<Rtype, AnswerSkip> {
    let start = out.len();
    if rtype == 15 {
        out.extend_from_slice(&[0, 0]); // preference unknown
    }
    if !name::wire_from_dotted(answer, out) {
        out.truncate(start);
        return Err(AnswerSkip::BadName);
    }
    Ok(Rtype::from_int(rtype))
}

fn parse_ip<T: std::str::FromStr>(a: &[u8]) -> Option<T> {
    std::str::from_utf8(a).ok()?.parse().ok()
}

/// A decimal u16 (digits only).
fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Whether a dotted name is a reverse-mapping name.
pub fn is_reverse_name(name: &[u8]) -> bool {
    name.ends_with(b".in-addr.arpa") || name.ends_with(b".ip6.arpa")
}

/// Appends TXT/SPF rdata from Zeek's `TXT <len> <text> TXT <len> <text>`
/// rendering (each length in bytes, strings joined by a space).
fn text_rdata(rtype: u16, answer: &[u8], out: &mut Vec<u8>) -> bool {
    let tag: &[u8] = if rtype == 99 { b"SPF " } else { b"TXT " };
    let mut rest = answer;
    loop {
        let Some(r) = rest.strip_prefix(tag) else {
            return false;
        };
        let digits = r
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(r.len());
        let Some(len) = parse_u16(&r[..digits]).filter(|&l| l <= 255) else {
            return false;
        };
        let len = usize::from(len);
        let Some(r) = r[digits..].strip_prefix(b" ") else {
            return false;
        };
        let Some(text) = r.get(..len) else {
            return false;
        };
        out.push(len as u8);
        out.extend_from_slice(text);
        rest = &r[len..];
        if rest.is_empty() {
            return true;
        }
        let Some(r) = rest.strip_prefix(b" ") else {
            return false;
        };
        rest = r;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renderings_are_classified() {
        for (a, k) in [
            ("DNSKEY 5", Kind::Skip(AnswerSkip::Dnskey)),
            ("DS 5 2", Kind::Skip(AnswerSkip::Ds)),
            ("NSEC3PARAM", Kind::Skip(AnswerSkip::Nsec3)),
            ("NSEC a b", Kind::Skip(AnswerSkip::Nsec)),
            ("SSHFP: 00", Kind::Skip(AnswerSkip::Sshfp)),
            ("LOC:  18 21 19", Kind::Skip(AnswerSkip::Loc)),
            ("<unknown type=39>", Kind::Skip(AnswerSkip::UnknownType)),
            ("BIND9 signing signal", Kind::Skip(AnswerSkip::Bind9)),
            ("add: A x 1.2.3.4", Kind::Skip(AnswerSkip::Unrecognised)),
            ("my printer._ipp._tcp.local", Kind::Name),
            ("pre: NoRRSet CNAME x", Kind::Skip(AnswerSkip::Unrecognised)),
            ("RRSIG 48 paypal.com", Kind::Rrsig(48)),
            (
                "::ffff:1.2.3.4",
                Kind::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]),
            ),
            ("1.2.3", Kind::Name),
        ] {
            assert_eq!(classify(a.as_bytes()), k, "{a}");
        }
    }

    #[test]
    fn name_roles_follow_the_query_type() {
        let alone = NameContext::default();
        let data = NameContext {
            data_may_follow: true,
            ..NameContext::default()
        };
        assert_eq!(name_role(Some(1), &alone), Role::CnameHop);
        assert_eq!(name_role(Some(2), &alone), Role::Record(2));
        assert_eq!(name_role(Some(15), &data), Role::CnameHop);
        assert_eq!(name_role(Some(6), &alone), Role::Skip(AnswerSkip::SoaMname));
        assert_eq!(
            name_role(Some(255), &data),
            Role::Skip(AnswerSkip::Ambiguous)
        );
        assert_eq!(name_role(None, &data), Role::CnameHop);
    }
}
