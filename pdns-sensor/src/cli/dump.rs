//! `pdns-sensor dump`: print what the store holds.

use std::io::{self, BufWriter};

use anyhow::{Context, Result, bail};
use clap::Args;

use super::DbArgs;
use crate::dump::{Format, Row, Writer};
use crate::report::DbStats;
use crate::store::address_selector;
use crate::store::flex::{Pattern, ScanStats, Syntax};
use crate::store::{Filter, Selector, Store};
use crate::vocab::name;
use crate::vocab::render::parse_rtype;

#[derive(Debug, Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// Owner name; `*.example.com` for everything below example.com.
    /// (A name may begin with `-`: `--name -dash.example.`.)
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// Record type (A, AAAA, MX, TYPE65280, ...).
    #[arg(long = "type", value_name = "TYPE")]
    pub rtype: Option<String>,
    /// Rdata: an address, a CIDR block, or a name (`*.example.com` allowed).
    #[arg(long, conflicts_with = "name", allow_hyphen_values = true)]
    pub rdata: Option<String>,
    /// Records whose owner name matches this regex (DNSDB Flex: RE2
    /// syntax, unanchored, case-insensitive, against the name with its
    /// trailing dot, e.g. `\.example\.com\.$`).
    #[arg(long, value_name = "REGEX", conflicts_with_all = ["name", "rdata", "negative", "glob"])]
    pub regex: Option<String>,
    /// Records whose owner name matches this glob (DNSDB Flex: the whole
    /// name with its trailing dot, `*` `?` `[...]`, e.g. `*.example.com.`).
    #[arg(long, value_name = "GLOB", conflicts_with_all = ["name", "rdata", "negative"])]
    pub glob: Option<String>,
    /// Show the negative-answer table (NXDOMAIN, NODATA, SERVFAIL, ...).
    #[arg(long, conflicts_with = "rdata")]
    pub negative: bool,
    /// Only records first seen at or after this time (RFC 3339 or epoch).
    #[arg(long, value_parser = parse_time)]
    pub first_after: Option<u64>,
    #[arg(long, value_parser = parse_time)]
    pub first_before: Option<u64>,
    #[arg(long, value_parser = parse_time)]
    pub last_after: Option<u64>,
    #[arg(long, value_parser = parse_time)]
    pub last_before: Option<u64>,
    /// Most records printed.
    #[arg(long)]
    pub limit: Option<u64>,
    /// One COF JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Print the database's statistics instead of records: its store
    /// format, per column family estimated keys, SST and live bytes,
    /// expired counts; the retention in force (with `--json`: one JSON
    /// object).
    #[arg(long, conflicts_with_all = ["name", "rdata", "negative", "rtype", "limit", "regex", "glob"])]
    pub stats: bool,
    /// Print the newly observed domains first seen at or after this time
    /// (RFC 3339, a date or epoch) instead of records: one per registrable
    /// domain, in first-seen order (with `--json`: as the API's /nod gives
    /// them).
    #[arg(long, value_name = "TIME", value_parser = parse_time,
          conflicts_with_all = ["name", "rdata", "negative", "rtype", "stats"])]
    pub new_since: Option<u64>,
}

fn parse_time(s: &str) -> Result<u64, String> {
    crate::vocab::time::parse(s)
}

/// Turns `--name` into a selector.
pub fn owner_selector(text: &str) -> Result<Selector> {
    let (wildcard, rest) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let name = name::encode_presentation(rest)?;
    Ok(Selector::Owner { name, wildcard })
}

/// Turns `--rdata` into a selector.
pub fn rdata_selector(text: &str) -> Result<Selector> {
    if let Some(sel) = address_selector(text) {
        return Ok(sel);
    }
    if text.contains('/') || text.parse::<std::net::IpAddr>().is_ok() {
        bail!("not a valid address or CIDR block: {text:?}");
    }
    let (wildcard, rest) = match text.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    Ok(Selector::RdataName {
        name: name::encode_presentation(rest)?,
        wildcard,
    })
}

pub fn run(args: &DumpArgs) -> Result<u64> {
    let selector = match (&args.name, &args.rdata) {
        (Some(n), _) => owner_selector(n)?,
        (None, Some(r)) => rdata_selector(r)?,
        (None, None) => Selector::All,
    };
    let rtype = match &args.rtype {
        Some(t) => Some(parse_rtype(t).with_context(|| format!("unknown record type {t:?}"))?),
        None => None,
    };
    let filter = Filter {
        rtype,
        first_after: args.first_after,
        first_before: args.first_before,
        last_after: args.last_after,
        last_before: args.last_before,
        deadline: None,
    };
    let store = Store::open_reader_with(&args.db.db, super::clock()?)?;
    store.catch_up()?;
    if args.stats {
        let stats = DbStats::read(&store);
        let text = if args.json {
            serde_json::to_string(&stats)? + "\n"
        } else {
            stats.render()
        };
        return match io::Write::write_all(&mut io::stdout().lock(), text.as_bytes()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(0),
        };
    }
    if let Some(since) = args.new_since {
        return new_domains(&store, since, args.limit, args.json);
    }
    let format = if args.json {
        Format::Json
    } else {
        Format::Table
    };
    let stdout = io::stdout().lock();
    let mut writer = Writer::new(BufWriter::new(stdout), format, args.negative);
    let limit = args.limit.unwrap_or(u64::MAX);
    let flex = match (&args.regex, &args.glob) {
        (Some(r), _) => Some(Pattern::new(Syntax::Regex, r)?),
        (None, Some(g)) => Some(Pattern::new(Syntax::Glob, g)?),
        (None, None) => None,
    };
    let result: Result<()> = (|| {
        if let Some(pattern) = &flex {
            let (mut left, mut failed) = (limit, None);
            store.flex_owner_records(
                pattern,
                None,
                &filter,
                None,
                &mut ScanStats::default(),
                |r| {
                    if left == 0 {
                        return false;
                    }
                    left -= 1;
                    match writer.push(Row::record(r)) {
                        Ok(()) => true,
                        Err(e) => {
                            failed = Some(e);
                            false
                        }
                    }
                },
            )?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        } else if args.negative {
            for r in store.negatives(&selector, &filter).take(limit as usize) {
                writer.push(Row::negative(&r?))?;
            }
        } else {
            for r in store.records(&selector, &filter).take(limit as usize) {
                writer.push(Row::record(&r?))?;
            }
        }
        Ok(())
    })();
    match result {
        Err(e) if is_broken_pipe(&e) => return Ok(writer.rows),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    match writer.finish() {
        Ok(n) => Ok(n),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// `--new-since`: the newly observed domains as a table or JSON lines.
fn new_domains(store: &Store, since: u64, limit: Option<u64>, json: bool) -> Result<u64> {
    use std::io::Write as _;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut rows = 0u64;
    let result: Result<()> = (|| {
        if !json {
            writeln!(
                out,
                "{:<19}  {:<30}  {:<40}  {:<6}  warmup",
                "first_seen (UTC)", "domain", "rrname", "rrtype"
            )?;
        }
        for r in store
            .new_domains(since, None)
            .take(limit.unwrap_or(u64::MAX) as usize)
        {
            let r = r?;
            if json {
                serde_json::to_writer(&mut out, &r.to_json())?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<19}  {:<30}  {:<40}  {:<6}  {}",
                    crate::vocab::time::format_utc(r.entry.first_seen),
                    name::presentation(&r.domain),
                    name::presentation(&r.entry.rrname),
                    crate::vocab::render::rtype_name(r.entry.rrtype),
                    if r.entry.warmup { "yes" } else { "no" },
                )?;
            }
            rows += 1;
        }
        out.flush()?;
        Ok(())
    })();
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(rows),
        Err(e) => Err(e),
        Ok(()) => Ok(rows),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
