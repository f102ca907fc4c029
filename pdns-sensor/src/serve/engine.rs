//! The query engine behind every HTTP surface: a [`Lookup`] (what the path
//! asked for) plus its time [`Fences`] becomes a stream of stored records,
//! read with a deadline and a result cap (on a blocking thread, or briefly
//! on the request's own, see `inline`).

use std::time::Instant;

use super::backend::{Backend, BackendError};
use super::pattern::{NamePattern, TypeFilter};
use crate::store::{Filter, Selector, StoreError, StoredRecord};
use crate::vocab::Rtype;
use crate::vocab::name::label_count;

/// What a query selects.
#[derive(Clone, Debug)]
pub(super) enum Lookup {
    /// Records owned by names matching the pattern (DNSDB `rrset/name`).
    Rrset {
        name: NamePattern,
        rtype: TypeFilter,
        bailiwick: Option<Vec<u8>>,
    },
    /// Records whose rdata names a matching name (DNSDB `rdata/name`).
    RdataName {
        name: NamePattern,
        rtype: TypeFilter,
    },
    /// Records whose rdata is an address in a range (DNSDB `rdata/ip`).
    RdataIp { range: Selector },
}

/// Time fences (inclusive, epoch seconds).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Fences {
    pub first_after: Option<u64>,
    pub first_before: Option<u64>,
    pub last_after: Option<u64>,
    pub last_before: Option<u64>,
}

/// Whether an earlier lookup in a list already returned this record: a
/// record found by rdata whose owner the list's rrset lookups also match.
/// Lets surfaces that combine forward and inverse lookups (CIRCL, bro-pdns)
/// return each record once without remembering what they sent.
pub(super) fn seen_before(lookups: &[Lookup], index: usize, r: &StoredRecord) -> bool {
    lookups[..index].iter().any(|l| match l {
        Lookup::Rrset { name, rtype, .. } => rtype.matches(r.rtype) && name.matches(&r.owner),
        _ => false,
    })
}

/// How a record stream ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum End {
    /// Everything matching was returned.
    Complete,
    /// Stopped at the result limit; more records match.
    Limited,
    /// Stopped at the deadline.
    TimedOut,
    /// The store failed.
    Failed(String),
}

/// The best estimate of the zone apex a name belongs to: its registrable
/// domain under the public suffix list (`www.example.co.uk.` →
/// `example.co.uk.`). Passive data carries no zone cut; this is the COF
/// "best estimate" DNSDB's `bailiwick` asks for, and `None` when the name is
/// itself a public suffix or under no known suffix.
pub(super) fn bailiwick(owner: &[u8]) -> Option<String> {
    bailiwick_of(&crate::vocab::name::presentation(owner))
}

/// [`bailiwick`] of a name already in presentation form.
pub(super) fn bailiwick_of(text: &str) -> Option<String> {
    let trimmed = text.trim_end_matches('.');
    let domain = psl::domain_str(trimmed)?;
    // Not `format!`: its machinery was most of this function's cost, and
    // this runs once per record a wildcard answers.
    let mut out = String::with_capacity(domain.len() + 1);
    out.push_str(domain);
    out.push('.');
    Some(out)
}

impl Lookup {
    /// Runs the lookup, calling `each` per matching record until it returns
    /// false, skipping `offset` matches first and stopping after `limit`.
    pub(super) fn run(
        &self,
        backend: &Backend,
        fences: Fences,
        offset: u64,
        limit: u64,
        deadline: Instant,
        mut each: impl FnMut(&StoredRecord) -> bool,
    ) -> End {
        let filter = Filter {
            rtype: self.exact_type(),
            first_after: fences.first_after,
            first_before: fences.first_before,
            last_after: fences.last_after,
            last_before: fences.last_before,
            deadline: Some(deadline),
        };
        let mut skipped = 0;
        let mut sent = 0;
        let mut checked = 0u32;
        let mut visit = |r: Result<StoredRecord, BackendError>| -> Option<End> {
            checked = checked.wrapping_add(1);
            if checked.is_multiple_of(256) && Instant::now() >= deadline {
                return Some(End::TimedOut);
            }
            let r = match r {
                Ok(r) => r,
                Err(BackendError::Store(StoreError::TimedOut)) => return Some(End::TimedOut),
                Err(e) => return Some(End::Failed(e.to_string())),
            };
            if !self.accepts(&r) {
                return None;
            }
            if skipped < offset {
                skipped += 1;
                return None;
            }
            if sent == limit {
                return Some(End::Limited);
            }
            sent += 1;
            if !each(&r) {
                return Some(End::Complete);
            }
            None
        };
        for selector in self.selectors(backend) {
            let selector = match selector {
                Ok(sel) => sel,
                Err(e) => return End::Failed(e.to_string()),
            };
            for r in backend.records(&selector, &filter) {
                if let Some(end) = visit(r) {
                    return end;
                }
            }
        }
        End::Complete
    }

    fn exact_type(&self) -> Option<Rtype> {
        match self {
            Lookup::Rrset { rtype, .. } | Lookup::RdataName { rtype, .. } => rtype.exact(),
            Lookup::RdataIp { .. } => None,
        }
    }

    /// Conditions the key range cannot express.
    fn accepts(&self, r: &StoredRecord) -> bool {
        match self {
            Lookup::Rrset {
                name,
                rtype,
                bailiwick: b,
            } => {
                rtype.matches(r.rtype)
                    && one_label_ok(name, &r.owner)
                    && b.as_ref()
                        .is_none_or(|b| bailiwick(&r.owner).is_some_and(|x| x.as_bytes() == &b[..]))
            }
            Lookup::RdataName { rtype, .. } => rtype.matches(r.rtype),
            Lookup::RdataIp { .. } => true,
        }
    }

    /// The key ranges to read, in order. Right-hand wildcards first list
    /// the matching owners from the `names` column family.
    fn selectors<'a>(
        &'a self,
        backend: &'a Backend,
    ) -> Box<dyn Iterator<Item = Result<Selector, BackendError>> + 'a> {
        match self {
            Lookup::Rrset { name, .. } => match name {
                NamePattern::Exact(n) => Box::new(std::iter::once(Ok(Selector::Owner {
                    name: n.clone(),
                    wildcard: false,
                }))),
                NamePattern::Below { parent, apex, .. } => {
                    let mut v = Vec::new();
                    if *apex {
                        v.push(Ok(Selector::Owner {
                            name: parent.clone(),
                            wildcard: false,
                        }));
                    }
                    v.push(Ok(Selector::Owner {
                        name: parent.clone(),
                        wildcard: true,
                    }));
                    Box::new(v.into_iter())
                }
                NamePattern::Forward {
                    prefix,
                    exact,
                    one_label,
                } => {
                    let want = label_count(exact) + 1;
                    let one_label = *one_label;
                    Box::new(
                        backend
                            .owners_forward(prefix)
                            .filter(move |o| match o {
                                Ok(owner) => {
                                    let n = label_count(owner);
                                    if one_label { n == want } else { n >= want - 1 }
                                }
                                Err(_) => true,
                            })
                            .map(|o| {
                                o.map(|name| Selector::Owner {
                                    name,
                                    wildcard: false,
                                })
                            }),
                    )
                }
            },
            Lookup::RdataName { name, .. } => match name {
                NamePattern::Exact(n) => Box::new(std::iter::once(Ok(Selector::RdataName {
                    name: n.clone(),
                    wildcard: false,
                }))),
                NamePattern::Below { parent, apex, .. } => {
                    let mut v = Vec::new();
                    if *apex {
                        v.push(Ok(Selector::RdataName {
                            name: parent.clone(),
                            wildcard: false,
                        }));
                    }
                    v.push(Ok(Selector::RdataName {
                        name: parent.clone(),
                        wildcard: true,
                    }));
                    Box::new(v.into_iter())
                }
                // Rejected when parsing the path; nothing matches here.
                NamePattern::Forward { .. } => Box::new(std::iter::empty()),
            },
            Lookup::RdataIp { range } => Box::new(std::iter::once(Ok(range.clone()))),
        }
    }
}

/// `+.example.com` and `www.example.+` match exactly one more label.
fn one_label_ok(pattern: &NamePattern, owner: &[u8]) -> bool {
    match pattern {
        NamePattern::Below {
            parent,
            one_label: true,
            ..
        } => label_count(owner) == label_count(parent) + 1,
        _ => true,
    }
}
