//! The query language of the DNSDB-style paths: owner and rdata name
//! patterns with DNSDB's wildcards, record type selectors (`ANY`,
//! `ANY-DNSSEC`, mnemonics, `TYPEnnn`), and address specifications
//! (`addr`, `addr,prefix`, `addr-addr`).

use std::net::IpAddr;

use crate::store::Selector;
use crate::vocab::Rtype;
use crate::vocab::name;
use crate::vocab::render::parse_rtype;

/// What a name in a query path matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum NamePattern {
    /// One name.
    Exact(Vec<u8>),
    /// `*.example.com` (`apex`: example.com itself too, as DNSDB does) or
    /// `+.example.com` (`one_label`: exactly one label more).
    Below {
        parent: Vec<u8>,
        apex: bool,
        one_label: bool,
    },
    /// `www.example.*` or `www.example.+`: names starting with these labels;
    /// `prefix` is the forward encoding without its root byte.
    Forward {
        prefix: Vec<u8>,
        exact: Vec<u8>,
        one_label: bool,
    },
}

impl NamePattern {
    /// Whether a (reversed-encoded) owner matches; for right-hand patterns
    /// only the labels are compared.
    pub(super) fn matches(&self, owner: &[u8]) -> bool {
        match self {
            NamePattern::Exact(n) => n == owner,
            NamePattern::Below {
                parent,
                apex,
                one_label,
            } => {
                let prefix = name::subtree_prefix(parent);
                if owner == &parent[..] {
                    return *apex;
                }
                owner.starts_with(prefix)
                    && (!*one_label || name::label_count(owner) == name::label_count(parent) + 1)
            }
            NamePattern::Forward { prefix, .. } => {
                let mut forward = Vec::new();
                name::forward(owner, &mut forward);
                forward.starts_with(prefix)
            }
        }
    }
}

/// Parses a name with an optional DNSDB wildcard. Also accepts the
/// rdata-lookup spellings `.example.com` and `www.example.`.
pub(super) fn parse_name(text: &str) -> Result<NamePattern, String> {
    let t = text.trim();
    let bad = || format!("invalid name {text:?}");
    if let Some(rest) = t
        .strip_prefix("*.")
        .or_else(|| t.strip_prefix('.').filter(|r| !r.is_empty()))
    {
        let parent = name::encode_presentation(rest).map_err(|_| bad())?;
        return Ok(NamePattern::Below {
            parent,
            apex: true,
            one_label: false,
        });
    }
    if let Some(rest) = t.strip_prefix("+.") {
        let parent = name::encode_presentation(rest).map_err(|_| bad())?;
        return Ok(NamePattern::Below {
            parent,
            apex: false,
            one_label: true,
        });
    }
    let right = t
        .strip_suffix(".*")
        .map(|r| (r, false))
        .or_else(|| t.strip_suffix(".+").map(|r| (r, true)));
    if let Some((rest, one_label)) = right {
        let reversed = name::encode_presentation(rest).map_err(|_| bad())?;
        let mut forward = Vec::new();
        name::forward(&reversed, &mut forward);
        forward.pop(); // the root byte: more labels may follow
        return Ok(NamePattern::Forward {
            prefix: forward,
            exact: reversed,
            one_label,
        });
    }
    if t.contains('*') {
        return Err(format!("unsupported wildcard in {text:?}"));
    }
    Ok(NamePattern::Exact(
        name::encode_presentation(t).map_err(|_| bad())?,
    ))
}

/// DNSSEC types that DNSDB's `ANY` leaves out and `ANY-DNSSEC` selects.
pub(super) const DNSSEC_TYPES: [Rtype; 10] = [
    Rtype::DS,
    Rtype::RRSIG,
    Rtype::NSEC,
    Rtype::DNSKEY,
    Rtype::NSEC3,
    Rtype::NSEC3PARAM,
    Rtype::CDS,
    Rtype::CDNSKEY,
    Rtype::from_int(32768), // TA
    Rtype::from_int(32769), // DLV
];

/// A record type selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TypeFilter {
    /// Every type (the CIRCL and bro-pdns surfaces).
    All,
    /// Everything but DNSSEC types.
    Any,
    /// DNSSEC types only.
    AnyDnssec,
    Exact(Rtype),
}

impl TypeFilter {
    pub(super) fn parse(text: &str) -> Result<TypeFilter, String> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("ANY") {
            return Ok(TypeFilter::Any);
        }
        if t.eq_ignore_ascii_case("ANY-DNSSEC") {
            return Ok(TypeFilter::AnyDnssec);
        }
        parse_rtype(t)
            .map(TypeFilter::Exact)
            .ok_or_else(|| format!("unknown record type {text:?}"))
    }

    pub(super) fn matches(self, rtype: Rtype) -> bool {
        match self {
            TypeFilter::All => true,
            TypeFilter::Any => !DNSSEC_TYPES.contains(&rtype),
            TypeFilter::AnyDnssec => DNSSEC_TYPES.contains(&rtype),
            TypeFilter::Exact(t) => t == rtype,
        }
    }

    /// The exact type, if one was asked for (lets the store filter).
    pub(super) fn exact(self) -> Option<Rtype> {
        match self {
            TypeFilter::Exact(t) => Some(t),
            _ => None,
        }
    }
}

/// Parses `198.51.100.0,24`, `198.51.100.0/24`, `2001:db8::1`,
/// `198.51.100.1-198.51.100.3` into an address range selector.
pub(super) fn parse_ip(text: &str) -> Result<Selector, String> {
    let t = text.trim();
    let bad = || format!("invalid address or range {text:?}");
    if let Some((a, b)) = t.split_once('-') {
        let (a, b): (IpAddr, IpAddr) =
            (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        return match (a, b) {
            (IpAddr::V4(lo), IpAddr::V4(hi)) if lo <= hi => Ok(Selector::Ipv4 { lo, hi }),
            (IpAddr::V6(lo), IpAddr::V6(hi)) if lo <= hi => Ok(Selector::Ipv6 { lo, hi }),
            _ => Err(bad()),
        };
    }
    crate::store::address_selector(&t.replacen(',', "/", 1)).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> Vec<u8> {
        name::encode_presentation(s).unwrap()
    }

    #[test]
    fn wildcards() {
        assert_eq!(
            parse_name("www.example.com.").unwrap(),
            NamePattern::Exact(enc("www.example.com"))
        );
        assert_eq!(
            parse_name("*.example.com").unwrap(),
            NamePattern::Below {
                parent: enc("example.com"),
                apex: true,
                one_label: false
            }
        );
        assert_eq!(
            parse_name(".example.com").unwrap(),
            parse_name("*.example.com").unwrap()
        );
        assert_eq!(
            parse_name("+.example.com").unwrap(),
            NamePattern::Below {
                parent: enc("example.com"),
                apex: false,
                one_label: true
            }
        );
        match parse_name("www.example.*").unwrap() {
            NamePattern::Forward {
                prefix, one_label, ..
            } => {
                assert_eq!(prefix, b"\x03www\x07example".to_vec());
                assert!(!one_label);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_name("a..b").is_err());
        assert!(parse_name("*").is_err());
    }

    #[test]
    fn types() {
        assert_eq!(TypeFilter::parse("").unwrap(), TypeFilter::Any);
        assert_eq!(
            TypeFilter::parse("aaaa").unwrap(),
            TypeFilter::Exact(Rtype::AAAA)
        );
        assert!(TypeFilter::parse("BOGUS").is_err());
        assert!(TypeFilter::Any.matches(Rtype::A) && !TypeFilter::Any.matches(Rtype::RRSIG));
        assert!(
            TypeFilter::AnyDnssec.matches(Rtype::RRSIG) && !TypeFilter::AnyDnssec.matches(Rtype::A)
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_ip("198.51.100.0,24").unwrap(),
            Selector::Ipv4 {
                lo: "198.51.100.0".parse().unwrap(),
                hi: "198.51.100.255".parse().unwrap()
            }
        );
        assert_eq!(
            parse_ip("198.51.100.1-198.51.100.3").unwrap(),
            Selector::Ipv4 {
                lo: "198.51.100.1".parse().unwrap(),
                hi: "198.51.100.3".parse().unwrap()
            }
        );
        assert!(parse_ip("198.51.100.3-198.51.100.1").is_err());
        assert!(parse_ip("198.51.100.1-2001:db8::1").is_err());
        assert!(parse_ip("nonsense").is_err());
        assert!(matches!(
            parse_ip("2001:db8::1").unwrap(),
            Selector::Ipv6 { .. }
        ));
    }
}
