//! Installs build and test dependencies on Debian 12, idempotently: each
//! step first checks whether its result is already there.

use std::process::Command;

use anyhow::{Result, bail};

use crate::sh;

/// Debian packages: libclang for RocksDB's bindgen, a C++ compiler for
/// RocksDB itself, and tshark, which tests use as an independent decoder
/// to cross-check ours.
const DEBIAN_PACKAGES: [&str; 4] = ["libclang-dev", "clang", "g++", "tshark"];

pub fn run() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        if !is_root() {
            bail!(
                "missing Debian packages {missing:?}; run `cargo xtask setup` as root or install them"
            );
        }
        sh(Command::new("apt-get").args(["update", "-qq"]))?;
        sh(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    for component in ["rustfmt", "clippy"] {
        if !rustup_has(component) {
            sh(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn rustup_has(component: &str) -> bool {
    Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.starts_with(component))
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}
