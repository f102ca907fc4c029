//! `cargo xtask deb`: the Debian package.
//!
//! Builds the release binary (with its eBPF filter, through build.rs),
//! generates what the package ships besides it from that very binary —
//! the bash, zsh and fish completions and the (gzipped) manual pages — into
//! `target/release/packaging/`, and runs `cargo deb --no-build`, which
//! packs them with the unit, the example configuration and the maintainer
//! scripts from `packaging/` as `pdns-sensor/Cargo.toml`'s
//! `[package.metadata.deb]` lists them. Prints the path of the `.deb`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{cargo, sh, target_dir};

/// Completion scripts: shell, and the file name its completion loader
/// looks for (see the asset list).
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "pdns-sensor"),
    ("zsh", "_pdns-sensor"),
    ("fish", "pdns-sensor.fish"),
];

/// Builds the package; returns (and prints) its path. `rest` goes to
/// `cargo deb` (e.g. `--deb-revision 2`).
pub(crate) fn run(rest: &[String]) -> Result<PathBuf> {
    crate::setup::packaging()?;
    sh(cargo().args([
        "build",
        "--release",
        "-p",
        "pdns-sensor",
        "--bin",
        "pdns-sensor",
    ]))?;
    let release = Path::new(&target_dir()).join("release");
    generate_assets(&release.join("pdns-sensor"), &release.join("packaging"))?;

    let mut cmd = cargo();
    cmd.args(["deb", "-p", "pdns-sensor", "--no-build"])
        .args(rest);
    eprintln!("xtask: $ {}", crate::describe(&cmd));
    let out = cmd.output().context("starting cargo deb")?;
    if !out.status.success() {
        bail!(
            "cargo deb failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    // cargo deb prints the package's path as its last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .map(PathBuf::from)
        .with_context(|| format!("cargo deb printed no .deb path: {stdout}"))?;
    if !path.is_file() {
        bail!("cargo deb named {}, which does not exist", path.display());
    }
    println!("{}", path.display());
    Ok(path)
}

/// Writes the completions and manual pages `sensor` generates into `dir`
/// (`completions/`, `man/`), replacing what an earlier build left there.
fn generate_assets(sensor: &Path, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)
        .with_context(|| format!("creating {}", completions.display()))?;
    for (shell, file) in COMPLETIONS {
        let out = Command::new(sensor)
            .args(["completions", "--shell", shell])
            .output()
            .with_context(|| format!("starting {}", sensor.display()))?;
        if !out.status.success() || out.stdout.is_empty() {
            bail!(
                "{} completions --shell {shell} failed: {}",
                sensor.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let path = completions.join(file);
        std::fs::write(&path, &out.stdout)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let man = dir.join("man");
    sh(Command::new(sensor)
        .arg("manpages")
        .arg("--out")
        .arg(&man)
        .stdout(std::process::Stdio::null()))?;
    // Debian installs manual pages compressed, reproducibly (no name or
    // time stamp in the header).
    let mut gzip = Command::new("gzip");
    gzip.arg("-9n");
    for entry in std::fs::read_dir(&man).with_context(|| format!("listing {}", man.display()))? {
        gzip.arg(entry?.path());
    }
    sh(&mut gzip)
}
