//! Lints the eBPF crate. `pdns-ebpf` is never built for the host, and its
//! real build (nightly, `-Z build-std=core`, bpfel target) happens inside
//! `pdns-sensor/build.rs`, where warnings are only relayed. So it gets its
//! own clippy run with the eBPF toolchain, the way the aya template does it:
//! `panic=abort`, because the crate is `no_std` with its own panic handler
//! and has no unwinding to check against.

use std::process::Command;

use anyhow::Result;

use crate::setup::ebpf_toolchain;
use crate::sh;

pub fn lint() -> Result<()> {
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
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN"))
}
