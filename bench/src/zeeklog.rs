//! A deterministic Zeek dns.log (TSV, stock 8.x columns) of resolver-like
//! traffic: A answers (some behind a CNAME), AAAA, TXT, NXDOMAIN and NODATA
//! lines, `distinct` query names repeating over `lines` lines. Used by the
//! `zeek-import` scenario, and by the import tests (which include this file).

use std::io::{self, Write};

pub(crate) const HEADER: &str = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n#open\t2024-01-01-00-00-00\n#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\ttrans_id\trtt\tquery\tqclass\tqclass_name\tqtype\tqtype_name\trcode\trcode_name\tAA\tTC\tRD\tRA\tZ\tanswers\tTTLs\trejected\topcode\topcode_name\n#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tcount\tinterval\tstring\tcount\tstring\tcount\tstring\tcount\tstring\tbool\tbool\tbool\tbool\tcount\tvector[string]\tvector[interval]\tbool\tcount\tstring\n";

/// Writes one stock dns.log line.
pub(crate) fn line(
    out: &mut impl Write,
    ts: u64,
    query: &str,
    qtype: (u16, &str),
    rcode: (u16, &str),
    answers: &[String],
    ttls: &[u32],
) -> io::Result<()> {
    let (answers, ttls) = if answers.is_empty() {
        ("-".to_string(), "-".to_string())
    } else {
        (
            answers.join(","),
            ttls.iter()
                .map(|t| format!("{t}.000000"))
                .collect::<Vec<_>>()
                .join(","),
        )
    };
    writeln!(
        out,
        "{ts}.{:06}\tC{:016x}\t10.0.0.{}\t{}\t192.0.2.53\t53\tudp\t{}\t0.001234\t{query}\t1\tC_INTERNET\t{}\t{}\t{}\t{}\tF\tF\tT\tT\t0\t{answers}\t{ttls}\tF\t0\tquery",
        ts % 1_000_000,
        ts.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        ts % 250,
        1024 + ts % 60000,
        ts % 65536,
        qtype.0,
        qtype.1,
        rcode.0,
        rcode.1,
    )
}

/// Writes `lines` log lines over `distinct` names, starting at `ts0`.
pub(crate) fn generate(
    out: &mut impl Write,
    lines: u64,
    distinct: u64,
    ts0: u64,
) -> io::Result<()> {
    out.write_all(HEADER.as_bytes())?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..lines {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = x % distinct.max(1);
        let q = format!("host{n}.zone{}.example.com", n % 97);
        let ip = |k: u64| {
            format!(
                "198.{}.{}.{}",
                18 + (n + k) % 2,
                (n / 251) % 256,
                (n + k) % 251
            )
        };
        let ts = ts0 + i / 100;
        match n % 20 {
            0..=10 => line(
                out,
                ts,
                &q,
                (1, "A"),
                (0, "NOERROR"),
                &[ip(0), ip(1)],
                &[300, 300],
            )?,
            11..=13 => line(
                out,
                ts,
                &q,
                (1, "A"),
                (0, "NOERROR"),
                &[format!("edge{}.cdn.example.net", n % 50), ip(0)],
                &[3600, 60],
            )?,
            14..=15 => line(
                out,
                ts,
                &q,
                (28, "AAAA"),
                (0, "NOERROR"),
                &[format!("2001:db8::{n:x}")],
                &[600],
            )?,
            16 => line(
                out,
                ts,
                &q,
                (16, "TXT"),
                (0, "NOERROR"),
                &["TXT 11 v=spf1 -all".to_string()],
                &[60],
            )?,
            17..=18 => line(out, ts, &q, (1, "A"), (3, "NXDOMAIN"), &[], &[])?,
            _ => line(out, ts, &q, (28, "AAAA"), (0, "NOERROR"), &[], &[])?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        generate(&mut a, 1000, 50, 1_700_000_000).unwrap();
        generate(&mut b, 1000, 50, 1_700_000_000).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        let fields = 26;
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            assert_eq!(l.split('\t').count(), fields, "{l}");
        }
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 1000);
    }
}
