//! `cargo xtask fuzz [--time S] [TARGET...]`: coverage-guided fuzzing of
//! every parser fed from outside (issue 14), with cargo-fuzz and libFuzzer.
//!
//! The targets live in `pdns-sensor/fuzz/` (a crate of its own, outside the
//! workspace: it needs nightly and instrumentation flags) and are one line
//! each; the invariants they check are `pdns_sensor::fuzzing`'s, which plain
//! `cargo test` replays on stable over the committed seeds and regressions
//! (`tests/fuzz_regressions.rs`). This command:
//!
//! 1. installs the pinned cargo-fuzz (see `setup.rs`);
//! 2. derives the seed corpora from the test captures and Zeek logs into
//!    `target/fuzz-corpus/<target>/` (`examples/fuzz_seeds.rs`; the corpus
//!    grows there from run to run, never in the repository);
//! 3. builds every target once, then runs them one after the other (one
//!    fuzzing process at a time: the machines are shared) for S seconds
//!    each, with the DNS dictionary `fuzz/dns.dict`;
//! 4. prints and writes to `target/fuzz-report.json` each target's
//!    executions (libFuzzer's final `stat::number_of_executed_units`) and
//!    findings (the inputs libFuzzer wrote under `fuzz/artifacts/`), and
//!    fails if any target crashed.
//!
//! Build choices: no sanitizer (`-s none`: the code under test is safe
//! Rust, so AddressSanitizer would only halve the executions) but debug
//! assertions on (`-a`), so an arithmetic overflow is a finding rather than
//! a silent wrap. RocksDB's C++ is not instrumented either way; when the
//! release build already compiled it, the fuzz build links that archive
//! (`ROCKSDB_LIB_DIR`) instead of compiling it a second time — the fuzz
//! crate's `Cargo.lock` pins the same librocksdb-sys as the workspace's.
//!
//! To reproduce or minimise a finding by hand, from `pdns-sensor/`:
//! `cargo +nightly fuzz run -s none -a TARGET ARTIFACT` and
//! `cargo +nightly fuzz tmin -s none -a TARGET ARTIFACT`; a fixed crash goes
//! under `pdns-sensor/fuzz/regressions/TARGET/`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{cargo, sh, target_dir};

/// Seconds per target unless `--time` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

/// What the fuzz build and every run share: no sanitizer, debug assertions
/// (the same flags for both, or `run` would rebuild).
const BUILD_FLAGS: [&str; 3] = ["-s", "none", "-a"];

/// One target's run.
struct Outcome {
    target: String,
    executions: u64,
    seconds: f64,
    findings: Vec<String>,
    crashed: bool,
}

pub(crate) fn run(rest: &[String]) -> Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut wanted = Vec::new();
    let mut args = rest.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--time" => {
                let value = args.next().context("--time needs a number of seconds")?;
                seconds = value
                    .parse()
                    .with_context(|| format!("--time {value:?}: not a number of seconds"))?;
            }
            other if other.starts_with('-') => bail!("unknown fuzz option {other:?}"),
            target => wanted.push(target.to_string()),
        }
    }
    crate::setup::fuzzing()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let fuzz_dir = root.join("pdns-sensor/fuzz");
    let target = PathBuf::from(target_dir());
    let corpus = target.join("fuzz-corpus");

    let all = list(&fuzz_dir)?;
    if wanted.is_empty() {
        wanted = all.clone();
    }
    if let Some(unknown) = wanted.iter().find(|t| !all.contains(t)) {
        bail!(
            "unknown fuzz target {unknown:?} (there are: {})",
            all.join(", ")
        );
    }

    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "pdns-sensor",
        "--example",
        "fuzz_seeds",
    ]))?;
    sh(Command::new(target.join("release/examples/fuzz_seeds"))
        .arg(root.join("testdata"))
        .arg(&corpus))?;

    sh(&mut fuzz_command(&fuzz_dir, &target, "build")?)?;
    let mut outcomes = Vec::new();
    for name in &wanted {
        outcomes.push(run_target(&fuzz_dir, &target, &corpus, name, seconds)?);
    }

    println!(
        "\n{:<16} {:>14} {:>8}  findings",
        "target", "executions", "seconds"
    );
    for o in &outcomes {
        println!(
            "{:<16} {:>14} {:>8.0}  {}",
            o.target,
            o.executions,
            o.seconds,
            if o.findings.is_empty() && !o.crashed {
                "none".to_string()
            } else {
                o.findings.join(" ")
            }
        );
    }
    let total: u64 = outcomes.iter().map(|o| o.executions).sum();
    println!("{total} executions in all");
    let report = target.join("fuzz-report.json");
    std::fs::write(&report, report_json(seconds, &outcomes))
        .with_context(|| report.display().to_string())?;
    println!("report: {}", report.display());
    let crashed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.crashed)
        .map(|o| o.target.as_str())
        .collect();
    if !crashed.is_empty() {
        bail!("fuzzing found crashes in {}", crashed.join(", "));
    }
    Ok(())
}

/// `cargo +nightly fuzz SUBCOMMAND` with the shared flags, run from the
/// fuzz crate's package, linking the release build's RocksDB if there is
/// one.
fn fuzz_command(fuzz_dir: &Path, target: &Path, subcommand: &str) -> Result<Command> {
    let mut cmd = Command::new("cargo");
    cmd.args(["+nightly", "fuzz", subcommand])
        .args(BUILD_FLAGS)
        .current_dir(fuzz_dir.parent().context("pdns-sensor")?)
        // The outer cargo's variables would point the nested (nightly)
        // cargo at the stable toolchain.
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    if std::env::var_os("ROCKSDB_LIB_DIR").is_none()
        && let Some(dir) = prebuilt_rocksdb(target)
    {
        cmd.env("ROCKSDB_LIB_DIR", dir).env("ROCKSDB_STATIC", "1");
    }
    Ok(cmd)
}

/// The newest `librocksdb.a` the release build compiled, if any.
fn prebuilt_rocksdb(target: &Path) -> Option<PathBuf> {
    std::fs::read_dir(target.join("release/build"))
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("librocksdb-sys-")
        })
        .map(|e| e.path().join("out"))
        .filter_map(|out| {
            let modified = out.join("librocksdb.a").metadata().ok()?.modified().ok()?;
            Some((modified, out))
        })
        .max()
        .map(|(_, out)| out)
}

/// The fuzz crate's targets (`cargo fuzz list`).
fn list(fuzz_dir: &Path) -> Result<Vec<String>> {
    let output = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(fuzz_dir.parent().context("pdns-sensor")?)
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .context("cargo +nightly fuzz list")?;
    if !output.status.success() {
        bail!(
            "cargo +nightly fuzz list failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Fuzzes one target for `seconds`, its log in `target/fuzz-logs/`.
fn run_target(
    fuzz_dir: &Path,
    target: &Path,
    corpus: &Path,
    name: &str,
    seconds: u64,
) -> Result<Outcome> {
    let own = corpus.join(name);
    std::fs::create_dir_all(&own)?;
    let mut cmd = fuzz_command(fuzz_dir, target, "run")?;
    cmd.arg(name).arg(&own);
    // Read-only corpora: the committed seeds and regressions.
    for extra in ["seeds", "regressions"] {
        let dir = fuzz_dir.join(extra).join(name);
        if dir.is_dir() {
            cmd.arg(dir);
        }
    }
    cmd.arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-dict={}", fuzz_dir.join("dns.dict").display()))
        .args(["-print_final_stats=1", "-timeout=10", "-rss_limit_mb=2048"]);
    let logs = target.join("fuzz-logs");
    std::fs::create_dir_all(&logs)?;
    let log_path = logs.join(format!("{name}.log"));
    let mut log = std::fs::File::create(&log_path)?;
    eprintln!(
        "xtask: fuzzing {name} for {seconds} s (log: {})",
        log_path.display()
    );
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cargo +nightly fuzz run")?;
    let mut outcome = Outcome {
        target: name.to_string(),
        executions: 0,
        seconds: 0.0,
        findings: Vec::new(),
        crashed: false,
    };
    let stderr = child.stderr.take().context("fuzzer stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        writeln!(log, "{line}")?;
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            outcome.executions = n.trim().parse().unwrap_or(0);
        } else if let Some(path) = line.split("Test unit written to ").nth(1) {
            outcome.findings.push(path.trim().to_string());
        } else if let Some(n) = done_runs(&line) {
            // The periodic and final status lines (`#N DONE ...`), in case
            // a crash cuts the final statistics.
            outcome.executions = outcome.executions.max(n);
        }
        if line.contains("DONE")
            || line.contains("panicked")
            || line.contains("ERROR")
            || line.contains("Test unit written")
            || line.starts_with("stat::number_of_executed_units")
        {
            eprintln!("  {name}: {line}");
        }
    }
    let status = child.wait()?;
    outcome.seconds = started.elapsed().as_secs_f64();
    outcome.crashed = !status.success() || !outcome.findings.is_empty();
    Ok(outcome)
}

/// N from a libFuzzer status line `#N  pulse/NEW/REDUCE/DONE ...`.
fn done_runs(line: &str) -> Option<u64> {
    line.strip_prefix('#')?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The report, by hand (xtask has no JSON dependency): strings here are
/// target names and paths.
fn report_json(seconds: u64, outcomes: &[Outcome]) -> String {
    let quote = |s: &str| format!("{:?}", s);
    let targets: Vec<String> = outcomes
        .iter()
        .map(|o| {
            let findings: Vec<String> = o.findings.iter().map(|f| quote(f)).collect();
            format!(
                "    {{\"target\": {}, \"executions\": {}, \"seconds\": {:.1}, \"crashed\": {}, \"findings\": [{}]}}",
                quote(&o.target),
                o.executions,
                o.seconds,
                o.crashed,
                findings.join(", ")
            )
        })
        .collect();
    let total: u64 = outcomes.iter().map(|o| o.executions).sum();
    format!(
        "{{\n  \"seconds_per_target\": {seconds},\n  \"executions\": {total},\n  \"targets\": [\n{}\n  ]\n}}\n",
        targets.join(",\n")
    )
}
