//! `cargo xtask`: the project's build, setup and test driver.
//!
//! * `cargo xtask setup` — installs what building and testing need on a
//!   fresh Debian 12 machine (Debian packages, Rust components), idempotently.
//! * `cargo xtask test` — setup, then formatting, lints and every test.
//! * `cargo xtask bench [--quick]` — builds release binaries and runs the
//!   benchmark harness of the `bench` crate.
//! * `cargo xtask run -- ARGS` — builds and runs the sensor.
//! * `cargo xtask deb` — builds the Debian package (see `deb.rs`).
//! * `cargo xtask fuzz [--time S] [TARGET...]` — coverage-guided fuzzing
//!   of every parser fed from outside (see `fuzz.rs`).
//! * `cargo xtask gen-dnstap` — regenerates the dnstap protobuf code (see
//!   `gen_dnstap.rs`).
//!
//! Everything builds in the release profile: RocksDB's C++ is the slowest
//! part of the build, and one profile means it is compiled once for the
//! binaries, the tests and the benchmarks alike.

mod deb;
mod ebpf;
mod fuzz;
mod gen_dnstap;
mod setup;

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Workspace members built for the host (never `pdns-ebpf`).
const HOST_PACKAGES: [&str; 4] = ["pdns-sensor", "pdns-common", "bench", "xtask"];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .map(|(c, r)| (c.as_str(), r))
        .unwrap_or(("help", &[]));
    match cmd {
        "setup" => setup::run(),
        "test" => test(rest),
        "bench" => bench(rest),
        "run" => run(rest),
        "deb" => deb::run(rest).map(|_| ()),
        "fuzz" => fuzz::run(rest),
        "gen-dnstap" => gen_dnstap::run(),
        "help" | "--help" | "-h" => {
            println!(
                "cargo xtask <setup|test|bench [--quick]|run -- ARGS|deb|fuzz [--time S] [TARGET...]|gen-dnstap>\n\
                 setup  install build and test dependencies (Debian 12)\n\
                 test   setup, fmt check, clippy, all tests\n\
                 bench  run the benchmark harness (bench/results/)\n\
                 run    build and run pdns-sensor with ARGS\n\
                 deb    build the Debian package (prints its path)\n\
                 fuzz   run every fuzz target (or those named) S seconds each (default 60)\n\
                 gen-dnstap  regenerate the committed dnstap protobuf code"
            );
            Ok(())
        }
        other => bail!("unknown xtask command {other:?} (try `cargo xtask help`)"),
    }
}

/// Runs a command, failing loudly with its name if it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", describe(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", describe(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program().to_string_lossy().into_owned())
        .chain(cmd.get_args().map(|a| a.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn packages(cmd: &mut Command) -> &mut Command {
    for p in HOST_PACKAGES {
        cmd.args(["-p", p]);
    }
    cmd
}

fn test(rest: &[String]) -> Result<()> {
    setup::run()?;
    sh(cargo().args(["fmt", "--all", "--check"]))?;
    sh(
        packages(cargo().args(["clippy", "--release", "--all-targets"]))
            .args(["--", "-D", "warnings"]),
    )?;
    ebpf::lint()?;
    // The sensor binary must exist for the CLI tests.
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "pdns-sensor",
        "--bin",
        "pdns-sensor",
    ]))?;
    // The benchmark harness, at its smallest size: it works and its JSON is
    // well-formed. Timings are reported, never asserted.
    bench(&["--quick".to_string()])?;
    let (passed, failed) =
        cargo_test(packages(cargo().args(["test", "--release", "--no-fail-fast"])).args(rest))?;
    // One plain closing line with the totals of every test binary.
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} test(s) failed");
    }
    Ok(())
}

/// Runs `cargo test`, echoing its output, and adds up its result lines.
fn cargo_test(cmd: &mut Command) -> Result<(u64, u64)> {
    use std::io::{BufRead, BufReader};
    eprintln!("xtask: $ {}", describe(cmd));
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("starting cargo test")?;
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(child.stdout.take().context("cargo test stdout")?).lines() {
        let line = line?;
        println!("{line}");
        // "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let words: Vec<&str> = part.split_whitespace().collect();
                match words.as_slice() {
                    [.., n, "passed"] => passed += n.parse::<u64>().unwrap_or(0),
                    [n, "failed"] => failed += n.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() && failed == 0 {
        bail!("cargo test failed with {status} before reporting a failed test");
    }
    Ok((passed, failed))
}

fn bench(rest: &[String]) -> Result<()> {
    setup::run()?;
    sh(cargo().args(["build", "--release", "-p", "pdns-sensor", "-p", "bench"]))?;
    let target = target_dir();
    let sensor = format!("{target}/release/pdns-sensor");
    sh(Command::new(format!("{target}/release/bench"))
        .args(["run", "--sensor", &sensor])
        .args(rest))
}

fn run(rest: &[String]) -> Result<()> {
    // A fresh machine needs libclang, the nightly's rust-src and bpf-linker
    // before the sensor (and its eBPF filter) can build.
    setup::build()?;
    let rest: Vec<&String> = rest.iter().skip_while(|a| *a == "--").collect();
    sh(cargo()
        .args(["run", "--release", "-p", "pdns-sensor", "--"])
        .args(rest))
}

fn target_dir() -> String {
    std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace root");
        root.join("target").display().to_string()
    })
}
