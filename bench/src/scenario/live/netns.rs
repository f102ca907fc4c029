//! Two private network namespaces joined by a veth pair, and bounded
//! command runs.
//!
//! Frames written to the sending end (`veth-a` in the tx namespace) arrive
//! on the receiving end (`veth-b` in the rx namespace) and go nowhere else:
//! neither end has an address, IPv6 is off (no neighbour discovery noise),
//! and the rx namespace's stack drops what it receives as martians. The
//! namespaces (and with them the veth pair) are deleted when the
//! [`VethPair`] is dropped.

use std::io::{Read, Seek, SeekFrom};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The receiving end's MAC address (frames are retargeted to it).
pub const RX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];
/// The sending end's MAC address.
pub const TX_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
/// Interface names inside the namespaces.
pub const TX_IF: &str = "veth-a";
pub const RX_IF: &str = "veth-b";

/// Longest any setup command (`ip`, `sysctl`) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A named network namespace, deleted on drop.
pub struct Netns(pub String);

impl Netns {
    fn new(tag: &str) -> Result<Netns> {
        let name = format!("pdns-bench-{}-{tag}", std::process::id());
        run_bounded(
            Command::new("ip").args(["netns", "add", &name]),
            SETUP_TIMEOUT,
        )?;
        let ns = Netns(name);
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        for s in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            ns.run(&["sysctl", "-qw", s])?;
        }
        Ok(ns)
    }

    /// `program` run inside the namespace (`ip netns exec` execs it, so
    /// the child's pid is the program's).
    pub fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0, program]);
        c
    }

    fn run(&self, argv: &[&str]) -> Result<String> {
        run_bounded(self.cmd(argv[0]).args(&argv[1..]), SETUP_TIMEOUT)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run_bounded(
            Command::new("ip").args(["netns", "del", &self.0]),
            SETUP_TIMEOUT,
        );
    }
}

/// The tx and rx namespaces and the veth pair between them.
pub struct VethPair {
    pub tx: Netns,
    pub rx: Netns,
}

impl VethPair {
    pub fn new() -> Result<VethPair> {
        let tx = Netns::new("tx")?;
        let rx = Netns::new("rx")?;
        run_bounded(
            Command::new("ip").args([
                "link", "add", TX_IF, "netns", &tx.0, "type", "veth", "peer", "name", RX_IF,
                "netns", &rx.0,
            ]),
            SETUP_TIMEOUT,
        )?;
        let mac = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        tx.run(&["ip", "link", "set", TX_IF, "address", &mac(TX_MAC), "up"])?;
        rx.run(&["ip", "link", "set", RX_IF, "address", &mac(RX_MAC), "up"])?;
        Ok(VethPair { tx, rx })
    }
}

/// Runs `cmd` to completion within `timeout` (killed after that) and
/// returns its stdout followed by its stderr; a non-zero exit is an error.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> Result<String> {
    // Files, not pipes: a chatty child can never block on a full pipe.
    let mut out = tempfile::tempfile()?;
    let mut err = tempfile::tempfile()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(err.try_clone()?)
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{cmd:?} did not finish within {} s", timeout.as_secs());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut text = String::new();
    for f in [&mut out, &mut err] {
        f.seek(SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes)?;
        text.push_str(&String::from_utf8_lossy(&bytes));
    }
    if !status.success() {
        bail!("{cmd:?}: {status}: {}", text.trim());
    }
    Ok(text)
}

/// Whether `tool` is on the PATH.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(tool)).is_ok_and(|m| {
                use std::os::unix::fs::PermissionsExt;
                m.is_file() && m.permissions().mode() & 0o111 != 0
            })
        })
    })
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_runs() {
        let text = run_bounded(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(text, "out\nerr\n");
        let e = run_bounded(
            Command::new("sh").args(["-c", "echo nope >&2; exit 2"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("nope"));
        let start = Instant::now();
        let e =
            run_bounded(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(format!("{e:#}").contains("did not finish"));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(have("sh"));
        assert!(!have("surely-no-such-tool-here"));
    }
}
