//! Installs build and test dependencies on Debian 12, idempotently: each
//! step first checks whether its result is already there.
//!
//! The eBPF side needs three things a stock Rust install lacks: the nightly
//! toolchain's `rust-src` (the `bpfel-unknown-none` target has no prebuilt
//! `core`), and `bpf-linker` built against the *nightly's own* libLLVM, so
//! no Debian LLVM is needed and the LLVM versions always agree. bpf-linker
//! finds that libLLVM at run time through its RUNPATH, `/opt/bpf-llvm/lib`,
//! where both the link name and the SONAME point into the nightly's sysroot.
//! Every nightly update changes the SONAME, so a stamp file records which
//! one bpf-linker was built for and a mismatch rebuilds it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::sh;

/// Debian packages the `import-bro-pdns` test starts its own servers from
/// (PostgreSQL 15: `initdb` and `postgres`; the postinst's cluster is not
/// started, see [`install`]).
const BRO_PDNS_TEST_PACKAGES: [&str; 1] = ["postgresql-15"];

/// Debian packages the build needs: libclang for RocksDB's bindgen, a C++
/// compiler for RocksDB itself, and make for jemalloc (the binary's
/// allocator).
const BUILD_PACKAGES: [&str; 4] = ["libclang-dev", "clang", "g++", "make"];

/// Debian packages the tests and benchmarks drive: tshark, an independent
/// decoder to cross-check ours; dnsdbq, the analysts' DNSDB/CIRCL client;
/// wrk, the HTTP load generator of the query benchmark; curl, the HTTPS
/// client of the TLS tests, and ca-certificates, whose bundle they
/// replace with a test CA for dnsdbq (in a mount namespace of its own).
const TEST_PACKAGES: [&str; 5] = ["tshark", "dnsdbq", "wrk", "curl", "ca-certificates"];

/// Python client libraries of the passive DNS APIs, driven by the API tests
/// (pymisp for the shipped MISP module): package, module to import, and
/// whether to install it without its dependencies. misp-modules is there
/// for its unmodified `farsight_passivedns` module (the Flex tests); the
/// package depends on dozens of libraries for its other modules, so it
/// comes alone, with what that module and the package's loader import
/// (dnsdb2, pymisp, psutil). SQLAlchemy and psycopg2 write bro-pdns's
/// Python-generation databases, in SQLite and PostgreSQL, for the
/// `import-bro-pdns` test (`tests/bro_pdns_import.rs`).
const PYTHON_PACKAGES: [(&str, &str, bool); 7] = [
    ("dnsdb2", "dnsdb2", false),
    ("pypdns", "pypdns", false),
    ("pymisp", "pymisp", false),
    ("psutil", "psutil", false),
    (
        "misp-modules",
        "misp_modules.modules.expansion.farsight_passivedns",
        true,
    ),
    ("sqlalchemy", "sqlalchemy", false),
    ("psycopg2-binary", "psycopg2", false),
];

/// Peer systems the benchmark measures beside the sensor on the same input:
/// balboa with its RocksDB backend (the storage design we
/// follow) and dnscap (DNS-OARC's capture and decode tool); tshark is
/// already in [`TEST_PACKAGES`]. passivedns is not in Debian: the benchmark
/// reports it missing unless a `passivedns` binary is on `PATH`.
const PEER_PACKAGES: [&str; 3] = ["balboa", "balboa-backend-rocksdb", "dnscap"];

/// Debian packages the live-capture tests drive: a real DNS server
/// (`dnsmasq-base` is the binary alone, without the system service that
/// `dnsmasq` would start on the host), `dig`, `tcpreplay` for injection,
/// `tcpdump` for debugging, `ip` for namespaces and veth pairs, `ping` for
/// non-DNS traffic.
const CAPTURE_TEST_PACKAGES: [&str; 6] = [
    "dnsmasq-base",
    "dnsutils",
    "tcpreplay",
    "tcpdump",
    "iproute2",
    "iputils-ping",
];

/// Debian packages the manual page tests render with: `man -l` (man-db)
/// and `groff -man` (groff-base).
const MANPAGE_TEST_PACKAGES: [&str; 2] = ["man-db", "groff-base"];

/// Debian packages the ClickHouse tests start servers from: Debian's
/// ClickHouse 18.16 (the postinst starts nothing without systemd; each test
/// runs its own server on loopback) and ZooKeeper for replicated tables.
const CLICKHOUSE_TEST_PACKAGES: [&str; 2] = ["clickhouse-server", "zookeeper"];

/// Debian packages the dnstap tests drive: real dnstap senders (Unbound,
/// PowerDNS Recursor, BIND) resolving through a real authoritative server
/// (NSD, which logs AUTH_RESPONSE itself: Debian builds it with dnstap),
/// dnsdist in front of Unbound (CLIENT_RESPONSE),
/// `fstrm_capture`/`fstrm_replay` (fstrm-bin) and `dnstap-ldns`, an
/// independent decoder. Their services are not started (see [`install`]);
/// each test runs its own servers inside its own network namespaces. NSD
/// and Unbound also serve the zone of every record type whose answers the
/// rendering test holds against `dig`'s text (`tests/dig_rendering.rs`).
const DNSTAP_TEST_PACKAGES: [&str; 7] = [
    "unbound",
    "nsd",
    "pdns-recursor",
    "bind9",
    "dnsdist",
    "fstrm-bin",
    "dnstap-ldns",
];

/// Debian packages the web page's tests (`tests/web_page.rs`) drive: a
/// real browser, Chromium, headless, through ChromeDriver's WebDriver
/// interface.
const BROWSER_TEST_PACKAGES: [&str; 2] = ["chromium", "chromium-driver"];

/// Debian packages `cargo xtask deb` needs: dpkg-shlibdeps (dpkg-dev),
/// with which cargo-deb derives the package's library dependencies.
const PACKAGING_PACKAGES: [&str; 1] = ["dpkg-dev"];

/// Debian packages the package test (`tests/deb_package.rs`) drives:
/// `systemd-analyze` (systemd; installing it does not make it PID 1) to
/// verify and score the unit, libseccomp's Python binding to apply the
/// unit's system call filter the way systemd would, adduser for the
/// maintainer scripts.
const DEB_TEST_PACKAGES: [&str; 3] = ["systemd", "python3-seccomp", "adduser"];

/// The pinned cargo-deb release, installed from crates.io.
const CARGO_DEB: (&str, &str) = ("cargo-deb", "3.8.0");

/// The pinned cargo-fuzz release (`cargo xtask fuzz`), installed from
/// crates.io; it drives the nightly toolchain `setup` already installs.
const CARGO_FUZZ: (&str, &str) = ("cargo-fuzz", "0.13.1");

/// The pinned bpf-linker release (the aya 0.14 line's linker).
const BPF_LINKER: &str = "bpf-linker@0.13.0";

/// Where bpf-linker's RUNPATH points: `lib/` holds the nightly's libLLVM.
const BPF_LLVM_PREFIX: &str = "/opt/bpf-llvm";

/// The toolchain that builds the eBPF object; `pdns-sensor/build.rs` reads
/// the same variable. Pin it (e.g. `nightly-2026-05-19`) to keep
/// bpf-linker's libLLVM stable.
pub(crate) fn ebpf_toolchain() -> String {
    std::env::var("PDNS_EBPF_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_string())
}

/// Everything: build, tests and benchmarks (`cargo xtask setup`, `test`).
pub(crate) fn run() -> Result<()> {
    let wanted: Vec<&str> = BUILD_PACKAGES
        .iter()
        .chain(TEST_PACKAGES.iter())
        .chain(CAPTURE_TEST_PACKAGES.iter())
        .chain(PEER_PACKAGES.iter())
        .chain(MANPAGE_TEST_PACKAGES.iter())
        .chain(CLICKHOUSE_TEST_PACKAGES.iter())
        .chain(DNSTAP_TEST_PACKAGES.iter())
        .chain(PACKAGING_PACKAGES.iter())
        .chain(DEB_TEST_PACKAGES.iter())
        .chain(BROWSER_TEST_PACKAGES.iter())
        .chain(BRO_PDNS_TEST_PACKAGES.iter())
        .copied()
        .collect();
    install(&wanted)?;
    python_setup()?;
    build_toolchain()?;
    cargo_deb_setup()
}

/// What building the Debian package needs (`cargo xtask deb`).
pub(crate) fn packaging() -> Result<()> {
    build()?;
    install(&PACKAGING_PACKAGES)?;
    cargo_deb_setup()
}

/// What fuzzing needs (`cargo xtask fuzz`): the build toolchain (nightly
/// included) and cargo-fuzz.
pub(crate) fn fuzzing() -> Result<()> {
    build()?;
    cargo_install_pinned("fuzz", CARGO_FUZZ)
}

/// Installs the pinned cargo-deb unless `cargo deb --version` names it.
fn cargo_deb_setup() -> Result<()> {
    cargo_install_pinned("deb", CARGO_DEB)
}

/// Installs a cargo subcommand's pinned release unless `cargo SUBCOMMAND
/// --version` names it.
fn cargo_install_pinned(subcommand: &str, (name, version): (&str, &str)) -> Result<()> {
    let installed = crate::cargo()
        .args([subcommand, "--version"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).trim() == format!("{name} {version}")
        });
    if !installed {
        sh(crate::cargo().args(["install", &format!("{name}@{version}"), "--locked"]))?;
    }
    Ok(())
}

/// What building and running the sensor needs (`cargo xtask run`).
pub(crate) fn build() -> Result<()> {
    install(&BUILD_PACKAGES)?;
    build_toolchain()
}

/// Installs the Debian packages not installed yet.
fn install(wanted: &[&str]) -> Result<()> {
    let missing: Vec<&str> = wanted
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
        // Without systemd as PID 1 a package's maintainer scripts start its
        // service through its init script (a resolver on the host's port
        // 53, say). The tests start their own servers: forbid it while
        // installing, as Debian's policy-rc.d interface allows.
        let _no_services = NoServiceStarts::install();
        sh(Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    Ok(())
}

/// rustfmt and clippy for the stable toolchain; the eBPF toolchain.
fn build_toolchain() -> Result<()> {
    for component in ["rustfmt", "clippy"] {
        if !rustup_has(None, component) {
            sh(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    ebpf_toolchain_setup()
}

/// Installs the Python API clients with pip unless they import already.
fn python_setup() -> Result<()> {
    for (package, module, no_deps) in PYTHON_PACKAGES {
        let present = Command::new("python3")
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !present {
            let deps: &[&str] = if no_deps { &["--no-deps"] } else { &[] };
            let pip = || {
                Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet"])
                    .args(deps)
                    .arg(package)
                    .status()
            };
            // Debian's own python3 refuses plain pip installs (PEP 668).
            if !pip().is_ok_and(|s| s.success()) {
                sh(Command::new("python3")
                    .args(["-m", "pip", "install", "--quiet"])
                    .args(deps)
                    .args(["--break-system-packages", package]))?;
            }
        }
    }
    Ok(())
}

/// The nightly, its `rust-src` and `clippy`, and bpf-linker.
fn ebpf_toolchain_setup() -> Result<()> {
    let toolchain = ebpf_toolchain();
    if !toolchain_installed(&toolchain) {
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            &toolchain,
            "--profile",
            "minimal",
        ]))?;
    }
    for component in ["rust-src", "clippy"] {
        if !rustup_has(Some(&toolchain), component) {
            sh(Command::new("rustup").args([
                "component",
                "add",
                component,
                "--toolchain",
                &toolchain,
            ]))?;
        }
    }

    // The nightly's LLVM: its major picks bpf-linker's `llvm-NN` feature,
    // its shared library is what bpf-linker links against.
    let version = output(
        Command::new("rustc")
            .arg(format!("+{toolchain}"))
            .arg("-vV"),
    )?;
    let major = version
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .context("`rustc -vV` of the eBPF toolchain names no LLVM version")?
        .trim()
        .to_string();
    let sysroot = output(
        Command::new("rustc")
            .arg(format!("+{toolchain}"))
            .args(["--print", "sysroot"]),
    )?;
    let sysroot_lib = Path::new(sysroot.trim()).join("lib");
    let soname = std::fs::read_dir(&sysroot_lib)
        .with_context(|| format!("listing {}", sysroot_lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so."))
        .with_context(|| format!("no libLLVM.so.* in {}", sysroot_lib.display()))?;

    let prefix_lib = Path::new(BPF_LLVM_PREFIX).join("lib");
    let stamp = Path::new(BPF_LLVM_PREFIX).join("built-for");
    let stamp_ok = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == soname);
    if stamp_ok && bpf_linker_runs() {
        return Ok(());
    }
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {} (run as root)", prefix_lib.display()))?;
    // The name the llvm-sys build looks for, and the SONAME found through
    // bpf-linker's RUNPATH at run time.
    for name in ["libLLVM.so", soname.as_str()] {
        let link = prefix_lib.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(sysroot_lib.join(&soname), &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    sh(crate::cargo()
        .args([
            "install",
            BPF_LINKER,
            "--locked",
            "--force",
            "--no-default-features",
        ])
        .args(["--features", &format!("llvm-{major}")])
        .env("LLVM_PREFIX", BPF_LLVM_PREFIX))?;
    std::fs::write(&stamp, format!("{soname}\n"))
        .with_context(|| format!("writing {}", stamp.display()))?;
    if !bpf_linker_runs() {
        bail!("bpf-linker was installed but does not run (is ~/.cargo/bin on PATH?)");
    }
    Ok(())
}

fn bpf_linker_runs() -> bool {
    Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("starting {}", crate::describe(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            crate::describe(cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

fn toolchain_installed(toolchain: &str) -> bool {
    Command::new("rustup")
        .args(["run", toolchain, "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn rustup_has(toolchain: Option<&str>, component: &str) -> bool {
    let mut cmd = Command::new("rustup");
    cmd.args(["component", "list", "--installed"]);
    if let Some(t) = toolchain {
        cmd.args(["--toolchain", t]);
    }
    cmd.output().is_ok_and(|o| {
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

/// A `/usr/sbin/policy-rc.d` that refuses every service start (exit 101),
/// removed again on drop; an existing one (container images have one) is
/// left alone.
struct NoServiceStarts(Option<&'static str>);

impl NoServiceStarts {
    const PATH: &'static str = "/usr/sbin/policy-rc.d";

    fn install() -> NoServiceStarts {
        use std::os::unix::fs::PermissionsExt;
        if Path::new(Self::PATH).exists() {
            return NoServiceStarts(None);
        }
        let written = std::fs::write(
            Self::PATH,
            "#!/bin/sh\n# cargo xtask setup: start no service while installing\nexit 101\n",
        )
        .and_then(|()| {
            std::fs::set_permissions(Self::PATH, std::fs::Permissions::from_mode(0o755))
        });
        match written {
            Ok(()) => NoServiceStarts(Some(Self::PATH)),
            Err(e) => {
                eprintln!("xtask: could not write {}: {e}", Self::PATH);
                NoServiceStarts(None)
            }
        }
    }
}

impl Drop for NoServiceStarts {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
