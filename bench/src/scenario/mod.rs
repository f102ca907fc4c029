//! Benchmark scenarios and the `bench run` driver.
//!
//! Each scenario (ingest, peers, Zeek import, live capture, queries,
//! retention, export, dnstap, soak) is a module implementing [`Scenario`]: it
//! turns a [`Ctx`] into report entries plus a summary table. The driver only
//! selects scenarios, prints their tables and writes the combined
//! [`Report`], so adding one is a new module and a line in [`registry`].

pub mod dnstap;
pub mod export;
pub mod ingest;
pub mod live;
pub mod peers;
pub mod queries;
pub mod retention;
pub mod soak;
pub mod zeek_import;

use std::path::PathBuf;

use anyhow::{Result, bail};

use crate::cli::RunArgs;
use crate::report::{Entry, Report};
use crate::sysinfo::Machine;
use crate::table::Table;

/// What every scenario gets to work with.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub sensor: PathBuf,
    pub quick: bool,
    pub cache_dir: PathBuf,
    /// Where results go (the soak writes its time series and plot there).
    pub results_dir: PathBuf,
    pub soak: soak::Options,
}

/// What a scenario produces.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub entries: Vec<Entry>,
    pub table: Table,
}

pub trait Scenario {
    /// Name used on the command line, in entries and in result file names.
    fn name(&self) -> &'static str;
    /// Heading of the scenario's table.
    fn title(&self) -> &'static str;
    fn run(&self, ctx: &Ctx) -> Result<Outcome>;
}

/// Every known scenario, in run order.
pub fn registry() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(ingest::Ingest::default()),
        Box::new(peers::Peers),
        Box::new(zeek_import::ZeekImport),
        Box::new(live::Live),
        Box::new(queries::Queries),
        Box::new(retention::Retention),
        Box::new(export::Export),
        Box::new(dnstap::Dnstap::default()),
        Box::new(soak::Soak),
    ]
}

/// Scenarios that a `--quick` run leaves out unless named with
/// `--scenario`: the soak is a fixed time, not a size (issue 14: "not part
/// of --quick").
const NOT_QUICK: [&str; 1] = [soak::NAME];

/// Runs `scenarios` and writes the report into `results_dir`; returns it.
pub fn run_scenarios(
    scenarios: &[Box<dyn Scenario>],
    ctx: &Ctx,
    results_dir: &std::path::Path,
) -> Result<Report> {
    let mut report = Report::new(Machine::probe());
    let mut tables = Vec::new();
    for s in scenarios {
        eprintln!("scenario {}", s.name());
        let out = s.run(ctx)?;
        println!("\n{}\n\n{}", s.title(), out.table.text());
        tables.push((s.title().to_string(), out.table));
        report.extend(out.entries);
    }
    for p in report.write(results_dir, &tables)? {
        eprintln!("wrote {}", p.display());
    }
    Ok(report)
}

/// The scenarios `--scenario` names (all when none), in run order; a quick
/// run of all leaves out [`NOT_QUICK`].
pub fn select(named: &[String], quick: bool) -> Result<Vec<Box<dyn Scenario>>> {
    let mut chosen = registry();
    if !named.is_empty() {
        let known: Vec<&str> = chosen.iter().map(|s| s.name()).collect();
        for want in named {
            if !known.contains(&want.as_str()) {
                bail!("unknown scenario {want:?}; known: {}", known.join(", "));
            }
        }
        chosen.retain(|s| named.iter().any(|w| w == s.name()));
    } else if quick {
        chosen.retain(|s| !NOT_QUICK.contains(&s.name()));
    }
    Ok(chosen)
}

/// `bench run`.
pub fn run(args: &RunArgs) -> Result<()> {
    let chosen = select(&args.scenario, args.quick)?;
    // `reference.md` is the run's own tables: a run of some scenarios
    // would leave only theirs in it.
    if args.save_reference && (args.quick || chosen.len() < registry().len()) {
        bail!(
            "--save-reference keeps a full run as the reference: run every scenario, \
             without --quick and --scenario"
        );
    }
    if crate::tools::is_root() && crate::tools::have("ip") {
        match crate::netns::sweep_stale() {
            Ok(removed) if !removed.is_empty() => eprintln!(
                "removed network namespaces left by interrupted runs: {}",
                removed.join(", ")
            ),
            Ok(_) => {}
            Err(e) => eprintln!("warning: looking for namespaces of interrupted runs: {e:#}"),
        }
    }
    let ctx = Ctx {
        sensor: args.sensor.clone(),
        quick: args.quick,
        cache_dir: args.cache_dir.clone(),
        results_dir: args.results_dir.clone(),
        soak: soak::Options {
            seconds: args.soak_seconds,
            pps: args.soak_pps,
        },
    };
    let report = run_scenarios(&chosen, &ctx, &args.results_dir)?;
    if args.save_reference {
        for p in crate::report::save_reference(&args.results_dir)? {
            eprintln!("wrote {}", p.display());
        }
    }
    let failed = report.entries.iter().filter(|e| e.failed()).count();
    if failed > 0 {
        bail!(
            "{failed} run(s) failed; see the notes in {}",
            args.results_dir.join("latest.md").display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: Vec<Box<dyn Scenario>>) -> Vec<&'static str> {
        v.iter().map(|s| s.name()).collect()
    }

    #[test]
    fn the_soak_runs_in_full_runs_and_when_named() {
        let all = names(select(&[], false).unwrap());
        assert_eq!(all.last(), Some(&soak::NAME));
        let quick = names(select(&[], true).unwrap());
        assert!(!quick.contains(&soak::NAME));
        assert_eq!(quick.len() + 1, all.len());
        let named = names(select(&["soak".into()], true).unwrap());
        assert_eq!(named, [soak::NAME]);
        assert!(select(&["nope".into()], false).is_err());
    }
}
