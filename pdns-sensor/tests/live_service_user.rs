//! `run` started the way the systemd unit starts it: as an unprivileged
//! user holding only the capabilities capture needs (CAP_NET_RAW for the
//! rings, CAP_BPF and CAP_PERFMON for the eBPF filter, as ambient
//! capabilities), with `--user` naming that same user. It loads the eBPF filter, opens its
//! rings, sheds the capabilities — on every thread, RocksDB's included —
//! and captures everything.

mod live_support;

use std::time::Duration;

use live_support::*;

/// nobody/nogroup on Debian.
const NOBODY: u32 = 65534;

/// `setpriv` as nobody with exactly `caps` (e.g. `+net_raw,+bpf`) in the
/// inheritable, ambient and bounding sets, as systemd's `User=`,
/// `AmbientCapabilities=` and `CapabilityBoundingSet=` leave a service.
fn as_nobody_with(caps: &str) -> Vec<String> {
    let set = format!("-all,{caps}");
    vec![
        "setpriv".into(),
        format!("--reuid={NOBODY}"),
        format!("--regid={NOBODY}"),
        "--clear-groups".into(),
        format!("--inh-caps={set}"),
        format!("--ambient-caps={set}"),
        format!("--bounding-set={set}"),
        "--".into(),
    ]
}

/// Every thread's `Name`, `Uid` and capability sets.
fn threads(pid: i32) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(entry.unwrap().path().join("status")).unwrap();
        let fields: Vec<&str> = status
            .lines()
            .filter(|l| {
                [
                    "Name:",
                    "Uid:",
                    "CapInh:",
                    "CapPrm:",
                    "CapEff:",
                    "CapAmb:",
                    "CapBnd:",
                    "NoNewPrivs:",
                ]
                .iter()
                .any(|f| l.starts_with(f))
            })
            .collect();
        out.push(
            fields
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        );
    }
    out
}

#[test]
fn service_user_with_capabilities_captures_and_then_holds_none() {
    require(&["ip", "tcpreplay", "setpriv"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("svc", false);
    let pairs = 20_000;
    let (file, expected) = link.traffic_file(dir.path(), pairs, 500);
    let wrapper = as_nobody_with("+net_raw,+bpf,+perfmon");
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let sensor = Sensor::start_owned(
        &link.b,
        Some((NOBODY, NOBODY)),
        &wrapper,
        &["-i", link.if_b, "--threads", "2", "--user", "nobody"],
    );

    let threads = threads(sensor.proc.pid());
    // The main thread, 2 ring threads with their store writers, RocksDB's.
    assert!(threads.len() >= 5, "{threads:#?}");
    for t in &threads {
        assert!(
            t.contains(&format!("Uid: {NOBODY} {NOBODY} {NOBODY} {NOBODY}"))
                && t.contains("CapInh: 0000000000000000")
                && t.contains("CapPrm: 0000000000000000")
                && t.contains("CapEff: 0000000000000000")
                && t.contains("CapAmb: 0000000000000000")
                // No execve can grant privileges: no_new_privs, and the
                // bounding set the service manager gave (CAP_NET_RAW,
                // CAP_PERFMON, CAP_BPF; without CAP_SETPCAP the sensor
                // cannot empty it, and no_new_privs makes it harmless).
                && t.contains("CapBnd: 000000c000002000")
                && t.contains("NoNewPrivs: 1"),
            "a thread kept a capability or a way to regain one: {t}\n{threads:#?}"
        );
    }

    link.replay(&file, 1);
    let stopped = sensor.stop();
    let stderr = &stopped.stderr;
    assert!(
        stderr.contains(
            "running as nobody (uid 65534, gid 65534), no capabilities; no execve can grant \
             any (no_new_privs, bounding set 0xc000002000 kept (no CAP_SETPCAP to empty it))"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("ebpf filter"), "{stderr}");
    let s = &stopped.stats;
    assert_eq!(s["filter"], "ebpf", "{s:#}");
    assert_eq!(num(s, &["dns_responses"]), pairs as u64, "{s:#}");
    assert_eq!(num(&s["interfaces"][link.if_b], &["drops"]), 0, "{s:#}");
    // The eBPF counters stay readable without capabilities on kernels
    // from 6.5; before, reading a map needs CAP_BPF and they are absent.
    if let Some(accepted) = s["filter_stats"]["accepted"].as_u64() {
        assert_eq!(accepted, 2 * pairs as u64, "{s:#}");
    }
    let stored = counts(&dump(&stopped.db));
    assert_eq!(stored.values().sum::<u64>(), pairs as u64);
    assert_eq!(stored.len(), expected.len());
    // The database belongs to the service user, as systemd's
    // StateDirectory= would have it.
    let meta = std::fs::metadata(&stopped.db).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), NOBODY);
}

/// An unprivileged user cannot become another one: said before anything
/// is set up, naming what is missing.
#[test]
fn a_service_user_cannot_switch_to_another_user() {
    require(&["ip", "setpriv"]);
    let ns = Netns::new("svcu");
    let dir = tempfile::tempdir().unwrap();
    let (status, _, stderr) = output(
        ns.cmd("setpriv")
            .args([
                "--reuid=1",
                "--regid=1",
                "--clear-groups",
                "--inh-caps=-all,+net_raw",
                "--ambient-caps=-all,+net_raw",
                "--bounding-set=-all,+net_raw",
                "--",
                SENSOR,
                "run",
                "--no-api",
                "-i",
                "lo",
                "--user",
                "nobody",
                "--db",
            ])
            .arg(dir.path().join("db"))
            .env_remove("PDNS_DB"),
        Duration::from_secs(30),
    );
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "--user nobody: running as uid 1, and switching to uid 65534 needs root \
             (this process lacks CAP_SETUID, CAP_SETGID, CAP_CHOWN)"
        ),
        "{stderr}"
    );
    assert!(!dir.path().join("db").exists());
}

/// `--explain-filter` under the unit's capabilities: the explaining
/// program may need CAP_PERFMON besides CAP_BPF (the verifier refuses its
/// stack use to loaders without it on recent kernels); if it cannot be
/// loaded, the error says so rather than leaving the operator with the
/// verifier's log alone.
#[test]
fn explain_filter_without_cap_perfmon_names_it() {
    require(&["ip", "setpriv"]);
    let ns = Netns::new("svce");
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let wrapper = as_nobody_with("+net_raw,+bpf");
    let mut cmd = ns.cmd(&wrapper[0]);
    cmd.args(&wrapper[1..])
        .arg(SENSOR)
        .args([
            "run",
            "--no-api",
            "-i",
            "lo",
            "--explain-filter",
            "3",
            "--db",
        ])
        .arg(dir.path().join("db"))
        .env_remove("PDNS_DB");
    let mut child = Proc::new(
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        "pdns-sensor run --explain-filter",
    );
    match child.wait_timeout(Duration::from_secs(5)) {
        Some(status) => {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.child.stderr.as_mut().unwrap(), &mut stderr)
                .unwrap();
            assert!(!status.success(), "{stderr}");
            assert!(
                stderr.contains(
                    "the explaining program needs CAP_PERFMON besides CAP_BPF, and this \
                     process lacks it"
                ),
                "{stderr}"
            );
        }
        // This kernel's verifier accepts it with CAP_BPF alone: it runs.
        None => {
            child.signal(libc::SIGTERM);
            let status = child.wait_timeout(Duration::from_secs(30)).unwrap();
            assert!(status.success());
        }
    }
}
