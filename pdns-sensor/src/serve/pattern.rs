//! The query language of the DNSDB-style paths: owner and rdata name
//! patterns with DNSDB's wildcards, record type selectors (`ANY`,
//! `ANY-DNSSEC`, mnemonics, `TYPEnnn`), and address specifications
//! (`addr`, `addr,prefix`, `addr-addr`).

use std::net::IpAddr;

use crate::name;
use crate::render::parse_rtype;
use crate::store::Selector;

/// What a name in a query path matches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NamePattern {
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
    pub fn matches(&self, owner: &[u8]) -> bool {
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
                    && (!*one_label || label_count(owner) == label_count(parent) + 1)
            }
            NamePattern::Forward { prefix, .. } => {
                let mut forward = Vec::new();
                crate::store::keys::forward_name(owner, &mut forward);
                forward.starts_with(prefix)
            }
        }
    }
}

/// Parses a name with an optional DNSDB wildcard. Also accepts the
/// rdata-lookup spellings `.example.com` and `www.example.`.
pub fn parse_name(text: &str) -> Result<NamePattern, String> {
    let t = text.trim();
    let bad = || format!("invalid name {text:?}");
    if let Some(rest) = t
        .strip_prefix("*.")
        .or_else(|| t.strip_prefix('.').filter(|r| !r.is_empty()))
    {
        let parent = name::encode_str(rest).map_err(|_| bad())?;
        return Ok(NamePattern::Below {
            parent,
            apex: true,
            one_label: false,
        });
    }
    if let Some(rest) = t.strip_prefix("+.") {
        let parent = name::encode_str(rest).map_err(|_| bad())?;
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
        let reversed = name::encode_str(rest).map_err(|_| bad())?;
        let mut forward = Vec::new();
        crate::store::keys::forward_name(&reversed, &mut forward);
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
    Ok(NamePattern::Exact(name::encode_str(t).map_err(|_| bad())?))
}

/// DNSSEC types that DNSDB's `ANY` leaves out and `ANY-DNSSEC` selects.
pub const DNSSEC_TYPES: [u16; 10] = [43, 46, 47, 48, 50, 51, 59, 60, 32768, 32769];

/// A record type selector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeFilter {
    /// Every type (the CIRCL and bro-pdns surfaces).
    All,
    /// Everything but DNSSEC types.
    Any,
    /// DNSSEC types only.
    AnyDnssec,
    Exact(u16),
}

impl TypeFilter {
    pub fn parse(text: &str) -> Result<TypeFilter, String> {
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

    pub fn matches(self, rtype: u16) -> bool {
        match self {
            TypeFilter::All => true,
            TypeFilter::Any => !DNSSEC_TYPES.contains(&rtype),
            TypeFilter::AnyDnssec => DNSSEC_TYPES.contains(&rtype),
            TypeFilter::Exact(t) => t == rtype,
        }
    }

    /// The exact type, if one was asked for (lets the store filter).
    pub fn exact(self) -> Option<u16> {
        match self {
            TypeFilter::Exact(t) => Some(t),
            _ => None,
        }
    }
}

/// Parses `198.51.100.0,24`, `198.51.100.0/24`, `2001:db8::1`,
/// `198.51.100.1-198.51.100.3` into an address range selector.
pub fn parse_ip(text: &str) -> Result<Selector, String> {
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
    crate::store::query::address_selector(&t.replacen(',', "/", 1)).ok_or_else(bad)
}

/// Number of labels of a reversed-encoded name.
pub fn label_count(encoded: &[u8]) -> usize {
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = encoded.get(pos) {
        if len == 0 {
            break;
        }
        n += 1;
        pos += 1 + len as usize;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> Vec<u8> {
        name::encode_str(s).unwrap()
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
        assert_eq!(TypeFilter::parse("aaaa").unwrap(), TypeFilter::Exact(28));
        assert!(TypeFilter::parse("BOGUS").is_err());
        assert!(TypeFilter::Any.matches(1) && !TypeFilter::Any.matches(46));
        assert!(TypeFilter::AnyDnssec.matches(46) && !TypeFilter::AnyDnssec.matches(1));
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
