//! Stored times to epoch seconds.
//!
//! bro-pdns wrote `first`/`last` three ways (see the module docs of
//! [`super`]): text without an offset (`2014-09-03 12:34:56[.ffffff]`,
//! SQLAlchemy's and SQLite's `datetime()` format, PostgreSQL's
//! `timestamp` as text), which means a wall-clock time in some zone;
//! text with an offset (a `timestamptz` column), which is an instant; and
//! numbers of epoch seconds (a database someone filled by hand). Only the
//! first needs a zone. Fractions of a second are dropped, as the Zeek
//! import drops them.
//!
//! A naive local time can be ambiguous: at the end of daylight saving time
//! an hour occurs twice. Such a time is not guessed: it gives both
//! instants, and the importer takes the earlier for first seen and the
//! later for last seen, a range that surely holds the sighting. A local
//! time that never existed (in the gap at the start of daylight saving)
//! cannot have been written by bro-pdns in that zone, and is an error.

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

/// A `first` or `last` value as the database returned it.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Stored {
    #[default]
    Null,
    Text(Vec<u8>),
    Integer(i64),
    Real(f64),
}

/// The instants a stored time may mean: equal unless the local time
/// occurred twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Instant {
    pub earliest: u64,
    pub latest: u64,
}

impl Instant {
    pub fn is_ambiguous(self) -> bool {
        self.earliest != self.latest
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// NULL, not a time, or before the epoch.
    Bad,
    /// A local time in a gap of the zone.
    Nonexistent,
}

/// The zone naive times are read in, by IANA name (`UTC`,
/// `Europe/Berlin`).
pub fn zone(name: &str) -> Result<TimeZone, String> {
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// The instant(s) a stored value means; naive text is read in `zone`.
pub fn to_epoch(value: &Stored, zone: &TimeZone) -> Result<Instant, TimeError> {
    let seconds = match value {
        Stored::Null => return Err(TimeError::Bad),
        Stored::Integer(n) => *n,
        Stored::Real(f) if f.is_finite() && *f >= 0.0 && *f < 1e12 => *f as i64,
        Stored::Real(_) => return Err(TimeError::Bad),
        Stored::Text(text) => return parse_text(text, zone),
    };
    let s = u64::try_from(seconds).map_err(|_| TimeError::Bad)?;
    Ok(Instant {
        earliest: s,
        latest: s,
    })
}

fn parse_text(text: &[u8], zone: &TimeZone) -> Result<Instant, TimeError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| TimeError::Bad)?
        .trim();
    // A bare number: epoch seconds.
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let f: f64 = text.parse().map_err(|_| TimeError::Bad)?;
        return to_epoch(&Stored::Real(f), zone);
    }
    let (civil, offset) = split_offset(text)?;
    let dt = parse_civil(civil)?;
    let at_utc = |dt: DateTime, offset_secs: i64| -> Result<u64, TimeError> {
        let utc = TimeZone::UTC
            .to_ambiguous_timestamp(dt)
            .unambiguous()
            .map_err(|_| TimeError::Bad)?
            .as_second();
        u64::try_from(utc - offset_secs).map_err(|_| TimeError::Bad)
    };
    if let Some(offset) = offset {
        let s = at_utc(dt, offset)?;
        return Ok(Instant {
            earliest: s,
            latest: s,
        });
    }
    match zone.to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } => {
            let s = at_utc(dt, i64::from(offset.seconds()))?;
            Ok(Instant {
                earliest: s,
                latest: s,
            })
        }
        AmbiguousOffset::Fold { before, after } => {
            let a = at_utc(dt, i64::from(before.seconds()))?;
            let b = at_utc(dt, i64::from(after.seconds()))?;
            Ok(Instant {
                earliest: a.min(b),
                latest: a.max(b),
            })
        }
        AmbiguousOffset::Gap { .. } => Err(TimeError::Nonexistent),
    }
}

/// Splits a trailing `Z`, `+HH`, `+HHMM` or `+HH:MM` offset off, in
/// seconds east of UTC.
fn split_offset(text: &str) -> Result<(&str, Option<i64>), TimeError> {
    if let Some(rest) = text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        return Ok((rest, Some(0)));
    }
    // The offset starts at the last sign after the time of day (the date's
    // dashes come before the first ':').
    let Some(colon) = text.find(':') else {
        return Ok((text, None));
    };
    let Some(pos) = text[colon..].rfind(['+', '-']).map(|p| p + colon) else {
        return Ok((text, None));
    };
    let sign = if text.as_bytes()[pos] == b'-' { -1 } else { 1 };
    let digits: String = text[pos + 1..].chars().filter(|c| *c != ':').collect();
    if !(digits.len() == 2 || digits.len() == 4 || digits.len() == 6)
        || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(TimeError::Bad);
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(0, |d| d.parse::<i64>().unwrap_or(0));
    let secs = n(0..2) * 3600 + n(2..4) * 60 + n(4..6);
    Ok((text[..pos].trim_end(), Some(sign * secs)))
}

/// `YYYY-MM-DD[ T]HH:MM[:SS[.fraction]]`.
fn parse_civil(text: &str) -> Result<DateTime, TimeError> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let s = text.get(r).ok_or(TimeError::Bad)?;
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return Err(TimeError::Bad);
        }
        s.parse().map_err(|_| TimeError::Bad)
    };
    if b.len() < 16
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b' ' | b'T' | b't')
        || b[13] != b':'
    {
        return Err(TimeError::Bad);
    }
    let (year, month, day, hour, minute) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
    );
    let second = if b.len() > 16 {
        if b[16] != b':' || b.len() < 19 {
            return Err(TimeError::Bad);
        }
        if b.len() > 19 {
            let frac = text.get(19..).ok_or(TimeError::Bad)?;
            if !frac.starts_with('.') || !frac[1..].bytes().all(|c| c.is_ascii_digit()) {
                return Err(TimeError::Bad);
            }
        }
        num(17..19)?
    } else {
        0
    };
    DateTime::new(
        year as i16,
        month as i8,
        day as i8,
        hour as i8,
        minute as i8,
        second.min(59) as i8,
        0,
    )
    .map_err(|_| TimeError::Bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Stored {
        Stored::Text(s.as_bytes().to_vec())
    }

    fn one(s: u64) -> Result<Instant, TimeError> {
        Ok(Instant {
            earliest: s,
            latest: s,
        })
    }

    #[test]
    fn formats_and_zones() {
        let utc = zone("UTC").unwrap();
        let berlin = zone("Europe/Berlin").unwrap();
        assert_eq!(
            to_epoch(&text("2020-09-13 12:26:40"), &utc),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&text("2020-09-13 12:26:40.999999"), &utc),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&text("2020-09-13 14:26:40.000000"), &berlin),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&text("2020-09-13 14:26:40+02"), &utc),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&text("2020-09-13T12:26:40Z"), &berlin),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&text("2020-09-13 07:26:40-05:00"), &utc),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&Stored::Integer(1_600_000_000), &berlin),
            one(1_600_000_000)
        );
        assert_eq!(
            to_epoch(&Stored::Real(1_600_000_000.5), &utc),
            one(1_600_000_000)
        );
        assert_eq!(to_epoch(&text("1600000000.25"), &utc), one(1_600_000_000));
        assert!(zone("Mars/Olympus").is_err());
    }

    #[test]
    fn folds_give_both_instants_and_gaps_are_errors() {
        let berlin = zone("Europe/Berlin").unwrap();
        // 2023-10-29 02:30 happened at 00:30 and 01:30 UTC.
        let fold = to_epoch(&text("2023-10-29 02:30:00"), &berlin).unwrap();
        assert_eq!(fold.latest - fold.earliest, 3600);
        assert_eq!(
            to_epoch(&text("2023-03-26 02:30:00"), &berlin),
            Err(TimeError::Nonexistent)
        );
    }

    #[test]
    fn garbage_is_bad() {
        let utc = zone("UTC").unwrap();
        for bad in [
            Stored::Null,
            text(""),
            text("yesterday"),
            text("2020-13-01 00:00:00"),
            text("2020-01-01 25:00:00"),
            text("1969-12-31 23:59:59"),
            text("2020-01-01 00:00:00+1"),
            text("2020-01-01 00:00:00.x"),
            text("2020-01-01 00:00:00é"),
            text("2020-01-01 00:00:0é"),
            Stored::Integer(-5),
            Stored::Real(f64::NAN),
            Stored::Real(-1.0),
        ] {
            assert_eq!(to_epoch(&bad, &utc), Err(TimeError::Bad), "{bad:?}");
        }
    }
}
