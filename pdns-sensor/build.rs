//! Builds the eBPF socket filter (`pdns-ebpf`) for `bpfel-unknown-none` and
//! leaves the object at `$OUT_DIR/pdns-ebpf`, where `capture::filter`
//! embeds it with `include_bytes_aligned!`.
//!
//! The userspace crate builds on stable; the eBPF crate needs nightly
//! (`-Z build-std=core`, since the BPF target has no prebuilt `core`) and
//! `bpf-linker`. aya-build runs the nested `cargo build` through
//! `rustup run <toolchain>`. The toolchain is `nightly` unless
//! `PDNS_EBPF_TOOLCHAIN` pins one (e.g. `nightly-2026-05-19`): every nightly
//! update changes the libLLVM that bpf-linker was built against, so a pinned
//! nightly keeps the build reproducible. `cargo xtask setup` installs both
//! (see `../shared/docs/capture.md` §3).

use anyhow::{Context, anyhow};

fn main() -> anyhow::Result<()> {
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
    // aya-build reruns on changes to the eBPF crate; its shared types live
    // in pdns-common.
    if let Some(common) = metadata
        .packages
        .iter()
        .find(|p| p.name.as_str() == "pdns-common")
        .and_then(|p| p.manifest_path.parent())
    {
        println!("cargo:rerun-if-changed={common}");
    }
    let pinned = std::env::var("PDNS_EBPF_TOOLCHAIN").ok();
    let toolchain = match pinned.as_deref() {
        None | Some("") | Some("nightly") => aya_build::Toolchain::Nightly,
        Some(t) => aya_build::Toolchain::Custom(t),
    };
    aya_build::build_ebpf(
        [aya_build::Package {
            name: ebpf.name.as_str(),
            root_dir: root.as_str(),
            ..Default::default()
        }],
        toolchain,
    )
    .context(
        "building the eBPF filter (needs the nightly toolchain with rust-src and bpf-linker: \
         run `cargo xtask setup`)",
    )
}
