//! The Debian package, end to end on this machine, without systemd as
//! PID 1: `cargo xtask deb` builds it; `dpkg -i` installs it (user, state
//! directory, conffile, unit, completions, manual pages);
//! `systemd-analyze verify` finds nothing wrong with the installed unit and
//! `systemd-analyze security` scores it; the installed binary then runs the
//! unit's `ExecStart=` in the unit's sandbox (see `deb_support::sandbox`:
//! its user, exactly its capabilities, its file system view, its seccomp
//! filters), capturing replayed DNS traffic in a network namespace whose
//! default route leads to the capture interface. Records are stored, the
//! API answers, the unit's stop signal flushes everything, a second start
//! serves the first run's records; `dpkg --purge` leaves nothing but the
//! database, and the user and group are gone.
//!
//! The machine is left as it was: the test refuses to start where the
//! package, its user or its directories exist already, and a guard purges
//! the package and removes the database, the user and the group whatever
//! happens. It needs root, `dpkg`, `systemd-analyze`, libseccomp's Python
//! binding and the live-capture tools (`cargo xtask setup` installs them).

mod deb_support;
mod live_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use deb_support::sandbox;
use deb_support::unit::Service;
use live_support::*;

const PACKAGE: &str = "pdns-sensor";
const USER: &str = "pdns-sensor";
const STATE: &str = "/var/lib/pdns-sensor";
const CONFIG_DIR: &str = "/etc/pdns-sensor";
const UNIT: &str = "/usr/lib/systemd/system/pdns-sensor.service";
const BIN: &str = "/usr/bin/pdns-sensor";
const PYTHON: &str = "/usr/bin/python3";
const MAN_CACHE: &str = "/var/cache/man/";

/// `Some(line)` from `getent DATABASE KEY`, `None` if it has no entry.
fn getent(database: &str, key: &str) -> Option<String> {
    let out = Command::new("getent")
        .args([database, key])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// dpkg's status of the package (`""` when dpkg does not know it).
fn dpkg_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", PACKAGE])
        .stderr(Stdio::null())
        .output()
        .expect("dpkg-query must be installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Fails unless nothing of the package is on this machine: the test must
/// neither damage a real installation nor take its data for its own.
fn require_untouched_machine() {
    let status = dpkg_status();
    assert!(
        status.is_empty() || status.contains("not-installed"),
        "the package {PACKAGE} is on this machine ({status}): this test installs and purges \
         it, and will not touch an existing installation"
    );
    for (db, key) in [("passwd", USER), ("group", USER)] {
        assert!(
            getent(db, key).is_none(),
            "the {db} entry {key} exists: this test creates and removes it"
        );
    }
    for dir in [STATE, CONFIG_DIR] {
        assert!(
            !Path::new(dir).exists(),
            "{dir} exists: this test would take it over and remove it"
        );
    }
}

/// Puts the machine back whatever happened: purges the package, removes
/// the database, the configuration directory, the user, the group, and the
/// formatted pages man-db cached for the package's manual pages.
struct Cleanup;

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(sections) = std::fs::read_dir(MAN_CACHE) {
            for section in sections.flatten() {
                if let Ok(pages) = std::fs::read_dir(section.path()) {
                    for page in pages.flatten() {
                        if page
                            .file_name()
                            .to_string_lossy()
                            .starts_with("pdns-sensor")
                        {
                            let _ = std::fs::remove_file(page.path());
                        }
                    }
                }
            }
        }
        let quiet = |cmd: &mut Command| {
            let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        };
        if !dpkg_status().is_empty() {
            quiet(Command::new("dpkg").args(["--purge", PACKAGE]));
        }
        let _ = std::fs::remove_dir_all(STATE);
        let _ = std::fs::remove_dir_all(CONFIG_DIR);
        if getent("passwd", USER).is_some() {
            quiet(Command::new("deluser").args(["--system", USER]));
        }
        if getent("group", USER).is_some() {
            quiet(Command::new("delgroup").args(["--system", USER]));
        }
    }
}

/// `cargo xtask deb`, as a developer runs it; returns the package's path.
fn build_package() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = output(
        Command::new(cargo).args(["xtask", "deb"]).current_dir(root),
        Duration::from_secs(30 * 60),
    );
    assert!(
        out.0.success(),
        "cargo xtask deb failed:\n{}{}",
        out.1,
        out.2
    );
    let path = PathBuf::from(
        out.1
            .lines()
            .last()
            .expect("cargo xtask deb printed a path"),
    );
    assert!(
        path.extension().is_some_and(|e| e == "deb") && path.is_file(),
        "{}",
        path.display()
    );
    path
}

fn run_ok(cmd: &mut Command) -> String {
    run(cmd, Duration::from_secs(120))
}

/// A number from the unit's `TimeoutStopSec=` (`90s`, `2min`, `90`).
fn seconds(value: &str) -> Duration {
    let (n, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map_or((value, ""), |i| value.split_at(i));
    let n: u64 = n
        .parse()
        .unwrap_or_else(|_| panic!("not a time span: {value}"));
    match unit {
        "" | "s" => Duration::from_secs(n),
        "min" => Duration::from_secs(60 * n),
        other => panic!("time unit {other} is not read here"),
    }
}

fn signal_number(name: &str) -> i32 {
    match name {
        "SIGTERM" => libc::SIGTERM,
        "SIGINT" => libc::SIGINT,
        other => panic!("KillSignal={other} is not read here"),
    }
}

/// The installed service, started in its sandbox.
struct Running {
    proc: Proc,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    /// Starts the unit's command (plus `extra`) in `netns` and waits until
    /// it captures.
    fn start(unit: &Service, netns: &Netns, extra: &[&str]) -> Running {
        let mut cmd = sandbox::command(unit, &netns.name, extra);
        let child = cmd
            .env_remove("PDNS_DB")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut proc = Proc::new(child, "the sandboxed service");
        let stderr = proc.child.stderr.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, ready) = std::sync::mpsc::channel();
        {
            let lines = std::sync::Arc::clone(&lines);
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                {
                    let capturing = line.contains("capturing DNS on");
                    lines.lock().unwrap().push(line);
                    if capturing {
                        let _ = tx.send(());
                    }
                }
            });
        }
        let service = Running { proc, lines };
        if ready.recv_timeout(Duration::from_secs(30)).is_err() {
            panic!("the service did not start capturing:\n{}", service.stderr());
        }
        service
    }

    fn stderr(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Stops it as systemd would (the unit's KillSignal=), waiting at most
    /// its TimeoutStopSec=; returns stderr and how long the stop took.
    fn stop(mut self, unit: &Service) -> (String, Duration) {
        let signal = signal_number(unit.get("KillSignal").unwrap_or("SIGTERM"));
        let timeout = seconds(unit.get("TimeoutStopSec").unwrap_or("90s"));
        let started = Instant::now();
        self.proc.signal(signal);
        let status = self.proc.wait_timeout(timeout).unwrap_or_else(|| {
            panic!(
                "the service did not stop within TimeoutStopSec ({timeout:?}):\n{}",
                self.stderr()
            )
        });
        let took = started.elapsed();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && !self.stderr().contains("captured for") {
            std::thread::sleep(Duration::from_millis(20));
        }
        let stderr = self.stderr();
        assert!(status.success(), "the service failed ({status}):\n{stderr}");
        (stderr, took)
    }
}

/// Every thread's status lines of interest, one string per thread.
fn threads(pid: i32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|t| std::fs::read_to_string(t.unwrap().path().join("status")).unwrap())
        .collect()
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim()
}

/// An HTTP GET from inside `netns` (the API listens on its loopback).
fn http_get(netns: &Netns, url: &str) -> String {
    netns.run(&[
        PYTHON,
        "-c",
        "import sys, urllib.request; \
         print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())",
        url,
    ])
}

/// The stored records as (name, count), read as root with `dump`.
fn stored(db: &str) -> std::collections::BTreeMap<String, u64> {
    counts(&dump(Path::new(db)))
        .into_iter()
        .map(|((name, _, _), n)| (name, n))
        .collect()
}

#[test]
fn package_installs_runs_in_its_sandbox_and_purges_clean() {
    require(&[
        "ip",
        "tcpreplay",
        "setpriv",
        "unshare",
        "dpkg",
        "getent",
        "systemd-analyze",
    ]);
    assert!(
        Command::new(PYTHON)
            .args(["-c", "import seccomp"])
            .status()
            .is_ok_and(|s| s.success()),
        "the sandbox needs libseccomp's Python binding: run `cargo xtask setup` (python3-seccomp)"
    );
    require_untouched_machine();
    let deb = build_package();
    let _cleanup = Cleanup;

    // Install.
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    assert!(dpkg_status().contains("install ok installed"));
    let passwd = getent("passwd", USER).expect("the package made its user");
    let fields: Vec<&str> = passwd.split(':').collect();
    assert_eq!(fields[5], STATE, "{passwd}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{passwd}");
    assert!(
        fields[2].parse::<u32>().unwrap() < 1000,
        "a system user: {passwd}"
    );
    let uid = fields[2].to_string();
    assert!(
        getent("group", USER).is_some(),
        "the package made its group"
    );
    let meta = std::fs::metadata(STATE).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta).to_string(),
        uid,
        "{STATE} belongs to {USER}"
    );
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o750
    );
    let conffiles = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", PACKAGE]));
    assert!(
        conffiles.contains("/etc/pdns-sensor/pdns-sensor.toml"),
        "{conffiles}"
    );
    let version = run_ok(Command::new(BIN).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("pdns-sensor {}", env!("CARGO_PKG_VERSION"))
    );
    let files = run_ok(Command::new("dpkg").args(["-L", PACKAGE]));
    for path in [
        BIN,
        UNIT,
        "/etc/pdns-sensor/pdns-sensor.toml",
        "/usr/share/bash-completion/completions/pdns-sensor",
        "/usr/share/zsh/vendor-completions/_pdns-sensor",
        "/usr/share/fish/vendor_completions.d/pdns-sensor.fish",
        "/usr/share/man/man1/pdns-sensor.1.gz",
        "/usr/share/man/man1/pdns-sensor-run.1.gz",
        "/usr/share/doc/pdns-sensor/copyright",
        "/usr/share/doc/pdns-sensor/README.md",
    ] {
        assert!(
            files.lines().any(|l| l == path),
            "{path} not in the package:\n{files}"
        );
    }
    let copyright = std::fs::read_to_string("/usr/share/doc/pdns-sensor/copyright").unwrap();
    assert!(
        copyright.contains("License: MIT OR Apache-2.0"),
        "{copyright}"
    );
    // man finds the installed pages by name.
    let page = run_ok(Command::new("man").args(["-w", "pdns-sensor-run"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/pdns-sensor-run.1.gz");

    // The unit: clean for systemd, and its exposure score.
    let (status, out, err) = output(
        Command::new("systemd-analyze").args(["verify", UNIT]),
        Duration::from_secs(60),
    );
    assert!(
        status.success() && out.is_empty() && err.is_empty(),
        "systemd-analyze verify:\n{out}{err}"
    );
    let security = run_ok(Command::new("systemd-analyze").args([
        "security",
        "--offline=yes",
        "--no-pager",
        UNIT,
    ]));
    let score = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{security}"));
    println!("systemd-analyze security: {}", score.trim());
    let exposure: f64 = score
        .split("pdns-sensor.service:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score: {score}"));
    assert!(
        exposure <= 2.0,
        "the unit's exposure rose to {exposure}:\n{security}"
    );

    let unit = Service::read(Path::new(UNIT));
    let exec = unit.exec_start();
    assert_eq!(exec[0], BIN);
    let help = run_ok(Command::new(BIN).args(["run", "--help"]));
    for option in exec.iter().filter(|a| a.starts_with("--")) {
        assert!(
            help.contains(option.as_str()),
            "the unit's ExecStart= passes {option}, which `pdns-sensor run` does not accept \
             (the configuration file support must come with this unit)"
        );
    }

    // A capture interface behind the default route, as on a resolver.
    let link = Link::new("deb", false);
    link.b
        .run(&["ip", "route", "add", "default", "dev", link.if_b]);
    let dir = tempfile::tempdir().unwrap();
    let (dir1, dir2) = (dir.path().join("1"), dir.path().join("2"));
    std::fs::create_dir_all(&dir1).unwrap();
    std::fs::create_dir_all(&dir2).unwrap();
    let (first, expected1) = link.traffic_file(&dir1, 3_000, 300);
    let (second, expected2) = link.traffic_file(&dir2, 5_000, 1_000);

    // First run. Nothing is flushed before the stop signal (flush interval
    // of an hour): what is stored afterwards went through the stop path.
    let service = Running::start(&unit, &link.b, &["--flush-interval", "3600"]);
    let pid = service.proc.pid();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(
        field(&status, "Uid:").split_whitespace().next(),
        Some(uid.as_str())
    );
    assert_eq!(field(&status, "NoNewPrivs:"), "1", "{status}");
    assert_eq!(field(&status, "Seccomp:"), "2", "{status}");
    for t in threads(pid) {
        for set in ["CapInh:", "CapPrm:", "CapEff:", "CapAmb:"] {
            assert_eq!(
                field(&t, set),
                "0000000000000000",
                "{set} of a thread:\n{t}"
            );
        }
    }
    // Its file system is read-only but for the state directory.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let mount = |point: &str| {
        mounts
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some(point))
            .unwrap_or_else(|| panic!("no mount at {point}:\n{mounts}"))
            .to_string()
    };
    assert!(mount("/").contains(" ro,"), "{}", mount("/"));
    assert!(mount(STATE).contains(" rw,"), "{}", mount(STATE));
    assert!(http_get(&link.b, "http://127.0.0.1:8081/dnsdb/v2/ping").contains("ok"));

    link.replay(&first, 1);
    let (stderr, took) = service.stop(&unit);
    println!("stop after 3 000 responses: {took:?}");
    for needle in [
        "running as pdns-sensor",
        "no capabilities",
        "ebpf filter",
        &format!("capturing DNS on {}", link.if_b),
        "3000 DNS responses",
    ] {
        assert!(stderr.contains(needle), "{needle}:\n{stderr}");
    }
    let expected: std::collections::BTreeMap<String, u64> = expected1.iter().cloned().collect();
    assert_eq!(stored(STATE), expected, "{stderr}");
    // The database is group-readable (UMask=): a member of the group can
    // read it beside the service; anyone else cannot.
    let group = getent("group", USER).unwrap();
    let gid = group.split(':').nth(2).unwrap();
    let dump_as = |groups: &str| {
        output(
            Command::new("setpriv")
                .args(["--reuid=nobody", "--regid=nogroup", groups, "--"])
                .args([BIN, "dump", "--json", "--limit", "1", "--db", STATE]),
            Duration::from_secs(60),
        )
    };
    let (status, out, err) = dump_as(&format!("--groups={gid}"));
    assert!(
        status.success() && out.contains("\"rrname\""),
        "as a group member: {out}{err}"
    );
    let (status, _, err) = dump_as("--clear-groups");
    assert!(!status.success(), "readable by anyone: {err}");

    // Second run over the same database: the API serves the first run's
    // records, then the new traffic is added.
    let service = Running::start(&unit, &link.b, &["--flush-interval", "3600"]);
    let (name, count) = &expected1[7];
    let answer = http_get(
        &link.b,
        &format!(
            "http://127.0.0.1:8081/dnsdb/v2/lookup/rrset/name/{}",
            name.trim_end_matches('.')
        ),
    );
    let obj = answer
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v.get("obj").is_some())
        .unwrap_or_else(|| panic!("no record in the API's answer:\n{answer}"));
    assert_eq!(obj["obj"]["rrname"], name.as_str(), "{answer}");
    assert_eq!(obj["obj"]["count"], *count, "{answer}");
    let metrics = http_get(&link.b, "http://127.0.0.1:8081/metrics");
    assert!(metrics.contains("pdns_build_info"), "{metrics}");

    link.replay(&second, 1);
    let (stderr, took) = service.stop(&unit);
    println!("stop after 5 000 responses: {took:?}");
    let mut expected = expected;
    for (name, n) in &expected2 {
        *expected.entry(name.clone()).or_default() += n;
    }
    assert_eq!(stored(STATE), expected, "{stderr}");
    drop(link);

    // Purge: nothing left but the database; the user and group are gone.
    let files: Vec<String> = run_ok(Command::new("dpkg").args(["-L", PACKAGE]))
        .lines()
        .map(str::to_string)
        .collect();
    let (status, out, err) = output(
        Command::new("dpkg").args(["--purge", PACKAGE]),
        Duration::from_secs(120),
    );
    let purge = format!("{out}{err}");
    assert!(status.success(), "dpkg --purge failed:\n{purge}");
    assert!(
        purge.contains("pdns-sensor: the database /var/lib/pdns-sensor was kept"),
        "{purge}"
    );
    assert!(dpkg_status().is_empty() || dpkg_status().contains("not-installed"));
    for path in &files {
        let meta = std::fs::symlink_metadata(path);
        assert!(
            meta.as_ref().map_or(true, |m| m.is_dir()),
            "{path} is left after purge:\n{purge}"
        );
    }
    for dir in [CONFIG_DIR, "/usr/share/doc/pdns-sensor"] {
        assert!(!Path::new(dir).exists(), "{dir} is left after purge");
    }
    let found = run_ok(Command::new("find").args([
        "/etc",
        "/usr",
        "/var",
        "-xdev",
        "-path",
        STATE,
        "-prune",
        "-o",
        "-name",
        "*pdns-sensor*",
        "-print",
    ]));
    // man-db's cache of formatted pages is man-db's (its daily job expires
    // it); `systemd-analyze verify` formats the unit's Documentation= pages
    // into it. The guard removes them.
    let leftovers: Vec<&str> = found
        .lines()
        .filter(|l| !l.starts_with(MAN_CACHE))
        .collect();
    assert!(leftovers.is_empty(), "left after purge: {leftovers:#?}");
    assert!(
        getent("passwd", USER).is_none(),
        "the user is left after purge"
    );
    assert!(
        getent("group", USER).is_none(),
        "the group is left after purge"
    );
    // The captured history stays, whole.
    assert!(
        Path::new(STATE).join("CURRENT").is_file(),
        "the database was removed"
    );
    assert_eq!(stored(STATE), expected);

    // Reinstalled, the package takes the kept database up again: its
    // files go to the new user. The old user's id may since belong to
    // someone else, or the new user get another one: as if it had, the
    // files are given to an id nobody has first.
    run_ok(Command::new("chown").args(["-R", "4242:4242", STATE]));
    run_ok(Command::new("dpkg").arg("-i").arg(&deb));
    let passwd = getent("passwd", USER).expect("the package made its user again");
    let uid: u32 = passwd.split(':').nth(2).unwrap().parse().unwrap();
    let gid: u32 = passwd.split(':').nth(3).unwrap().parse().unwrap();
    let mut paths = vec![PathBuf::from(STATE)];
    paths.extend(std::fs::read_dir(STATE).unwrap().map(|e| e.unwrap().path()));
    for path in paths {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (
                std::os::unix::fs::MetadataExt::uid(&meta),
                std::os::unix::fs::MetadataExt::gid(&meta)
            ),
            (uid, gid),
            "{} does not belong to the new {USER}",
            path.display()
        );
    }
    assert_eq!(stored(STATE), expected);
}
