//! Builds the eBPF socket filter (`pdns-ebpf`) for `bpfel-unknown-none` and
//! leaves the object at `$OUT_DIR/pdns-ebpf`, where `capture::filter`
//! embeds it with `include_bytes_aligned!`.
//!
//! The userspace crate builds on stable; the eBPF crate needs nightly
//! (`-Z build-std=core`, since the BPF target has no prebuilt `core`) and
//! `bpf-linker`. The nested `cargo build` runs through
//! `rustup run <toolchain>`. The toolchain is `nightly` unless
//! `PDNS_EBPF_TOOLCHAIN` pins one (e.g. `nightly-2026-05-19`): every nightly
//! update changes the libLLVM that bpf-linker was built against, so a pinned
//! nightly keeps the build reproducible. `cargo xtask setup` installs both
//! (see `xtask/src/setup.rs` for how).
//!
//! Why not `aya_build::build_ebpf`: it relays every line the nested cargo
//! prints (`Compiling core`, ...) as a `cargo:warning`, so every build of
//! the sensor showed dozens of warnings that were not. This runs the same
//! command (same flags, same target directory under `$OUT_DIR`, same
//! output file) but keeps quiet when it works: one line says the filter
//! was rebuilt, the eBPF crate's own compiler warnings are passed on, one
//! line each, and on failure the nested build's whole log (compiler
//! diagnostics and stderr) is the error.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};
use cargo_metadata::diagnostic::DiagnosticLevel;
use cargo_metadata::{Artifact, Message};

fn main() {
    // The error chain, without the backtrace anyhow adds when
    // RUST_BACKTRACE is set: the nested build's log is what matters.
    if let Err(e) = run() {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("\ncaused by: {cause}");
        }
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=PDNS_EBPF_TOOLCHAIN");
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("reading the workspace metadata")?;
    let ebpf = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "pdns-ebpf")
        .ok_or_else(|| anyhow!("the pdns-ebpf package is not in the workspace"))?;
    let root = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent", ebpf.manifest_path))?;
    // Rebuild on changes to the eBPF crate (a directory: cargo looks at
    // every file in it) and to the types it shares with userspace.
    println!("cargo:rerun-if-changed={root}");
    if let Some(common) = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "pdns-common")
        .and_then(|p| p.manifest_path.parent())
    {
        println!("cargo:rerun-if-changed={common}");
    }
    let toolchain = match std::env::var("PDNS_EBPF_TOOLCHAIN") {
        Ok(t) if !t.is_empty() => t,
        _ => "nightly".to_string(),
    };
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| anyhow!("no OUT_DIR"))?);
    build_ebpf(ebpf.name.as_str(), &toolchain, &out_dir).context(
        "building the eBPF filter (needs the nightly toolchain with rust-src and bpf-linker: \
         run `cargo xtask setup`)",
    )
}

/// Runs `rustup run TOOLCHAIN cargo build` for the eBPF package, the way
/// aya-build 0.2 does, and copies its binaries to `out_dir`.
fn build_ebpf(package: &str, toolchain: &str, out_dir: &Path) -> anyhow::Result<()> {
    let endian = std::env::var("CARGO_CFG_TARGET_ENDIAN").context("CARGO_CFG_TARGET_ENDIAN")?;
    let target = match endian.as_str() {
        "little" => "bpfel-unknown-none",
        "big" => "bpfeb-unknown-none",
        e => bail!("unsupported endianness {e}"),
    };
    // The architecture whose kernel structures the eBPF code may read.
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").context("CARGO_CFG_TARGET_ARCH")?;
    let arch = if arch.starts_with("riscv64") {
        "riscv64"
    } else {
        &arch
    };
    // Separate from the object copied to `out_dir/<bin>`, so the two never
    // collide (and the same place aya-build used, so its cache is reused).
    let target_dir = out_dir.join("aya-build").join("target").join(package);
    let mut cmd = Command::new("rustup");
    cmd.args(["run", toolchain, "cargo", "build"])
        .args(["--package", package, "--bins", "--release"])
        .args(["--message-format=json", "--target", target])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(&target_dir)
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                &format!("--cfg=bpf_target_arch=\"{arch}\""),
                "-Cdebuginfo=2",
                "-Clink-arg=--btf",
            ]
            .join("\x1f"),
        )
        // The outer build's compiler is stable; let rustup pick the nightly's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    let output = cmd
        .output()
        .with_context(|| format!("starting {cmd:?} (is rustup installed?)"))?;

    let mut binaries = Vec::new();
    let mut diagnostics = String::new();
    for message in Message::parse_stream(output.stdout.as_slice()) {
        match message.context("reading the nested cargo's JSON messages")? {
            Message::CompilerArtifact(Artifact {
                executable: Some(executable),
                target,
                ..
            }) => binaries.push((target.name, executable.into_std_path_buf())),
            Message::CompilerMessage(m) => {
                if let Some(rendered) = &m.message.rendered {
                    diagnostics.push_str(rendered);
                }
                // Only the eBPF crate's own warnings (dependencies' lints
                // are capped): one line each, where it is.
                if output.status.success() && m.message.level == DiagnosticLevel::Warning {
                    let at = m
                        .message
                        .spans
                        .iter()
                        .find(|s| s.is_primary)
                        .map(|s| format!(" at {}:{}", s.file_name, s.line_start))
                        .unwrap_or_default();
                    println!("cargo:warning={package}: {}{at}", m.message.message);
                }
            }
            Message::TextLine(line) => {
                diagnostics.push_str(&line);
                diagnostics.push('\n');
            }
            _ => {}
        }
    }
    if !output.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{diagnostics}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if binaries.is_empty() {
        bail!("{cmd:?} built no binary");
    }
    for (name, binary) in binaries {
        let dst = out_dir.join(&name);
        let bytes = std::fs::copy(&binary, &dst)
            .with_context(|| format!("copying {} to {}", binary.display(), dst.display()))?;
        // The one line a rebuild prints (cargo shows a build script's
        // output only as warnings).
        println!("cargo:warning=built the eBPF filter {name} with {toolchain} ({bytes} bytes)");
    }
    Ok(())
}
