//! Times as users write and read them: RFC 3339 or epoch seconds in, UTC
//! out. Small and exact (proleptic Gregorian calendar, no leap seconds), so
//! no date library is needed for it.

/// Days since 1970-01-01 for a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Formats epoch seconds as `2024-03-01 12:00:00` (UTC).
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Formats epoch seconds as RFC 3339 (`2024-03-01T12:00:00Z`).
pub fn format_rfc3339(secs: u64) -> String {
    format_utc(secs).replacen(' ', "T", 1) + "Z"
}

/// Parses epoch seconds, an RFC 3339 timestamp (`2024-03-01T12:00:00Z`,
/// offsets and fractions allowed) or a date (`2024-03-01`, midnight UTC).
pub fn parse(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse()
            .map_err(|_| format!("time out of range: {text:?}"));
    }
    parse_rfc3339(t).ok_or_else(|| {
        format!("not a time: {text:?} (use epoch seconds, 2024-03-01 or 2024-03-01T12:00:00Z)")
    })
}

fn parse_rfc3339(t: &str) -> Option<u64> {
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let (date, rest) = match t.find(['T', 't', ' ']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mut parts = date.splitn(3, '-');
    let y = num(parts.next()?)? as i64;
    let m = num(parts.next()?)?;
    let d = num(parts.next()?)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(rest) = rest {
        // hh:mm:ss[.frac](Z|±hh:mm)
        let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "Z"),
        };
        let clock = clock.split('.').next()?;
        let mut hms = clock.splitn(3, ':');
        let h = num(hms.next()?)?;
        let mi = num(hms.next()?)?;
        let s = hms.next().map_or(Some(0), num)?;
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
        secs += i64::from(h * 3600 + mi * 60 + s);
        if !offset.eq_ignore_ascii_case("z") {
            let sign = if offset.starts_with('-') { -1 } else { 1 };
            let (oh, om) = offset[1..].split_once(':')?;
            let (oh, om) = (num(oh)?, num(om)?);
            if oh > 23 || om > 59 {
                return None;
            }
            secs -= sign * i64::from(oh * 3600 + om * 60);
        }
    }
    u64::try_from(secs).ok()
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(parse("1700000000"), Ok(1_700_000_000));
        assert_eq!(parse("2023-11-14T22:13:20Z"), Ok(1_700_000_000));
        assert_eq!(parse("2023-11-14T23:13:20+01:00"), Ok(1_700_000_000));
        assert_eq!(parse("2023-11-14T22:13:20.999Z"), Ok(1_700_000_000));
        assert_eq!(parse("1970-01-01"), Ok(0));
        assert_eq!(parse("2024-02-29"), Ok(1_709_164_800));
        assert_eq!(format_utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn round_trip_over_centuries() {
        for secs in (0..5_000_000_000u64).step_by(86_399 * 37) {
            assert_eq!(parse(&format_rfc3339(secs)), Ok(secs));
        }
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "yesterday",
            "2023-13-01",
            "2023-02-30",
            "2023-01-01T25:00:00Z",
            "1969-12-31",
            "2023-01-01T00:00:00+1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
