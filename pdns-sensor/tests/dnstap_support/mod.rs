//! Real dnstap senders for the dnstap tests (`dnstap_*.rs`): an
//! authoritative server with known zones (NSD, which can log
//! AUTH_RESPONSE itself), recursive resolvers that log dnstap (Unbound,
//! PowerDNS Recursor, BIND), dnsdist in front of a resolver (logging
//! CLIENT_RESPONSE), `fstrm_capture` as a reference receiver, `tcpdump`
//! on the resolver's upstream link, `dig` as the client and
//! `dnstap-ldns` as an independent decoder.
//!
//! Why: a dnstap RESOLVER_RESPONSE message carries the very response the
//! resolver received from upstream. A packet capture of the resolver's
//! upstream link, read by the sensor's (long tested) wire decoder, is thus
//! an independent oracle: the records and counts stored from the dnstap
//! stream must equal the ones stored from the capture. `dnstap-ldns -y`
//! (ldns, not our protobuf code) is a second one for files. Likewise an
//! AUTH_RESPONSE is what the authoritative server sent (a capture of its
//! interface), and a CLIENT_RESPONSE what the client got (dig's output).
//!
//! Like `live_support` (which a test crate must include too: this module
//! uses its `Netns`, `Link`, `run`, `output` and `SENSOR`), everything is
//! hermetic and bounded: two fresh network namespaces joined by a veth
//! pair, AUTH (`198.51.100.1`, `2001:db8:53::1`) and RES (`198.51.100.2`,
//! `2001:db8:53::2`), documentation addresses only, no default route, so
//! nothing leaves the machine; every process, file and directory is held
//! by a guard that kills or deletes it on drop; daemons run in their own
//! process group, which the guard signals as a whole (NSD forks). Every
//! wait has a deadline. Root and the Debian packages `nsd unbound
//! pdns-recursor bind9 dnsdist fstrm-bin dnstap-ldns dnsutils tcpdump
//! iproute2` are required; without them the tests fail, they never skip.
//!
//! # What was learned setting this up by hand (Debian 12)
//!
//! Zones: `example.test.`, `other.test.` and `2.0.192.in-addr.arpa.` on NSD
//! (A, AAAA, CNAME chains within and across zones, MX, TXT with several
//! strings, SRV, NS, SOA, PTR, an NXDOMAIN and a NODATA name). Resolvers
//! reach them through stub zones (Unbound `stub-zone`, BIND `static-stub`,
//! Recursor `forward-zones`, which sends RD=0 like a stub); all three log
//! the upstream answers as RESOLVER_RESPONSE. `other.test` is reached over
//! IPv6, the others over IPv4, so both socket families appear.
//!
//! * NSD 4.6: `nsd -d -c CONF` stays in the foreground but forks xfrd and
//!   a server child; SIGTERM to the main process ends all of them (SIGKILL
//!   would orphan the children: the guard signals the process group).
//!   `username: ""`, `chroot: ""`, `pidfile: ""`, `database: ""` and every
//!   state file (`zonelistfile`, `xfrdfile`, `xfrdir`) in the temp dir;
//!   `remote-control: control-enable: no`.
//! * Unbound 1.17: `do-daemonize: no`, `chroot: ""`, `username: ""`,
//!   `pidfile: ""`, `module-config: "iterator"` (no validator, so no
//!   DNSKEY/DS queries), `remote-control: control-enable: no`. **Unbound's
//!   default local zones answer `test.` and `2.0.192.in-addr.arpa.`
//!   (RFC 6761 / TEST-NET) with NXDOMAIN**, stub zones or not:
//!   `local-zone: "test." nodefault` and the same for the reverse zone.
//!   dnstap: `dnstap-enable: yes`, `dnstap-socket-path: PATH` or
//!   `dnstap-ip: "127.0.0.1@PORT"` with `dnstap-tls: no`,
//!   `dnstap-bidirectional: yes`, `dnstap-log-*-messages: yes`. One
//!   connection (one I/O thread) whatever `num-threads`. The receiver
//!   need not exist at start: Unbound retries (several times a second,
//!   logging "failed to connect") and keeps what it logged meanwhile.
//!   **Latency: messages leave about 1 s after the query** (the I/O
//!   thread's wake-up timer). **SIGTERM loses every message not yet sent**
//!   (it sends STOP right away and does not wait for FINISH, the
//!   receiver's FINISH gets EPIPE): wait until the receiver has them all
//!   before stopping Unbound. `tcp-upstream: yes` makes it query upstream
//!   over TCP, one connection reused for many queries.
//! * PowerDNS Recursor 4.8: foreground with `--daemon=no --write-pid=no
//!   --disable-syslog`, `--config-dir` (an empty `recursor.conf`) and
//!   `--socket-dir` in the temp dir, `--dnssec=off`, `--dont-query=` and
//!   `--security-poll-suffix=` (no secpoll), `--query-local-address`
//!   with an IPv6 address to query over IPv6, `forward-zones` as
//!   `zone=IP,zone=[IP6]:53` (comma between zones). dnstap in the Lua
//!   config: `dnstapFrameStreamServer({"PATH"}, {logQueries=true,
//!   logResponses=true})`. With `--threads=2` it opens **five**
//!   connections (every thread has its own logger); answers arrive on the
//!   worker threads' connections. Output is flushed every second
//!   (`flushTimeout`); **on SIGTERM it exits (about 1 s) without
//!   flushing and without a STOP frame**: the receiver sees EOF, and what
//!   was not flushed is lost. The root priming and the root refresh fail
//!   (no route): no packets, no dnstap messages.
//! * BIND 9.18: `named -g -n 2 -c CONF` (foreground, log on stderr, stays
//!   root without `-u`); `pid-file none; session-keyfile none;
//!   dnssec-validation no; controls { };`, `query-source(-v6) address`.
//!   `dnstap { resolver response; resolver query; client; };` with
//!   `dnstap-output file "PATH";` writes a Frame Streams file (START
//!   frame, content type `protobuf:dnstap.Dnstap`) in 8 KiB pieces; it is
//!   complete once named exits after SIGTERM (about 1.5 s). `dnstap-output
//!   unix "PATH";` works with `fstrm_capture` too (bidirectional, STOP and
//!   FINISH on shutdown, nothing lost). BIND adds a COOKIE to its upstream
//!   queries; NSD 4.6 answers without one.
//! * NSD 4.6 as a dnstap sender (Debian builds it `--enable-dnstap`,
//!   see `nsd -v`): `dnstap: dnstap-enable: yes`, `dnstap-socket-path:
//!   PATH` (a Unix socket is the only transport of 4.6),
//!   `dnstap-log-auth-query-messages` / `-auth-response-messages: yes`.
//!   A collector process holds one bidirectional Frame Streams connection
//!   (libfstrm); messages leave within about a second; **on SIGTERM it
//!   flushes everything, sends STOP and waits for FINISH**: nothing is
//!   lost. It follows a CNAME into another zone it serves
//!   (`ext.example.test AAAA` comes with `www.other.test AAAA`). Readiness
//!   without queries (a probe would be logged, and over loopback it would
//!   not be on the captured link): listening sockets and "nsd started"
//!   in its log.
//! * dnsdist 1.7 (`dnsdist --supervised --disable-syslog -C CONF`:
//!   foreground, no console on stdin, no control socket unless
//!   `controlSocket()` is configured; `--check-config -C CONF` runs the
//!   Lua without connecting the logger). `newFrameStreamUnixLogger(PATH)`
//!   or `newFrameStreamTcpLogger("IP:PORT")` (one bidirectional
//!   connection), `addResponseAction(AllRule(),
//!   DnstapLogResponseAction("dnsdist", fstl))` and
//!   `addCacheHitResponseAction(...)` with the same action: one
//!   CLIENT_RESPONSE per answer sent, UDP and TCP, from the backend or
//!   the packet cache (`newPacketCache(N, {...})`,
//!   `getPool(""):setCache(pc)`; dig's EDNS cookies do not prevent hits,
//!   but UDP and TCP answers are cached apart). The default health check
//!   (`a.root-servers.net A`) gets SERVFAIL from a resolver without a
//!   route to the root, which marks the backend down (queries are then
//!   dropped): `newServer{...}:setUp()` forces it up and stops the checks.
//!   `setSecurityPollSuffix("")`: no security poll. **SIGTERM kills it
//!   (no handler): no STOP, nothing flushed**; messages leave about 1 s
//!   after the answer, so wait for them before stopping it.
//! * `fstrm_capture -t protobuf:dnstap.Dnstap -u PATH | -a IP -p PORT -w
//!   FILE -dddd`: creates the socket itself; **buffers the file in stdio**
//!   (nothing to see in it before it exits on SIGTERM); with `-dddd` it
//!   logs every connection and, at close, "read N frames". `dnstap-ldns -r
//!   FILE -y` prints YAML, `-q` one line per message (`RR` =
//!   RESOLVER_RESPONSE, `CQ`/`CR` client, `RQ` resolver query).
//! * tcpdump drops privileges to the `tcpdump` user by default, which
//!   cannot write into a 0700 temp dir: `-Z root`. `-U --immediate-mode`
//!   so the file is current; SIGINT ends it cleanly ("N packets captured",
//!   "0 packets dropped by kernel").
//! * No AppArmor in this environment (no `/sys/module/apparmor`); with
//!   AppArmor enforcing, the Debian profiles of unbound and named would
//!   forbid sockets and files in /tmp.
//!
//! What could make the dnstap stream and the capture differ, and how it is
//! avoided: cached answers (no upstream query, so neither shows them:
//! queries repeated on purpose); TC and a retry over TCP (answers are
//! small; with `tcp-upstream` both see TCP); DNSSEC queries (no validator,
//! no signed zones); prefetch (off); queries for name server addresses
//! (stub addresses given; such queries would be in both anyway); readiness
//! probes through the resolver (none: readiness is `ss` and the logs);
//! messages still queued in the sender at shutdown (the tests wait until
//! the receiver counted as many RESOLVER_RESPONSE messages as the capture
//! holds responses before stopping the sender).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::live_support::{Link, Netns, SENSOR, output, run, which};

/// The authoritative server's addresses (namespace AUTH).
pub(crate) const AUTH_V4: &str = "198.51.100.1";
pub(crate) const AUTH_V6: &str = "2001:db8:53::1";
/// The resolver's addresses on the upstream link (namespace RES).
pub(crate) const RES_V4: &str = "198.51.100.2";
pub(crate) const RES_V6: &str = "2001:db8:53::2";
/// Where resolvers (and dnsdist) listen for `dig`, inside RES.
pub(crate) const RESOLVER: &str = "127.0.0.1";
/// Where a resolver behind dnsdist listens, inside RES.
pub(crate) const BACKEND: &str = "127.0.0.2";
/// Where the sensor's API listens, inside the sensor's namespace.
pub(crate) const SENSOR_API: &str = "127.0.0.1:8081";
/// tcpdump filter for the resolver's upstream DNS traffic.
pub(crate) const UPSTREAM_FILTER: &str = "(host 198.51.100.1 or host 2001:db8:53::1) and port 53";

/// Fails the test unless it runs as root with every sender and tool.
pub(crate) fn require_senders() {
    crate::live_support::require(&["ip", "ss", "dig", "tcpdump"]);
    for tool in [
        "nsd",
        "nsd-checkconf",
        "unbound",
        "pdns_recursor",
        "named",
        "dnsdist",
        "fstrm_capture",
        "dnstap-ldns",
    ] {
        assert!(
            which(tool).is_some(),
            "the dnstap tests need `{tool}`: apt-get install nsd unbound pdns-recursor bind9 \
             dnsdist fstrm-bin dnstap-ldns dnsutils tcpdump iproute2"
        );
    }
}

/// Calls `attempt` every 50 ms until it returns `Ok`, or panics with its
/// last `Err` (what is missing, with the logs that tell why) after
/// `timeout`.
pub(crate) fn wait_for<T>(timeout: Duration, mut attempt: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => panic!("gave up after {timeout:?}: {why}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// `Ok(())` if `ready`, else `Err(why())`.
fn ready(ready: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ready { Ok(()) } else { Err(why()) }
}

// ---------------------------------------------------------------------
// Processes

/// A background process in its own process group, output to a log file.
/// Dropped while running: SIGTERM to the group, then SIGKILL.
pub(crate) struct Daemon {
    child: Child,
    what: String,
    pub log: PathBuf,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `cmd` (stdin null, stdout and stderr to `log`).
    pub(crate) fn spawn(cmd: &mut Command, what: &str, log: &Path) -> Daemon {
        let file = File::create(log).unwrap();
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what} ({cmd:?}): {e}"));
        Daemon {
            child,
            what: what.to_string(),
            log: log.to_path_buf(),
            status: None,
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited (reaping it if so).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().unwrap();
        }
        self.status
    }

    /// Panics (with the log) if it has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!("{} exited ({status}):\n{}", self.what, self.log());
        }
    }

    pub(crate) fn signal(&self, sig: i32) {
        assert!(self.status.is_none(), "{} already exited", self.what);
        // SAFETY: kill(2) on our own child, which we have not reaped.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "signalling {}", self.what);
    }

    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `sig` and waits (at most `timeout`) for the exit.
    pub(crate) fn stop_with(&mut self, sig: i32, timeout: Duration) -> ExitStatus {
        self.signal(sig);
        self.wait_timeout(timeout).unwrap_or_else(|| {
            panic!(
                "{} did not exit within {timeout:?} of signal {sig}:\n{}",
                self.what,
                self.log()
            )
        })
    }

    /// SIGTERM; waits (at most `timeout`) for a successful exit.
    pub(crate) fn terminate(&mut self, timeout: Duration) {
        let status = self.stop_with(libc::SIGTERM, timeout);
        assert!(
            status.success(),
            "{} failed ({status}) after SIGTERM:\n{}",
            self.what,
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_some() {
            return;
        }
        let group = -self.pid();
        // SAFETY: kill(2) on the process group our unreaped child leads.
        unsafe { libc::kill(group, libc::SIGTERM) };
        if self.wait_timeout(Duration::from_secs(5)).is_none() {
            // SAFETY: as above; the leader is still unreaped.
            unsafe { libc::kill(group, libc::SIGKILL) };
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------
// Topology

/// AUTH and RES joined by a veth pair (`link.a`/`veth-a` is AUTH,
/// `link.b`/`veth-b` is RES), IPv4 and IPv6 addresses on both ends.
pub(crate) struct Lab {
    pub link: Link,
}

impl Lab {
    pub(crate) fn new(tag: &str) -> Lab {
        let link = Link::new(tag, true);
        for (ns, ifname, v4, v6) in [
            (&link.a, link.if_a, AUTH_V4, AUTH_V6),
            (&link.b, link.if_b, RES_V4, RES_V6),
        ] {
            ns.run(&["ip", "addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.run(&[
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                ifname,
                "nodad",
            ]);
        }
        Lab { link }
    }

    /// The authoritative server's namespace.
    pub(crate) fn auth(&self) -> &Netns {
        &self.link.a
    }

    /// The resolver's namespace (and the sensor's).
    pub(crate) fn res(&self) -> &Netns {
        &self.link.b
    }

    /// The resolver's side of the upstream link (where tcpdump listens).
    pub(crate) fn upstream_if(&self) -> &'static str {
        self.link.if_b
    }

    /// The authoritative server's side of the link.
    pub(crate) fn auth_if(&self) -> &'static str {
        self.link.if_a
    }
}

/// Whether `ss -Hln{proto}` in `ns` lists `local` (e.g. `127.0.0.1:53`).
pub(crate) fn listening(ns: &Netns, proto: char, local: &str) -> bool {
    let (status, out, _) = output(
        ns.cmd("ss").args([&format!("-Hln{proto}")]),
        Duration::from_secs(10),
    );
    status.success()
        && out
            .lines()
            .any(|l| l.split_whitespace().any(|field| field == local))
}

/// Waits until `daemon` listens on `local` (`proto` `u` or `t`) in `ns`.
fn wait_listening(ns: &Netns, daemon: &mut Daemon, proto: char, local: &str) {
    wait_for(Duration::from_secs(20), || {
        daemon.assert_running();
        ready(listening(ns, proto, local), || {
            format!(
                "{} does not listen on {local}:\n{}",
                daemon.what,
                daemon.log()
            )
        })
    });
}

// ---------------------------------------------------------------------
// The authoritative server

pub(crate) const ZONE_EXAMPLE: &str = r#"$ORIGIN example.test.
$TTL 3600
@         IN SOA   ns1 hostmaster 2024010101 3600 900 604800 300
@         IN NS    ns1
ns1       IN A     198.51.100.1
@         IN A     192.0.2.1
@         IN MX    10 mail
@         IN MX    20 mx.other.test.
mail      IN A     192.0.2.25
mail      IN AAAA  2001:db8::25
www       IN A     192.0.2.80
www       IN A     192.0.2.81
www       IN AAAA  2001:db8::80
alias     IN CNAME www
alias2    IN CNAME alias
ext       IN CNAME www.other.test.
txt       IN TXT   "hello world"
txt       IN TXT   "first" "second" "third"
_sip._udp IN SRV   10 60 5060 sip
sip       IN A     192.0.2.50
nodata    IN A     192.0.2.60
"#;

pub(crate) const ZONE_OTHER: &str = r#"$ORIGIN other.test.
$TTL 600
@         IN SOA   ns1.example.test. hostmaster.example.test. 1 3600 900 604800 300
@         IN NS    ns1.example.test.
www       IN A     192.0.2.180
www       IN AAAA  2001:db8:1::180
mx        IN A     192.0.2.125
cdn       IN CNAME www
"#;

pub(crate) const ZONE_REVERSE: &str = r#"$ORIGIN 2.0.192.in-addr.arpa.
$TTL 3600
@         IN SOA   ns1.example.test. hostmaster.example.test. 1 3600 900 604800 300
@         IN NS    ns1.example.test.
80        IN PTR   www.example.test.
25        IN PTR   mail.example.test.
"#;

/// Zones served, with the address the resolvers reach each one at.
pub(crate) const ZONES: [(&str, &str, &str); 3] = [
    ("example.test", ZONE_EXAMPLE, AUTH_V4),
    ("other.test", ZONE_OTHER, AUTH_V6),
    ("2.0.192.in-addr.arpa", ZONE_REVERSE, AUTH_V4),
];

/// NSD serving [`ZONES`] on AUTH's two addresses.
pub(crate) struct Nsd {
    pub daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Nsd {
    /// NSD without dnstap, ready once it answers (probed over AUTH's
    /// loopback, so no probe crosses the captured link).
    pub(crate) fn start(lab: &Lab) -> Nsd {
        Nsd::start_with(lab, None)
    }

    /// NSD logging AUTH_QUERY and AUTH_RESPONSE to the Unix socket
    /// `socket` (NSD 4.6 knows no other dnstap transport). Not probed
    /// with queries, which would be logged too: ready once it has loaded
    /// its zones and listens.
    pub(crate) fn start_dnstap(lab: &Lab, socket: &Path) -> Nsd {
        Nsd::start_with(lab, Some(socket))
    }

    fn start_with(lab: &Lab, dnstap: Option<&Path>) -> Nsd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let mut conf = format!(
            "server:
    ip-address: {AUTH_V4}
    ip-address: {AUTH_V6}
    port: 53
    server-count: 1
    username: \"\"
    chroot: \"\"
    pidfile: \"\"
    database: \"\"
    zonesdir: \"{d}\"
    zonelistfile: \"{d}/zone.list\"
    xfrdfile: \"{d}/xfrd.state\"
    xfrdir: \"{d}\"
    logfile: \"{d}/nsd.log\"
    verbosity: 1
    hide-version: yes
remote-control:
    control-enable: no
"
        );
        if let Some(socket) = dnstap {
            conf += &format!(
                "dnstap:
    dnstap-enable: yes
    dnstap-socket-path: \"{}\"
    dnstap-send-identity: yes
    dnstap-identity: \"nsd-test\"
    dnstap-send-version: yes
    dnstap-log-auth-query-messages: yes
    dnstap-log-auth-response-messages: yes
",
                socket.display()
            );
        }
        for (zone, text, _) in ZONES {
            std::fs::write(dir.path().join(format!("{zone}.zone")), text).unwrap();
            conf += &format!("zone:\n    name: {zone}\n    zonefile: {zone}.zone\n");
        }
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).unwrap();
        run(
            Command::new("nsd-checkconf").arg(&conf_path),
            Duration::from_secs(10),
        );
        let mut daemon = Daemon::spawn(
            lab.auth().cmd("nsd").arg("-d").arg("-c").arg(&conf_path),
            "nsd",
            &dir.path().join("nsd.out"),
        );
        let nsd_log = dir.path().join("nsd.log");
        let logs = |daemon: &Daemon| {
            format!(
                "{}\n{}",
                daemon.log(),
                std::fs::read_to_string(&nsd_log).unwrap_or_default()
            )
        };
        if dnstap.is_some() {
            // The sockets are bound before the zones are read and the
            // server child forked; a query arriving in between waits in
            // the socket buffer. "nsd started" comes once all is loaded.
            for (proto, local) in [
                ('u', format!("{AUTH_V4}:53")),
                ('u', format!("[{AUTH_V6}]:53")),
                ('t', format!("{AUTH_V4}:53")),
                ('t', format!("[{AUTH_V6}]:53")),
            ] {
                wait_listening(lab.auth(), &mut daemon, proto, &local);
            }
            wait_for(Duration::from_secs(20), || {
                daemon.assert_running();
                let log = std::fs::read_to_string(&nsd_log).unwrap_or_default();
                let loaded = ZONES
                    .iter()
                    .all(|(zone, _, _)| log.contains(&format!("zone {zone} read with success")));
                ready(loaded && log.contains("nsd started"), || {
                    format!("nsd did not start:\n{}", logs(&daemon))
                })
            });
            return Nsd { daemon, dir };
        }
        // Asked from AUTH itself (loopback), so no probe crosses the
        // captured link.
        for server in [AUTH_V4, AUTH_V6] {
            wait_for(Duration::from_secs(20), || {
                daemon.assert_running();
                let answer = dig_raw(lab.auth(), server, "example.test", "SOA", &["+norec"]);
                ready(
                    answer.status == "NOERROR" && !answer.answers.is_empty(),
                    || {
                        format!(
                            "nsd does not answer on {server} ({answer:?}):\n{}",
                            logs(&daemon)
                        )
                    },
                )
            });
        }
        Nsd { daemon, dir }
    }

    /// SIGTERM; NSD's dnstap collector flushes what it holds, sends STOP
    /// and waits for FINISH: nothing is lost.
    pub(crate) fn stop(mut self) {
        self.daemon.terminate(Duration::from_secs(20));
    }
}

// ---------------------------------------------------------------------
// dnstap senders

/// Where a sender sends dnstap (or a receiver listens).
#[derive(Clone, Debug)]
pub(crate) enum DnstapTarget {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl DnstapTarget {
    /// The sensor's `--dnstap` argument.
    pub(crate) fn sensor_arg(&self) -> String {
        match self {
            DnstapTarget::Unix(p) => format!("unix:{}", p.display()),
            DnstapTarget::Tcp(a) => format!("tcp:{a}"),
        }
    }
}

/// Unbound's options beyond the common ones.
#[derive(Clone, Debug)]
pub(crate) struct UnboundSetup {
    /// Where to log every message type; `None`: no dnstap (behind dnsdist).
    pub dnstap: Option<DnstapTarget>,
    /// Query upstream over TCP (`tcp-upstream: yes`).
    pub tcp_upstream: bool,
    /// Where it listens (port 53): [`RESOLVER`], or [`BACKEND`] behind
    /// dnsdist.
    pub interface: &'static str,
    /// Unbound's `verbosity` (1: operational; 3: every query and upstream
    /// exchange, for a test whose failure needs them explained).
    pub verbosity: u8,
}

impl UnboundSetup {
    /// dnstap to `target`, upstream over UDP, listening on [`RESOLVER`].
    pub(crate) fn tapping(target: DnstapTarget) -> UnboundSetup {
        UnboundSetup {
            dnstap: Some(target),
            tcp_upstream: false,
            interface: RESOLVER,
            verbosity: 1,
        }
    }
}

/// Unbound in RES with stub zones to NSD, logging every dnstap message
/// type (the sensor must pick RESOLVER_RESPONSE out of them), or none.
pub(crate) struct Unbound {
    pub daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Unbound {
    pub(crate) fn start(lab: &Lab, setup: &UnboundSetup) -> Unbound {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let tcp_upstream = if setup.tcp_upstream { "yes" } else { "no" };
        let interface = setup.interface;
        let verbosity = setup.verbosity;
        let mut conf = format!(
            "server:
    verbosity: {verbosity}
    interface: {interface}
    port: 53
    do-ip4: yes
    do-ip6: yes
    outgoing-interface: {RES_V4}
    outgoing-interface: {RES_V6}
    do-daemonize: no
    use-syslog: no
    logfile: \"\"
    log-time-ascii: yes
    chroot: \"\"
    username: \"\"
    directory: \"{d}\"
    pidfile: \"\"
    access-control: 127.0.0.0/8 allow
    module-config: \"iterator\"
    qname-minimisation: no
    prefetch: no
    minimal-responses: yes
    num-threads: 2
    tcp-upstream: {tcp_upstream}
    local-zone: \"test.\" nodefault
    local-zone: \"2.0.192.in-addr.arpa.\" nodefault
remote-control:
    control-enable: no
"
        );
        for (zone, _, addr) in ZONES {
            conf += &format!("stub-zone:\n    name: \"{zone}\"\n    stub-addr: {addr}\n");
        }
        if let Some(target) = &setup.dnstap {
            conf += &unbound_dnstap(target);
        }
        let conf_path = dir.path().join("unbound.conf");
        std::fs::write(&conf_path, conf).unwrap();
        run(
            Command::new("unbound-checkconf").arg(&conf_path),
            Duration::from_secs(10),
        );
        let mut daemon = Daemon::spawn(
            lab.res().cmd("unbound").arg("-d").arg("-c").arg(&conf_path),
            "unbound",
            &dir.path().join("unbound.log"),
        );
        wait_listening(lab.res(), &mut daemon, 'u', &format!("{interface}:53"));
        wait_for(Duration::from_secs(20), || {
            daemon.assert_running();
            let log = daemon.log();
            ready(log.contains("start of service"), || {
                format!("unbound did not start:\n{log}")
            })
        });
        Unbound { daemon, dir }
    }

    /// What Unbound logged so far.
    pub(crate) fn log(&self) -> String {
        self.daemon.log()
    }

    /// SIGTERM; Unbound sends STOP and exits. Messages it has not sent yet
    /// are lost: call this only once the receiver has everything.
    pub(crate) fn stop(mut self) {
        self.daemon.terminate(Duration::from_secs(20));
    }
}

/// Unbound's `dnstap:` section: every message type to `target`.
fn unbound_dnstap(target: &DnstapTarget) -> String {
    let mut conf = String::from("dnstap:\n    dnstap-enable: yes\n");
    match target {
        DnstapTarget::Unix(path) => {
            conf += &format!("    dnstap-socket-path: \"{}\"\n", path.display());
        }
        DnstapTarget::Tcp(addr) => {
            conf += &format!(
                "    dnstap-ip: \"{}@{}\"\n    dnstap-tls: no\n",
                addr.ip(),
                addr.port()
            );
        }
    }
    conf + "    dnstap-bidirectional: yes
    dnstap-send-identity: yes
    dnstap-send-version: yes
    dnstap-log-resolver-query-messages: yes
    dnstap-log-resolver-response-messages: yes
    dnstap-log-client-query-messages: yes
    dnstap-log-client-response-messages: yes
    dnstap-log-forwarder-query-messages: yes
    dnstap-log-forwarder-response-messages: yes
"
}

/// PowerDNS Recursor in RES with forward zones to NSD, dnstap to a Unix
/// socket from each of its threads.
pub(crate) struct Recursor {
    pub daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Recursor {
    pub(crate) fn start(lab: &Lab, socket: &Path, threads: u32) -> Recursor {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("recursor.conf"), "").unwrap();
        let lua = dir.path().join("dnstap.lua");
        std::fs::write(
            &lua,
            format!(
                "dnstapFrameStreamServer({{\"{}\"}}, {{logQueries=true, logResponses=true}})\n",
                socket.display()
            ),
        )
        .unwrap();
        let forward = ZONES
            .iter()
            .map(|(zone, _, addr)| {
                if addr.contains(':') {
                    format!("{zone}=[{addr}]:53")
                } else {
                    format!("{zone}={addr}")
                }
            })
            .collect::<Vec<_>>()
            .join(",");
        let d = dir.path().display();
        let mut daemon = Daemon::spawn(
            lab.res().cmd("pdns_recursor").args([
                format!("--config-dir={d}"),
                format!("--socket-dir={d}"),
                "--daemon=no".into(),
                "--write-pid=no".into(),
                "--disable-syslog".into(),
                format!("--local-address={RESOLVER}"),
                "--local-port=53".into(),
                format!("--threads={threads}"),
                format!("--forward-zones={forward}"),
                format!("--query-local-address={RES_V4},{RES_V6}"),
                "--dont-query=".into(),
                "--dnssec=off".into(),
                "--qname-minimization=no".into(),
                "--security-poll-suffix=".into(),
                format!("--lua-config-file={}", lua.display()),
                "--loglevel=6".into(),
            ]),
            "pdns_recursor",
            &dir.path().join("recursor.log"),
        );
        wait_listening(lab.res(), &mut daemon, 'u', &format!("{RESOLVER}:53"));
        wait_for(Duration::from_secs(20), || {
            daemon.assert_running();
            let log = daemon.log();
            ready(log.contains("Launching worker threads"), || {
                format!("pdns_recursor did not start:\n{log}")
            })
        });
        Recursor { daemon, dir }
    }

    /// SIGTERM. The recursor does not flush its dnstap queues on exit:
    /// call this only once the receiver has everything.
    pub(crate) fn stop(mut self) {
        self.daemon
            .stop_with(libc::SIGTERM, Duration::from_secs(20));
    }
}

/// Where BIND writes dnstap.
#[derive(Clone, Debug)]
pub(crate) enum BindOutput {
    File(PathBuf),
    Unix(PathBuf),
}

/// BIND (`named`) in RES with static-stub zones to NSD.
pub(crate) struct Bind {
    pub daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Bind {
    pub(crate) fn start(lab: &Lab, out: &BindOutput) -> Bind {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let output = match out {
            BindOutput::File(p) => format!("file \"{}\"", p.display()),
            BindOutput::Unix(p) => format!("unix \"{}\"", p.display()),
        };
        let mut conf = format!(
            "options {{
    directory \"{d}\";
    pid-file none;
    session-keyfile none;
    listen-on port 53 {{ {RESOLVER}; }};
    listen-on-v6 {{ none; }};
    recursion yes;
    allow-recursion {{ 127.0.0.0/8; }};
    dnssec-validation no;
    qname-minimization off;
    query-source address {RES_V4};
    query-source-v6 address {RES_V6};
    notify no;
    dnstap {{ resolver response; resolver query; client; }};
    dnstap-output {output};
    dnstap-identity \"bind-test\";
}};
controls {{ }};
"
        );
        for (zone, _, addr) in ZONES {
            conf += &format!(
                "zone \"{zone}\" {{ type static-stub; server-addresses {{ {addr}; }}; }};\n"
            );
        }
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf).unwrap();
        run(
            Command::new("named-checkconf").arg(&conf_path),
            Duration::from_secs(10),
        );
        let mut daemon = Daemon::spawn(
            lab.res()
                .cmd("named")
                .args(["-g", "-n", "2", "-c"])
                .arg(&conf_path),
            "named",
            &dir.path().join("named.log"),
        );
        wait_listening(lab.res(), &mut daemon, 'u', &format!("{RESOLVER}:53"));
        wait_for(Duration::from_secs(30), || {
            daemon.assert_running();
            let log = daemon.log();
            ready(log.lines().any(|l| l.ends_with(" running")), || {
                format!("named did not start:\n{log}")
            })
        });
        Bind { daemon, dir }
    }

    /// SIGTERM; named closes the dnstap output (the file is complete).
    pub(crate) fn stop(mut self) {
        self.daemon.terminate(Duration::from_secs(30));
    }
}

/// dnsdist in RES on [`RESOLVER`] (UDP and TCP), in front of the
/// resolver at `backend`, with a packet cache, logging a CLIENT_RESPONSE
/// for every answer it sends, from the backend
/// (`addResponseAction`) or from its cache (`addCacheHitResponseAction`).
pub(crate) struct Dnsdist {
    pub daemon: Daemon,
    dir: tempfile::TempDir,
}

impl Dnsdist {
    pub(crate) fn start(lab: &Lab, backend: &str, dnstap: &DnstapTarget) -> Dnsdist {
        let dir = tempfile::tempdir().unwrap();
        let logger = match dnstap {
            DnstapTarget::Unix(p) => format!("newFrameStreamUnixLogger(\"{}\")", p.display()),
            DnstapTarget::Tcp(a) => format!("newFrameStreamTcpLogger(\"{a}\")"),
        };
        // The backend is forced up: the default health check asks
        // a.root-servers.net, which the resolver cannot reach (SERVFAIL),
        // and a backend marked down gets no queries. Forced up, it is not
        // checked at all. No security polling (no route to it anyway).
        let conf = format!(
            "setSecurityPollSuffix(\"\")
setLocal(\"{RESOLVER}:53\")
newServer({{address=\"{backend}:53\", name=\"backend\"}}):setUp()
pc = newPacketCache(10000, {{maxTTL=86400, minTTL=0}})
getPool(\"\"):setCache(pc)
fstl = {logger}
addResponseAction(AllRule(), DnstapLogResponseAction(\"dnsdist\", fstl))
addCacheHitResponseAction(AllRule(), DnstapLogResponseAction(\"dnsdist\", fstl))
"
        );
        let conf_path = dir.path().join("dnsdist.conf");
        std::fs::write(&conf_path, conf).unwrap();
        // Runs the Lua configuration without connecting the logger.
        run(
            Command::new("dnsdist")
                .arg("--check-config")
                .arg("-C")
                .arg(&conf_path),
            Duration::from_secs(10),
        );
        // --supervised: foreground without a console on stdin; no
        // controlSocket() in the configuration, so no control socket.
        let mut daemon = Daemon::spawn(
            lab.res()
                .cmd("dnsdist")
                .args(["--supervised", "--disable-syslog", "-C"])
                .arg(&conf_path),
            "dnsdist",
            &dir.path().join("dnsdist.log"),
        );
        wait_listening(lab.res(), &mut daemon, 'u', &format!("{RESOLVER}:53"));
        wait_listening(lab.res(), &mut daemon, 't', &format!("{RESOLVER}:53"));
        Dnsdist { daemon, dir }
    }

    /// SIGTERM: dnsdist 1.7 has no handler for it and dies of the signal
    /// at once, without STOP (the receiver sees EOF) and without flushing:
    /// call this only once the receiver has everything.
    pub(crate) fn stop(mut self) {
        use std::os::unix::process::ExitStatusExt;
        let status = self
            .daemon
            .stop_with(libc::SIGTERM, Duration::from_secs(20));
        assert!(
            status.success() || status.signal() == Some(libc::SIGTERM),
            "dnsdist failed ({status}) after SIGTERM:\n{}",
            self.daemon.log()
        );
    }
}

// ---------------------------------------------------------------------
// Reference receivers and captures

/// `tcpdump` writing a pcap of what passes `iface` in `ns`.
pub(crate) struct Tcpdump {
    daemon: Daemon,
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tcpdump {
    pub(crate) fn start(ns: &Netns, iface: &str, filter: &str, file: &Path) -> Tcpdump {
        let dir = tempfile::tempdir().unwrap();
        let mut daemon = Daemon::spawn(
            ns.cmd("tcpdump")
                .args([
                    "-Z",
                    "root",
                    "-U",
                    "--immediate-mode",
                    "-n",
                    "-i",
                    iface,
                    "-w",
                ])
                .arg(file)
                .arg(filter),
            "tcpdump",
            &dir.path().join("tcpdump.log"),
        );
        wait_for(Duration::from_secs(20), || {
            daemon.assert_running();
            let log = daemon.log();
            ready(log.contains("listening on"), || {
                format!("tcpdump did not start:\n{log}")
            })
        });
        Tcpdump {
            daemon,
            file: file.to_path_buf(),
            _dir: dir,
        }
    }

    /// SIGINT, waits for the exit (the file is then complete) and checks
    /// the kernel dropped nothing; returns the file.
    pub(crate) fn stop(mut self) -> PathBuf {
        let status = self.daemon.stop_with(libc::SIGINT, Duration::from_secs(20));
        let log = self.daemon.log();
        assert!(status.success(), "tcpdump failed ({status}):\n{log}");
        assert!(
            log.lines()
                .any(|l| l.trim() == "0 packets dropped by kernel"),
            "tcpdump lost packets:\n{log}"
        );
        self.file.clone()
    }
}

/// `fstrm_capture` writing what it receives to a Frame Streams file.
pub(crate) struct FstrmCapture {
    daemon: Daemon,
    pub file: PathBuf,
    _dir: tempfile::TempDir,
}

/// What `fstrm_capture` reported at the end.
#[derive(Debug)]
pub(crate) struct CaptureSummary {
    /// Data frames read, per connection.
    pub frames_read: Vec<u64>,
    /// Frames written to the file (data frames plus START and STOP).
    pub frames_written: u64,
    pub log: String,
}

impl FstrmCapture {
    pub(crate) fn start(ns: &Netns, target: &DnstapTarget, file: &Path) -> FstrmCapture {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = ns.cmd("fstrm_capture");
        cmd.args(["-t", "protobuf:dnstap.Dnstap", "-dddd", "-w"])
            .arg(file);
        match target {
            DnstapTarget::Unix(p) => {
                cmd.arg("-u").arg(p);
            }
            DnstapTarget::Tcp(a) => {
                let (ip, port) = (a.ip().to_string(), a.port().to_string());
                cmd.args(["-a", ip.as_str(), "-p", port.as_str()]);
            }
        }
        let mut daemon = Daemon::spawn(&mut cmd, "fstrm_capture", &dir.path().join("fstrm.log"));
        wait_for(Duration::from_secs(20), || {
            daemon.assert_running();
            let log = daemon.log();
            let bound = match target {
                DnstapTarget::Unix(p) => is_socket(p),
                DnstapTarget::Tcp(a) => listening(ns, 't', &a.to_string()),
            };
            ready(log.contains("opened output file") && bound, || {
                format!("fstrm_capture did not start:\n{log}")
            })
        });
        FstrmCapture {
            daemon,
            file: file.to_path_buf(),
            _dir: dir,
        }
    }

    /// Bytes it has read so far (`rchar` of /proc/PID/io): grows as frames
    /// arrive, although the file itself is only written at the end.
    pub(crate) fn bytes_read(&self) -> u64 {
        let io = std::fs::read_to_string(format!("/proc/{}/io", self.daemon.pid())).unwrap();
        io.lines()
            .find_map(|l| l.strip_prefix("rchar: "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    }

    /// SIGTERM; waits for the file to be closed.
    pub(crate) fn stop(mut self) -> CaptureSummary {
        self.daemon
            .stop_with(libc::SIGTERM, Duration::from_secs(20));
        let log = self.daemon.log();
        let frames_read = log
            .lines()
            .filter_map(|l| l.split("closing (read ").nth(1))
            .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
            .collect();
        let frames_written = log
            .lines()
            .find_map(|l| l.split("(wrote ").nth(1))
            .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
            .unwrap_or_else(|| panic!("fstrm_capture did not close its file:\n{log}"));
        CaptureSummary {
            frames_read,
            frames_written,
            log,
        }
    }
}

pub(crate) fn is_socket(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false)
}

/// Which file `path` is (inode and change time: an inode number freed by
/// unlinking may be reused at once), if it exists.
pub(crate) fn file_identity(path: &Path) -> Option<(u64, i64, i64)> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.ino(), m.ctime(), m.ctime_nsec()))
}

// ---------------------------------------------------------------------
// Client

/// `(owner, type, rdata)` in presentation format.
pub(crate) type Rr = (String, String, String);

/// What `dig` got back.
#[derive(Clone, Debug)]
pub(crate) struct DigAnswer {
    pub status: String,
    pub answers: Vec<Rr>,
}

/// One line of `dig`/ldns output (`owner TTL class type rdata`; dig pads
/// with tabs or, after a long owner, a space), or `None`.
pub(crate) fn parse_rr(line: &str) -> Option<Rr> {
    let mut rest = line.trim();
    let mut fields = Vec::new();
    for _ in 0..4 {
        let end = rest.find(char::is_whitespace)?;
        fields.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    if rest.is_empty() || fields[0].starts_with(';') {
        return None;
    }
    Some((
        fields[0].to_string(),
        fields[3].to_string(),
        rest.to_string(),
    ))
}

/// `dig @server name type extra...`: status and answer section.
pub(crate) fn dig_raw(
    ns: &Netns,
    server: &str,
    name: &str,
    rtype: &str,
    extra: &[&str],
) -> DigAnswer {
    let (status, out, err) = output(
        ns.cmd("dig")
            .args(["+time=2", "+tries=1", "+noall", "+comments", "+answer"])
            .args(extra)
            .arg(format!("@{server}"))
            .args([name, rtype]),
        Duration::from_secs(10),
    );
    let code = out
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap().to_string());
    match code {
        Some(code) if status.success() => DigAnswer {
            status: code,
            answers: out.lines().filter_map(parse_rr).collect(),
        },
        _ => DigAnswer {
            status: format!("dig failed ({status}): {out}{err}"),
            answers: Vec::new(),
        },
    }
}

/// One client query and what must come back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Query {
    pub name: &'static str,
    pub rtype: &'static str,
    pub tcp: bool,
    pub status: &'static str,
    /// Rdata every one of which the answer section must hold.
    pub expect: &'static [&'static str],
}

const fn q(name: &'static str, rtype: &'static str, expect: &'static [&'static str]) -> Query {
    Query {
        name,
        rtype,
        tcp: false,
        status: "NOERROR",
        expect,
    }
}

/// The client's queries: the names and types of the zones, some twice (the
/// repeat is answered from the cache: no upstream query, so no
/// RESOLVER_RESPONSE and nothing on the upstream link), one over TCP,
/// CNAME chains within and across zones, an NXDOMAIN and a NODATA.
pub(crate) const QUERIES: &[Query] = &[
    q("www.example.test", "A", &["192.0.2.80", "192.0.2.81"]),
    q("www.example.test", "A", &["192.0.2.80", "192.0.2.81"]),
    q("www.example.test", "AAAA", &["2001:db8::80"]),
    q("www.example.test", "AAAA", &["2001:db8::80"]),
    q(
        "alias2.example.test",
        "A",
        &["alias.example.test.", "www.example.test.", "192.0.2.80"],
    ),
    q(
        "ext.example.test",
        "AAAA",
        &["www.other.test.", "2001:db8:1::180"],
    ),
    q(
        "txt.example.test",
        "TXT",
        &["\"hello world\"", "\"first\" \"second\" \"third\""],
    ),
    Query {
        tcp: true,
        ..q("txt.example.test", "TXT", &["\"hello world\""])
    },
    q(
        "_sip._udp.example.test",
        "SRV",
        &["10 60 5060 sip.example.test."],
    ),
    q("sip.example.test", "A", &["192.0.2.50"]),
    q(
        "example.test",
        "MX",
        &["10 mail.example.test.", "20 mx.other.test."],
    ),
    q("example.test", "A", &["192.0.2.1"]),
    q("example.test", "NS", &["ns1.example.test."]),
    q("mail.example.test", "A", &["192.0.2.25"]),
    q("mail.example.test", "AAAA", &["2001:db8::25"]),
    Query {
        status: "NXDOMAIN",
        ..q("nx.example.test", "A", &[])
    },
    q("nodata.example.test", "AAAA", &[]),
    q("80.2.0.192.in-addr.arpa", "PTR", &["www.example.test."]),
    q("25.2.0.192.in-addr.arpa", "PTR", &["mail.example.test."]),
    q("cdn.other.test", "A", &["www.other.test.", "192.0.2.180"]),
    q("www.other.test", "AAAA", &["2001:db8:1::180"]),
    q("mx.other.test", "A", &["192.0.2.125"]),
];

/// Runs every query of [`QUERIES`] against the resolver in RES, checking
/// each answer; returns the answers.
pub(crate) fn run_queries(lab: &Lab) -> Vec<DigAnswer> {
    QUERIES
        .iter()
        .map(|query| {
            let extra: &[&str] = if query.tcp { &["+tcp"] } else { &[] };
            let answer = dig_raw(lab.res(), RESOLVER, query.name, query.rtype, extra);
            assert_eq!(answer.status, query.status, "{query:?}: {answer:?}");
            for rdata in query.expect {
                assert!(
                    answer.answers.iter().any(|rr| rr.2 == *rdata),
                    "{query:?}: no {rdata} in {answer:?}"
                );
            }
            if query.expect.is_empty() {
                assert!(answer.answers.is_empty(), "{query:?}: {answer:?}");
            }
            answer
        })
        .collect()
}

/// Sends every query of [`QUERIES`] straight to the authoritative server
/// (`+norec`, from RES over the link, each zone at its address of
/// [`ZONES`]), checking the status, and that an answer holds records when
/// one is expected: an authoritative server does not follow a CNAME into
/// another zone, so the rdata a resolver would add may be missing. Returns
/// the answers.
pub(crate) fn run_auth_queries(lab: &Lab) -> Vec<DigAnswer> {
    QUERIES
        .iter()
        .map(|query| {
            let server = ZONES
                .iter()
                .find(|(zone, _, _)| {
                    query.name == *zone || query.name.ends_with(&format!(".{zone}"))
                })
                .map(|(_, _, addr)| *addr)
                .unwrap_or_else(|| panic!("no zone for {query:?}"));
            let mut extra = vec!["+norec"];
            if query.tcp {
                extra.push("+tcp");
            }
            let answer = dig_raw(lab.res(), server, query.name, query.rtype, &extra);
            assert_eq!(answer.status, query.status, "{query:?}: {answer:?}");
            assert_eq!(
                answer.answers.is_empty(),
                query.expect.is_empty(),
                "{query:?}: {answer:?}"
            );
            answer
        })
        .collect()
}

/// The answer records of `answers` (rdata normalised), counted.
pub(crate) fn told(answers: &[DigAnswer]) -> BTreeMap<Rr, u64> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        for record in &answer.answers {
            *counts.entry(normalise(record)).or_insert(0) += 1;
        }
    }
    counts
}

// ---------------------------------------------------------------------
// dnstap-ldns, the independent decoder

/// One dnstap message as `dnstap-ldns -y` shows it.
#[derive(Clone, Debug, Default)]
pub(crate) struct TapMessage {
    /// `RESOLVER_RESPONSE`, `CLIENT_QUERY`, ...
    pub kind: String,
    /// Of the response message, if any: rcode, question, flags, answers.
    pub rcode: Option<String>,
    pub question: Option<(String, String)>,
    pub flags: Vec<String>,
    pub answers: Vec<Rr>,
}

/// Every message of a Frame Streams file, decoded by `dnstap-ldns -y`.
pub(crate) fn ldns_messages(file: &Path) -> Vec<TapMessage> {
    let yaml = run(
        Command::new("dnstap-ldns").arg("-r").arg(file).arg("-y"),
        Duration::from_secs(60),
    );
    let mut messages = Vec::new();
    for doc in yaml.split("\n---\n") {
        let mut m = TapMessage::default();
        let mut in_response = false;
        let mut in_answer = false;
        for line in doc.lines() {
            if let Some(kind) = line.strip_prefix("  type: ") {
                m.kind = kind.trim().to_string();
                continue;
            }
            if line.starts_with("  ") && !line.starts_with("    ") {
                // A field of `message:`; only `response_message: |` is read.
                in_response = line.trim_start().starts_with("response_message:");
                in_answer = false;
                continue;
            }
            if !in_response {
                continue;
            }
            let text = line.trim();
            if let Some(rest) = text.split("rcode: ").nth(1) {
                m.rcode = Some(rest.split(',').next().unwrap().to_string());
            } else if let Some(rest) = text.strip_prefix(";; flags: ") {
                m.flags = rest
                    .split(';')
                    .next()
                    .unwrap()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
            } else if text == ";; ANSWER SECTION:" {
                in_answer = true;
            } else if text.is_empty() || text.starts_with(";;") {
                in_answer = false;
            } else if in_answer {
                if let Some(rr) = parse_rr(text) {
                    m.answers.push(rr);
                }
            } else if m.question.is_none() && text.starts_with(';') {
                let fields: Vec<&str> = text[1..].split_whitespace().collect();
                if fields.len() == 3 {
                    m.question = Some((fields[0].to_string(), fields[2].to_string()));
                }
            }
        }
        if !m.kind.is_empty() {
            messages.push(m);
        }
    }
    messages
}

/// Messages per type.
pub(crate) fn kinds(messages: &[TapMessage]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for m in messages {
        *counts.entry(m.kind.clone()).or_insert(0) += 1;
    }
    counts
}

/// Answer records (rdata normalised, see [`normalise`]) counted over the
/// messages of type `kind`.
pub(crate) fn answer_counts(messages: &[TapMessage], kind: &str) -> BTreeMap<Rr, u64> {
    let mut counts = BTreeMap::new();
    for m in messages.iter().filter(|m| m.kind == kind) {
        for rr in &m.answers {
            *counts.entry(normalise(rr)).or_insert(0) += 1;
        }
    }
    counts
}

/// Negative answers `(qname, qtype, NXDOMAIN|NODATA)` counted over the
/// messages of type `kind` (NODATA: authoritative NOERROR without answers).
pub(crate) fn negative_counts(messages: &[TapMessage], kind: &str) -> BTreeMap<Rr, u64> {
    let mut counts = BTreeMap::new();
    for m in messages.iter().filter(|m| m.kind == kind) {
        let Some((qname, qtype)) = &m.question else {
            continue;
        };
        let negative = match m.rcode.as_deref() {
            Some("NXDOMAIN") => "NXDOMAIN",
            Some("NOERROR") if m.answers.is_empty() && m.flags.iter().any(|f| f == "aa") => {
                "NODATA"
            }
            _ => continue,
        };
        *counts
            .entry((qname.clone(), qtype.clone(), negative.to_string()))
            .or_insert(0) += 1;
    }
    counts
}

/// Rdata as other tools print it vs. as the sensor does: the sensor (the
/// `domain` crate) prints an SRV target without its final dot, dig and
/// ldns with it; a final dot on any rdata field is dropped for comparison.
pub(crate) fn normalise(rr: &Rr) -> Rr {
    let rdata =
        rr.2.split(' ')
            .map(|field| field.strip_suffix('.').unwrap_or(field))
            .collect::<Vec<_>>()
            .join(" ");
    (rr.0.clone(), rr.1.clone(), rdata)
}

// ---------------------------------------------------------------------
// The sensor

/// `pdns-sensor run` with dnstap inputs only, in `ns`, API on
/// [`SENSOR_API`] there.
pub(crate) struct DnstapSensor {
    pub daemon: Daemon,
    netns: String,
    pub db: PathBuf,
    dir: tempfile::TempDir,
}

/// What a stopped sensor left.
pub(crate) struct StoppedSensor {
    pub db: PathBuf,
    pub log: String,
    _dir: tempfile::TempDir,
}

impl DnstapSensor {
    /// Starts `run --dnstap T...` plus `extra` arguments and waits until
    /// every input listens (a Unix socket that existed before, stale, must
    /// have been replaced) and the API answers.
    pub(crate) fn start(ns: &Netns, inputs: &[DnstapTarget], extra: &[&str]) -> DnstapSensor {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("db");
        let stale: Vec<Option<(u64, i64, i64)>> = inputs
            .iter()
            .map(|t| match t {
                DnstapTarget::Unix(p) => file_identity(p),
                DnstapTarget::Tcp(_) => None,
            })
            .collect();
        let mut cmd = ns.cmd(SENSOR);
        cmd.arg("run")
            .args(["--config", "/dev/null", "--db"])
            .arg(&db)
            .args([
                "--listen",
                SENSOR_API,
                "--flush-interval",
                "1",
                "--status-interval",
                "1",
            ]);
        for input in inputs {
            cmd.arg("--dnstap").arg(input.sensor_arg());
        }
        cmd.args(extra)
            .env("RUST_LOG", "info")
            .env_remove("PDNS_DB")
            .env_remove("PDNS_CONFIG");
        let mut daemon = Daemon::spawn(&mut cmd, "pdns-sensor run", &dir.path().join("sensor.log"));
        let netns = ns.name.clone();
        wait_for(Duration::from_secs(30), || {
            daemon.assert_running();
            let inputs_ready = inputs.iter().zip(&stale).all(|(t, old)| match t {
                DnstapTarget::Unix(p) => is_socket(p) && file_identity(p) != *old,
                DnstapTarget::Tcp(a) => listening(ns, 't', &a.to_string()),
            });
            let api = http_get(&netns, SENSOR_API, "/metrics")
                .is_some_and(|m| m.contains("pdns_dnstap_connections_open"));
            ready(inputs_ready && api, || {
                format!(
                    "pdns-sensor did not get ready (inputs listening: {inputs_ready}, \
                     API with dnstap metrics: {api}):\n{}",
                    daemon.log()
                )
            })
        });
        DnstapSensor {
            daemon,
            netns,
            db,
            dir,
        }
    }

    /// The `/metrics` text.
    pub(crate) fn metrics(&self) -> String {
        http_get(&self.netns, SENSOR_API, "/metrics")
            .unwrap_or_else(|| panic!("no /metrics:\n{}", self.daemon.log()))
    }

    /// One sample of `/metrics` (0 if absent).
    pub(crate) fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric(&self.metrics(), name, labels).unwrap_or(0.0)
    }

    /// Waits until the sample reaches `at_least`; returns its value.
    pub(crate) fn wait_metric(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: f64,
        timeout: Duration,
    ) -> f64 {
        self.wait_metric_until(
            name,
            labels,
            timeout,
            |v| v >= at_least,
            &format!(">= {at_least}"),
        )
    }

    /// Waits until the sample is exactly `value`.
    pub(crate) fn wait_metric_eq(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        value: f64,
        timeout: Duration,
    ) {
        self.wait_metric_until(
            name,
            labels,
            timeout,
            |v| v == value,
            &format!("== {value}"),
        );
    }

    fn wait_metric_until(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        good: impl Fn(f64) -> bool,
        wanted: &str,
    ) -> f64 {
        let netns = self.netns.clone();
        let daemon = &mut self.daemon;
        wait_for(timeout, || {
            daemon.assert_running();
            let text = http_get(&netns, SENSOR_API, "/metrics").unwrap_or_default();
            let v = metric(&text, name, labels).unwrap_or(0.0);
            if good(v) {
                Ok(v)
            } else {
                Err(format!(
                    "{name}{labels:?} is {v}, wanted {wanted}:\n{text}\n{}",
                    daemon.log()
                ))
            }
        })
    }

    /// SIGTERM: the sensor stores everything received and exits 0.
    pub(crate) fn stop(mut self) -> StoppedSensor {
        self.daemon.terminate(Duration::from_secs(30));
        StoppedSensor {
            db: self.db.clone(),
            log: self.daemon.log(),
            _dir: self.dir,
        }
    }
}

/// `GET path` from `addr` inside the network namespace `netns`; the body
/// of a 200 answer, or `None`. The request runs on a thread of its own
/// that enters the namespace (setns affects only the calling thread).
pub(crate) fn http_get(netns: &str, addr: &str, path: &str) -> Option<String> {
    let ns_file = format!("/run/netns/{netns}");
    let addr: SocketAddr = addr.parse().unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    std::thread::spawn(move || {
        let file = File::open(&ns_file).unwrap_or_else(|e| panic!("{ns_file}: {e}"));
        // SAFETY: setns(2) with a valid descriptor of a network namespace;
        // it moves only this short-lived thread into the namespace.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(
            rc,
            0,
            "setns {ns_file}: {}",
            std::io::Error::last_os_error()
        );
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .set_write_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let ok = head
            .lines()
            .next()
            .is_some_and(|status| status.split_whitespace().nth(1) == Some("200"));
        ok.then(|| body.to_string())
    })
    .join()
    .unwrap()
}

/// The value of `name{labels}` in Prometheus text (labels: all given ones
/// must match; others may be present).
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric_name, label_text) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric_name != name {
                return None;
            }
            let present: Vec<(&str, &str)> = label_text
                .split(',')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=')?;
                    Some((k.trim(), v.trim().trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|want| present.contains(want))
                .then(|| value.trim().parse().ok())
                .flatten()
        })
}

/// The sum of every sample of `name` (all label values).
pub(crate) fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric_name = series.split('{').next()?;
            (metric_name == name).then(|| value.trim().parse::<f64>().ok())?
        })
        .sum()
}

// ---------------------------------------------------------------------
// The store

/// A stored record's or negative answer's count and origins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub count: u64,
    pub origin: Vec<String>,
}

/// Everything in a database: records `(rrname, rrtype, rdata)` and
/// negative answers `(qname, qtype, rcode)`.
#[derive(Clone, Debug)]
pub(crate) struct Stored {
    pub records: BTreeMap<Rr, Entry>,
    pub negatives: BTreeMap<Rr, Entry>,
}

impl Stored {
    pub(crate) fn read(db: &Path) -> Stored {
        let read = |negative: bool| {
            let mut cmd = Command::new(SENSOR);
            cmd.args(["dump", "--config", "/dev/null", "--json", "--db"])
                .arg(db);
            if negative {
                cmd.arg("--negative");
            }
            let text = run(&mut cmd, Duration::from_secs(60));
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    let third = if negative {
                        v["rcode"].as_str().unwrap().to_string()
                    } else {
                        v["rdata"][0].as_str().unwrap().to_string()
                    };
                    let key = (
                        v["rrname"].as_str().unwrap().to_string(),
                        v["rrtype"].as_str().unwrap().to_string(),
                        third,
                    );
                    let origin = v["origin"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|o| o.as_str().unwrap().to_string())
                        .collect();
                    let entry = Entry {
                        count: v["count"].as_u64().unwrap(),
                        origin,
                    };
                    (key, entry)
                })
                .collect::<BTreeMap<_, _>>()
        };
        Stored {
            records: read(false),
            negatives: read(true),
        }
    }

    /// Record counts.
    pub(crate) fn record_counts(&self) -> BTreeMap<Rr, u64> {
        self.records
            .iter()
            .map(|(k, e)| (k.clone(), e.count))
            .collect()
    }

    /// Record counts, rdata normalised (to compare with dig or ldns).
    pub(crate) fn normalised_counts(&self) -> BTreeMap<Rr, u64> {
        let mut counts = BTreeMap::new();
        for (k, e) in &self.records {
            *counts.entry(normalise(k)).or_insert(0) += e.count;
        }
        counts
    }

    /// Negative answer counts.
    pub(crate) fn negative_counts(&self) -> BTreeMap<Rr, u64> {
        self.negatives
            .iter()
            .map(|(k, e)| (k.clone(), e.count))
            .collect()
    }

    /// Panics unless every record and negative answer has exactly the
    /// origins `origin`.
    pub(crate) fn assert_origin(&self, origin: &[&str]) {
        for (k, e) in self.records.iter().chain(&self.negatives) {
            assert_eq!(e.origin, origin, "origin of {k:?}");
        }
    }
}

/// Panics, listing the differences, unless `a` (`what_a`) equals `b`.
pub(crate) fn assert_same_counts(
    what_a: &str,
    a: &BTreeMap<Rr, u64>,
    what_b: &str,
    b: &BTreeMap<Rr, u64>,
) {
    if a == b {
        return;
    }
    let mut diff = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => diff += &format!("  only in {what_a}: {k:?} x{v}\n"),
            Some(w) if w != v => diff += &format!("  {k:?}: {what_a} x{v}, {what_b} x{w}\n"),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            diff += &format!("  only in {what_b}: {k:?} x{v}\n");
        }
    }
    panic!("{what_a} and {what_b} differ:\n{diff}");
}

/// A fresh database filled by `pdns-sensor ingest` (pcap, pcapng or
/// Frame Streams, told apart by content), with the run's stats JSON.
pub(crate) struct Ingested {
    pub db: PathBuf,
    pub stats: serde_json::Value,
    _dir: tempfile::TempDir,
}

pub(crate) fn ingest(files: &[&Path]) -> Ingested {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let stats = dir.path().join("stats.json");
    let mut cmd = Command::new(SENSOR);
    cmd.args([
        "ingest",
        "--config",
        "/dev/null",
        "--quiet",
        "--threads",
        "1",
        "--db",
    ])
    .arg(&db)
    .arg("--stats-json")
    .arg(&stats)
    .args(files);
    run(&mut cmd, Duration::from_secs(120));
    let stats = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    Ingested {
        db,
        stats,
        _dir: dir,
    }
}

/// Every number in a JSON document whose key path (joined by `.`)
/// contains `needle`, e.g. the dnstap message counters of the stats.
pub(crate) fn find_numbers(v: &serde_json::Value, needle: &str) -> Vec<(String, u64)> {
    fn walk(v: &serde_json::Value, path: &str, needle: &str, out: &mut Vec<(String, u64)>) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, child) in map {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(child, &p, needle, out);
                }
            }
            serde_json::Value::Number(n) if path.contains(needle) => {
                if let Some(n) = n.as_u64() {
                    out.push((path.to_string(), n));
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", needle, &mut out);
    out
}
