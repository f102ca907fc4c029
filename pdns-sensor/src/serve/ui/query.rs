//! What an analyst types into the page's one search box, and what it means.
//!
//! The box takes what people paste from tickets and logs, so the rules
//! are few and guess nothing that changes the answer silently:
//!
//! | typed | searches |
//! |---|---|
//! | `198.51.100.7`, `2001:db8::1` | records whose rdata is that address |
//! | `198.51.100.0/24`, `198.51.100.0,24`, `a-b` | records whose rdata is in the range |
//! | `www.example.com` | records owned by the name |
//! | `*.example.com` | … by the name and every name below it |
//! | `www.example.*` | … by names that begin with those labels |
//! | `rdata:ns1.example.com` (or *rdata* chosen) | records whose rdata names it (CNAME, NS, MX, SRV… targets; wildcards as above) |
//! | `/^mail[0-9]+\./` or `re:…` | Flex regex over owner names (or rdata text with *rdata*) |
//! | `ex?mple.*`, `glob:…` | Flex glob, whole name |
//!
//! A `*` anywhere but a leading `*.` or a trailing `.*`, a `?` or a `[`
//! makes a glob: DNSDB's wildcards are only those two, and a name cannot
//! hold the others unescaped. A glob over names that does not end in `.`
//! or `*` gets the root's dot appended, so `ex?mple.com` matches
//! `example.com.` as the analyst means (DNSDB itself would match nothing).
//! `name:` forces the owner-name reading of what follows.

use std::net::IpAddr;

use super::super::engine::Lookup;
use super::super::pattern::{self, NamePattern, TypeFilter};
use crate::store::Selector;
use crate::store::flex::{Pattern, Syntax};
use crate::vocab::name;

/// Which side of a record the box searches when the text does not say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Side {
    /// Owner names for names and patterns, rdata for addresses.
    Auto,
    Names,
    Rdata,
}

impl Side {
    pub(super) fn parse(text: &str) -> Result<Side, String> {
        match text.trim() {
            "" | "auto" => Ok(Side::Auto),
            "names" | "name" => Ok(Side::Names),
            "rdata" => Ok(Side::Rdata),
            other => Err(format!("in: expected auto, names or rdata, not {other:?}")),
        }
    }
}

/// A search, ready to run.
pub(super) enum Search {
    /// An index lookup (exact name, subtree, prefix, rdata name, address range).
    Lookup(Lookup),
    /// Flex over owner names: every record of each matching owner.
    FlexNames(Pattern),
    /// Flex over rdata text: one row per matching (rdata, type).
    FlexRdata(Pattern),
}

/// What a search was understood as, for the page to say.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Understood {
    /// A short machine name: `name`, `subtree`, `prefix`, `rdata-name`,
    /// `address`, `range`, `regex`, `glob`.
    pub kind: &'static str,
    /// One sentence in plain words.
    pub description: String,
}

/// Reads the box. Errors are sentences an analyst can act on.
pub(super) fn interpret(
    text: &str,
    side: Side,
    rtype: TypeFilter,
) -> Result<(Search, Understood), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("type a name, an address, a CIDR or a pattern".into());
    }
    if let Some(rest) = strip_prefix_ci(t, "rdata:") {
        return interpret(rest, Side::Rdata, rtype);
    }
    if let Some(rest) = strip_prefix_ci(t, "name:") {
        return interpret(rest, Side::Names, rtype);
    }
    if let Some(rest) = strip_prefix_ci(t, "regex:").or_else(|| strip_prefix_ci(t, "re:")) {
        return flex(Syntax::Regex, rest, side);
    }
    if let Some(rest) = strip_prefix_ci(t, "glob:") {
        return flex(Syntax::Glob, rest, side);
    }
    if t.len() > 2 && t.starts_with('/') && t.ends_with('/') {
        return flex(Syntax::Regex, &t[1..t.len() - 1], side);
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let range = match ip {
            IpAddr::V4(a) => Selector::Ipv4 { lo: a, hi: a },
            IpAddr::V6(a) => Selector::Ipv6 { lo: a, hi: a },
        };
        return Ok((
            Search::Lookup(Lookup::RdataIp { range }),
            Understood {
                kind: "address",
                description: format!("records whose rdata is the address {ip}"),
            },
        ));
    }
    if looks_like_range(t) {
        let range = pattern::parse_ip(t)?;
        return Ok((
            Search::Lookup(Lookup::RdataIp { range }),
            Understood {
                kind: "range",
                description: format!("records whose rdata is an address in {t}"),
            },
        ));
    }
    if is_glob(t) {
        return flex(Syntax::Glob, t, side);
    }
    let name = pattern::parse_name(t)?;
    let shown = describe_name(&name);
    let (kind, description, lookup) = match side {
        Side::Auto | Side::Names => {
            let kind = match name {
                NamePattern::Exact(_) => "name",
                NamePattern::Below { .. } => "subtree",
                NamePattern::Forward { .. } => "prefix",
            };
            (
                kind,
                format!("records owned by {shown}"),
                Lookup::Rrset {
                    name,
                    rtype,
                    bailiwick: None,
                },
            )
        }
        Side::Rdata => (
            "rdata-name",
            format!("records whose rdata names {shown}"),
            Lookup::RdataName { name, rtype },
        ),
    };
    Ok((Search::Lookup(lookup), Understood { kind, description }))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| text[prefix.len()..].trim_start())
}

/// An address range: `a/n`, `a,n` or `a-b` with addresses on both sides.
fn looks_like_range(t: &str) -> bool {
    let head = t.split(['/', ',', '-']).next().unwrap_or("");
    head.len() < t.len() && head.parse::<IpAddr>().is_ok()
}

/// Wildcards DNSDB's lookups cannot express: anything but one leading
/// `*.` (or `+.`) or one trailing `.*` (or `.+`).
fn is_glob(t: &str) -> bool {
    if t.contains(['?', '[']) {
        return true;
    }
    let inner = t
        .strip_prefix("*.")
        .or_else(|| t.strip_prefix("+."))
        .or_else(|| t.strip_suffix(".*"))
        .or_else(|| t.strip_suffix(".+"))
        .unwrap_or(t);
    inner.contains('*')
}

fn describe_name(name: &NamePattern) -> String {
    match name {
        NamePattern::Exact(n) => name::presentation(n),
        NamePattern::Below {
            parent, one_label, ..
        } => {
            let parent = name::presentation(parent);
            if *one_label {
                format!("names one label below {parent}")
            } else {
                format!("{parent} and every name below it")
            }
        }
        NamePattern::Forward { exact, .. } => {
            let shown = name::presentation(exact);
            format!("names beginning with {}", shown.trim_end_matches('.'))
        }
    }
}

fn flex(syntax: Syntax, text: &str, side: Side) -> Result<(Search, Understood), String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!(
            "an empty {} pattern matches everything: type one",
            syntax.as_str()
        ));
    }
    let rdata = side == Side::Rdata;
    let subject = if syntax == Syntax::Glob && !rdata && !text.ends_with(['.', '*']) {
        format!("{text}.")
    } else {
        text.to_string()
    };
    let pattern = Pattern::new(syntax, &subject).map_err(|e| e.to_string())?;
    let what = match syntax {
        Syntax::Regex => "the regular expression",
        Syntax::Glob => "the glob",
    };
    let (search, description) = if rdata {
        (
            Search::FlexRdata(pattern),
            format!("rdata matching {what} {subject}"),
        )
    } else {
        (
            Search::FlexNames(pattern),
            format!("records owned by names matching {what} {subject}"),
        )
    };
    Ok((
        search,
        Understood {
            kind: syntax.as_str(),
            description,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str, side: Side) -> &'static str {
        interpret(text, side, TypeFilter::Any)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .1
            .kind
    }

    #[test]
    fn what_analysts_type() {
        assert_eq!(kind("www.example.com", Side::Auto), "name");
        assert_eq!(kind("www.example.com.", Side::Auto), "name");
        assert_eq!(kind("*.example.com", Side::Auto), "subtree");
        assert_eq!(kind("www.example.*", Side::Auto), "prefix");
        assert_eq!(kind("198.51.100.7", Side::Auto), "address");
        assert_eq!(kind("2001:db8::1", Side::Names), "address");
        assert_eq!(kind("198.51.100.0/24", Side::Auto), "range");
        assert_eq!(kind("198.51.100.0,24", Side::Auto), "range");
        assert_eq!(kind("2001:db8::/32", Side::Auto), "range");
        assert_eq!(kind("198.51.100.1-198.51.100.9", Side::Auto), "range");
        assert_eq!(kind("ns1.example.com", Side::Rdata), "rdata-name");
        assert_eq!(kind("rdata:*.example.com", Side::Auto), "rdata-name");
        assert_eq!(kind("RDATA: ns1.example.com", Side::Auto), "rdata-name");
        assert_eq!(kind("name:www.example.com", Side::Rdata), "name");
        assert_eq!(kind("/^mail[0-9]+\\./", Side::Auto), "regex");
        assert_eq!(kind("re:^mail", Side::Auto), "regex");
        assert_eq!(kind("ex?mple.com", Side::Auto), "glob");
        assert_eq!(kind("mail*.example.com", Side::Auto), "glob");
        assert_eq!(kind("*.example.*", Side::Auto), "glob");
        assert_eq!(kind("glob:*.example.com.", Side::Auto), "glob");
    }

    #[test]
    fn globs_over_names_end_at_the_root() {
        let (search, understood) = interpret("ex?mple.com", Side::Auto, TypeFilter::Any).unwrap();
        let Search::FlexNames(p) = search else {
            panic!("not a names search")
        };
        assert!(p.is_match(b"example.com."));
        assert!(understood.description.ends_with("ex?mple.com."));
        // Over rdata the text is matched as written.
        let (search, _) = interpret("glob:10 mail.*", Side::Rdata, TypeFilter::Any).unwrap();
        let Search::FlexRdata(p) = search else {
            panic!("not an rdata search")
        };
        assert!(p.is_match(b"10 mail.example.com."));
    }

    #[test]
    fn plain_words_for_what_cannot_be_searched() {
        for bad in [
            "",
            "   ",
            "re:",
            "/(/",
            "198.51.100.0/33",
            "www..example.com",
            "a.*.example.com.x*y[",
        ] {
            let e = interpret(bad, Side::Auto, TypeFilter::Any)
                .err()
                .unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(!e.is_empty());
        }
    }

    #[test]
    fn sides_parse() {
        assert_eq!(Side::parse("").unwrap(), Side::Auto);
        assert_eq!(Side::parse("rdata").unwrap(), Side::Rdata);
        assert!(Side::parse("both").is_err());
    }
}
