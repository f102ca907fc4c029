//! Lints the eBPF crate. `pdns-ebpf` is never built for the host, and its
//! real build (nightly, `-Z build-std=core`, bpfel target) happens inside
//! `pdns-sensor/build.rs`, where warnings are only relayed. So it gets its
//! own clippy run with the eBPF toolchain, the way the aya template does it:
//! `panic=abort`, because the crate is `no_std` with its own panic handler
//! and has no unwinding to check against. It uses its own target
//! directory: a different toolchain shares no artifacts with the stable
//! builds, and should not wait for their lock.

use std::process::Command;

use anyhow::Result;

use crate::setup::ebpf_toolchain;
use crate::sh;

pub(crate) fn lint() -> Result<()> {
    sh(Command::new("rustup")
        .args([
            "run",
            &ebpf_toolchain(),
            "cargo",
            "clippy",
            "-p",
            "pdns-ebpf",
            "--all-targets",
        ])
        .args([
            "--",
            "-C",
            "panic=abort",
            "-Zpanic_abort_tests",
            "-D",
            "warnings",
        ])
        .env(
            "CARGO_TARGET_DIR",
            format!("{}/ebpf-lint", crate::target_dir()),
        )
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN"))
}
