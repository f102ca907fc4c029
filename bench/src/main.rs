//! `bench` binary: `bench gen` writes a workload pcap, `bench run` runs
//! benchmark scenarios against a sensor binary; the hidden `bench
//! ring-read` is the live scenario's bare ring reader ([`ringread`]).

use std::time::Instant;

use anyhow::Result;
use clap::Parser;

use bench::cli::{Cli, Command, GenArgs};
use bench::{r#gen, progress, ringread, scenario};

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Gen(args) => gen_cmd(&args),
        Command::Run(args) => scenario::run(&args),
        Command::RingRead(args) => ringread::run(&args),
    }
}

fn gen_cmd(args: &GenArgs) -> Result<()> {
    let cfg = args.config();
    let bar = progress::packet_bar(cfg.packets, "generating");
    let start = Instant::now();
    let summary = r#gen::generate_file(
        &cfg,
        &args.out,
        args.manifest.as_deref(),
        &mut progress::callback(&bar),
    )?;
    let secs = start.elapsed().as_secs_f64();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    println!(
        "{} secs={secs:.3} packets_per_sec={:.0}",
        summary.line(),
        summary.packets as f64 / secs.max(1e-9)
    );
    Ok(())
}
