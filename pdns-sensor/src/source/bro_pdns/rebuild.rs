//! A question's rows to records: checks each row's values, then decides
//! owner and type with the shared rules ([`crate::source::answers`]) and
//! what the question's other rows say (see the module docs of [`super`]:
//! a record's owner is the question name only when no name filed under
//! the same question can be a CNAME hop).

use jiff::tz::TimeZone;

use super::schema::Generation;
use super::times::{self, Instant, TimeError};
use super::{BroPdnsStats, RawRow, RowSkip};
use crate::source::answers::{self, Kind, NameContext, Role};
use crate::source::zeek::AnswerSkip;
use crate::vocab::{Rtype, name};

/// Why a row gives no record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Row(RowSkip),
    Answer(AnswerSkip),
}

impl Skip {
    pub fn count(self, stats: &mut BroPdnsStats) {
        match self {
            Skip::Row(r) => stats.skip_row(r),
            Skip::Answer(r) => stats.skip_answer(r),
        }
    }
}

/// A row whose values are all possible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedRow {
    /// The question as logged (un-reversed), checked to be a name.
    pub query: Vec<u8>,
    /// The question type as stored (`A`, `*`, `query-65`), and its number
    /// when known.
    pub qtype_text: Vec<u8>,
    pub qtype: Option<u16>,
    pub answer: Vec<u8>,
    pub count: u64,
    /// `None`: not stored (stored with TTL 0, as the Zeek import does).
    pub ttl: Option<u32>,
    pub first: u64,
    pub last: u64,
    /// A local time that occurred twice was widened (see [`times`]).
    pub widened: bool,
}

/// The longest name bro-pdns's Go version kept (`MAX_SANE_VALUE_LEN`);
/// anything longer is not a name either.
const MAX_VALUE: usize = 1000;

/// Checks a row read from `generation`'s table; naive times are read in
/// `zone`.
pub fn check(raw: &RawRow, generation: Generation, zone: &TimeZone) -> Result<CheckedRow, Skip> {
    let query = match &raw.query {
        Some(q) if !is_unset(q) => q,
        _ => return Err(Skip::Row(RowSkip::NoQuery)),
    };
    if query.len() > MAX_VALUE {
        return Err(Skip::Row(RowSkip::BadQuery));
    }
    let query = match generation {
        Generation::Python => query.clone(),
        Generation::Go => reverse_chars(query).ok_or(Skip::Row(RowSkip::BadQuery))?,
    };
    let mut encoded = Vec::with_capacity(query.len() + 2);
    if !name::encode_dotted(&query, &mut encoded) {
        return Err(Skip::Row(RowSkip::BadQuery));
    }
    let answer = match &raw.answer {
        Some(a) if !is_unset(a) => a.clone(),
        _ => return Err(Skip::Row(RowSkip::NoAnswer)),
    };
    let count = match raw.count {
        Some(c) if c > 0 => c as u64,
        _ => return Err(Skip::Row(RowSkip::BadCount)),
    };
    let ttl = match raw.ttl {
        None => None,
        Some(t) => Some(
            u32::try_from(t)
                .ok()
                .filter(|t| *t <= i32::MAX as u32)
                .ok_or(Skip::Row(RowSkip::BadTtl))?,
        ),
    };
    let time = |v| {
        times::to_epoch(v, zone).map_err(|e| match e {
            TimeError::Bad => Skip::Row(RowSkip::BadTime),
            TimeError::Nonexistent => Skip::Row(RowSkip::NonexistentLocalTime),
        })
    };
    let first: Instant = time(&raw.first)?;
    let last: Instant = time(&raw.last)?;
    if first.earliest > last.latest {
        return Err(Skip::Row(RowSkip::FirstAfterLast));
    }
    let qtype_text = raw.qtype.clone().unwrap_or_default();
    Ok(CheckedRow {
        qtype: qtype_number(&qtype_text),
        qtype_text,
        query,
        answer,
        count,
        ttl,
        first: first.earliest,
        last: last.latest,
        widened: first.is_ambiguous() || last.is_ambiguous(),
    })
}

/// Empty, or Zeek's markers for an unset field (`-`) and an empty list
/// (`(empty)`), which bro-pdns's Python version stored as they were
/// logged.
pub fn is_unset(value: &[u8]) -> bool {
    matches!(value, b"" | b"-" | b"(empty)")
}

/// Zeek's `qtype_name`: a mnemonic, `*` for ANY, `query-N` for types it
/// has no name for (also `TYPEN`).
pub fn qtype_number(text: &[u8]) -> Option<u16> {
    if text == b"*" {
        return Some(255);
    }
    if let Some(n) = text.strip_prefix(b"query-") {
        return std::str::from_utf8(n).ok()?.parse().ok();
    }
    let s = std::str::from_utf8(text).ok()?;
    s.parse::<Rtype>().ok().map(Rtype::to_int)
}

/// The Go version reversed the query rune by rune (UTF-8 characters).
fn reverse_chars(stored: &[u8]) -> Option<Vec<u8>> {
    let s = std::str::from_utf8(stored).ok()?;
    Some(s.chars().rev().collect::<String>().into_bytes())
}

/// A record rebuilt from a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// Reversed encoding (the store's owner form).
    pub owner: Vec<u8>,
    pub rtype: Rtype,
    pub rdata: Vec<u8>,
}

/// Rebuilds the rows of one question (same query, same type): one result
/// per row of `rows`, in order. `others` are the answers of the question's
/// rows that were skipped for their values: they still say what the
/// replies held (a name among them may be a CNAME hop).
pub fn rebuild_question(
    qtype: Option<u16>,
    rows: &[CheckedRow],
    others: &[&[u8]],
) -> Vec<Result<Rebuilt, Skip>> {
    let kinds: Vec<Kind> = rows.iter().map(|r| answers::classify(&r.answer)).collect();
    let all: Vec<(&[u8], Kind)> = rows
        .iter()
        .map(|r| r.answer.as_slice())
        .zip(kinds.iter().copied())
        .chain(others.iter().map(|a| (*a, answers::classify(a))))
        .collect();
    let names = all.iter().filter(|(_, k)| *k == Kind::Name).count();
    let has_data = all.iter().any(|(_, k)| k.is_data());
    let cname_question = qtype == Some(5) && !has_data;
    // The order of the reply is lost: anything a name could be followed by
    // somewhere in the question's rows may have followed it.
    let role = |answer: &[u8]| {
        let ctx = NameContext {
            data_may_follow: has_data,
            reverse_then_name: answers::is_reverse_name(answer) && names > 1,
            rrsig_after: None,
        };
        answers::name_role(qtype, &ctx)
    };
    let hop_possible = !cname_question
        && all.iter().any(|(answer, kind)| {
            *kind == Kind::Name
                && matches!(
                    role(answer),
                    Role::CnameHop | Role::Skip(AnswerSkip::Ambiguous)
                )
        });
    let roles: Vec<Option<Role>> = rows
        .iter()
        .zip(&kinds)
        .map(|(row, kind)| (*kind == Kind::Name).then(|| role(&row.answer)))
        .collect();
    rows.iter()
        .zip(kinds.iter().zip(&roles))
        .map(|(row, (kind, role))| {
            let mut owner = Vec::with_capacity(row.query.len() + 2);
            if !name::encode_dotted(&row.query, &mut owner) {
                return Err(Skip::Row(RowSkip::BadQuery));
            }
            let mut rdata = Vec::new();
            let rtype = match (kind, role) {
                (Kind::Skip(reason), _) => return Err(Skip::Answer(*reason)),
                (Kind::Rrsig(_), _) => return Err(Skip::Answer(AnswerSkip::Rrsig)),
                (Kind::Name, Some(Role::Skip(reason))) => return Err(Skip::Answer(*reason)),
                (Kind::Name, Some(Role::CnameHop)) if cname_question => {
                    answers::append_name(5, &row.answer, &mut rdata).map_err(Skip::Answer)?
                }
                (Kind::Name, Some(Role::CnameHop)) => {
                    return Err(Skip::Row(RowSkip::CnameOwnerUnknown));
                }
                _ if hop_possible => return Err(Skip::Row(RowSkip::OwnerBehindCname)),
                (Kind::Name, Some(Role::Record(t))) => {
                    answers::append_name(*t, &row.answer, &mut rdata).map_err(Skip::Answer)?
                }
                (Kind::Name, None) => return Err(Skip::Answer(AnswerSkip::Unrecognised)),
                _ => match answers::append_data(*kind, &row.answer, &mut rdata) {
                    Some(r) => r.map_err(Skip::Answer)?,
                    None => return Err(Skip::Answer(AnswerSkip::Unrecognised)),
                },
            };
            Ok(Rebuilt {
                owner,
                rtype,
                rdata,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(query: &str, qtype: &str, answer: &str) -> CheckedRow {
        CheckedRow {
            query: query.into(),
            qtype_text: qtype.into(),
            qtype: qtype_number(qtype.as_bytes()),
            answer: answer.into(),
            count: 1,
            ttl: Some(60),
            first: 10,
            last: 20,
            widened: false,
        }
    }

    fn kinds(rows: &[CheckedRow]) -> Vec<Result<(String, u16), Skip>> {
        rebuild_question(rows[0].qtype, rows, &[])
            .into_iter()
            .map(|r| r.map(|r| (name::presentation(&r.owner), r.rtype.to_int())))
            .collect()
    }

    #[test]
    fn addresses_belong_to_the_question_only_without_names() {
        let q = [
            row("a.test", "A", "192.0.2.1"),
            row("a.test", "A", "192.0.2.2"),
        ];
        assert_eq!(
            kinds(&q),
            vec![Ok(("a.test.".into(), 1)), Ok(("a.test.".into(), 1))]
        );
        let chain = [
            row("a.test", "A", "cdn.test"),
            row("a.test", "A", "192.0.2.1"),
        ];
        assert_eq!(
            kinds(&chain),
            vec![
                Err(Skip::Row(RowSkip::CnameOwnerUnknown)),
                Err(Skip::Row(RowSkip::OwnerBehindCname))
            ]
        );
    }

    #[test]
    fn skipped_rows_still_count_as_context() {
        let q = [row("a.test", "A", "192.0.2.1")];
        assert_eq!(
            rebuild_question(Some(1), &q, &[b"cdn.test"])
                .into_iter()
                .map(|r| r.err())
                .collect::<Vec<_>>(),
            vec![Some(Skip::Row(RowSkip::OwnerBehindCname))]
        );
    }

    #[test]
    fn name_typed_questions() {
        let ns = [
            row("x.test", "NS", "ns1.x.test"),
            row("x.test", "NS", "ns2.x.test"),
        ];
        assert_eq!(
            kinds(&ns),
            vec![Ok(("x.test.".into(), 2)), Ok(("x.test.".into(), 2))]
        );
        let mx = rebuild_question(Some(15), &[row("x.test", "MX", "mx.x.test")], &[]);
        assert_eq!(mx[0].as_ref().unwrap().rdata[..2], [0, 0]);
        let cname = [row("w.test", "CNAME", "v.test")];
        assert_eq!(kinds(&cname), vec![Ok(("w.test.".into(), 5))]);
        let classless = [
            row(
                "5.2.0.192.in-addr.arpa",
                "PTR",
                "5.0-25.2.0.192.in-addr.arpa",
            ),
            row("5.2.0.192.in-addr.arpa", "PTR", "host.test"),
        ];
        assert_eq!(
            kinds(&classless),
            vec![
                Err(Skip::Row(RowSkip::CnameOwnerUnknown)),
                Err(Skip::Row(RowSkip::OwnerBehindCname))
            ]
        );
        let soa = [row("x.test", "SOA", "ns1.x.test")];
        assert_eq!(kinds(&soa), vec![Err(Skip::Answer(AnswerSkip::SoaMname))]);
        let any = [
            row("x.test", "*", "ns1.x.test"),
            row("x.test", "*", "192.0.2.1"),
        ];
        assert_eq!(
            kinds(&any),
            vec![
                Err(Skip::Answer(AnswerSkip::Ambiguous)),
                Err(Skip::Row(RowSkip::OwnerBehindCname))
            ]
        );
        let txt = [
            row("t.test", "TXT", "TXT 2 hi"),
            row("t.test", "TXT", "TXT 9 hi"),
        ];
        assert_eq!(
            kinds(&txt),
            vec![
                Ok(("t.test.".into(), 16)),
                Err(Skip::Answer(AnswerSkip::BadTxt))
            ]
        );
    }

    #[test]
    fn impossible_values_are_named() {
        let utc = times::zone("UTC").unwrap();
        let good = RawRow {
            query: Some(b"tset.a".to_vec()),
            qtype: Some(b"A".to_vec()),
            answer: Some(b"192.0.2.1".to_vec()),
            count: Some(3),
            ttl: Some(60),
            first: times::Stored::Integer(10),
            last: times::Stored::Integer(20),
        };
        let checked = check(&good, Generation::Go, &utc).unwrap();
        assert_eq!(checked.query, b"a.test");
        assert_eq!((checked.count, checked.first, checked.last), (3, 10, 20));
        type Spoil = fn(&mut RawRow);
        let cases: [(Spoil, RowSkip); 10] = [
            (|r| r.query = None, RowSkip::NoQuery),
            (|r| r.query = Some(b"-".to_vec()), RowSkip::NoQuery),
            (|r| r.query = Some(vec![b'a'; 300]), RowSkip::BadQuery),
            (|r| r.query = Some(b"a..b".to_vec()), RowSkip::BadQuery),
            (|r| r.answer = Some(b"(empty)".to_vec()), RowSkip::NoAnswer),
            (|r| r.count = Some(0), RowSkip::BadCount),
            (|r| r.count = Some(-4), RowSkip::BadCount),
            (
                |r| r.first = times::Stored::Text(b"soon".to_vec()),
                RowSkip::BadTime,
            ),
            (
                |r| r.first = times::Stored::Integer(30),
                RowSkip::FirstAfterLast,
            ),
            (|r| r.ttl = Some(-1), RowSkip::BadTtl),
        ];
        for (spoil, reason) in cases {
            let mut r = good.clone();
            spoil(&mut r);
            assert_eq!(
                check(&r, Generation::Go, &utc),
                Err(Skip::Row(reason)),
                "{r:?}"
            );
        }
        assert_eq!(qtype_number(b"query-65"), Some(65));
        assert_eq!(qtype_number(b"AAAA"), Some(28));
        assert_eq!(qtype_number(b"?"), None);
    }

    fn stored() -> impl proptest::strategy::Strategy<Value = times::Stored> {
        use proptest::prelude::*;
        prop_oneof![
            Just(times::Stored::Null),
            any::<i64>().prop_map(times::Stored::Integer),
            any::<f64>().prop_map(times::Stored::Real),
            "[0-9: .+TZ-]{0,30}".prop_map(|t| times::Stored::Text(t.into_bytes())),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(times::Stored::Text),
        ]
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_rows_never_panic(
            rows in proptest::collection::vec(
                (
                    proptest::option::of(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)),
                    proptest::option::of("[A-Z*0-9-]{0,10}"),
                    proptest::option::of("([0-9a-f:.]{0,40}|[a-z0-9.-]{0,30}|TXT [0-9]{1,3} [ -~]{0,20}|RRSIG [0-9]{1,3} x)"),
                    proptest::option::of(proptest::prelude::any::<i64>()),
                    proptest::option::of(proptest::prelude::any::<i64>()),
                    stored(),
                    stored(),
                ),
                0..12,
            ),
            go in proptest::prelude::any::<bool>(),
            zone in proptest::prelude::prop_oneof![
                proptest::prelude::Just("UTC"),
                proptest::prelude::Just("Europe/Berlin"),
                proptest::prelude::Just("Australia/Lord_Howe"),
            ],
        ) {
            let zone = times::zone(zone).unwrap();
            let generation = if go { Generation::Go } else { Generation::Python };
            let mut checked = Vec::new();
            let mut others: Vec<Vec<u8>> = Vec::new();
            for (query, qtype, answer, count, ttl, first, last) in rows {
                let raw = RawRow {
                    query,
                    qtype: qtype.map(String::into_bytes),
                    answer: answer.map(String::into_bytes),
                    count,
                    ttl,
                    first,
                    last,
                };
                match check(&raw, generation, &zone) {
                    Ok(row) => {
                        proptest::prop_assert!(row.first <= row.last);
                        proptest::prop_assert!(row.count > 0);
                        checked.push(row);
                    }
                    Err(_) => others.extend(raw.answer),
                }
            }
            let others: Vec<&[u8]> = others.iter().map(Vec::as_slice).collect();
            let qtype = checked.first().and_then(|r| r.qtype);
            let out = rebuild_question(qtype, &checked, &others);
            proptest::prop_assert_eq!(out.len(), checked.len());
            for r in out.into_iter().flatten() {
                proptest::prop_assert!(name::split(&r.owner).is_some());
                proptest::prop_assert!(r.rdata.len() <= 65535);
            }
        }
    }
}
