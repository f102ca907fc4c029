//! dnstap input, end to end, with the DNS responses of the real test
//! captures as payloads: the same responses sent over dnstap (a file, and
//! sockets with concurrent senders) must make exactly the store their
//! pcap ingest makes; hostile senders (garbage, a wrong content type,
//! oversized and truncated frames, broken protobufs) are cut off and
//! counted while a well-behaved sender on the same sensor loses nothing;
//! `run --dnstap` alone needs no privileges; many senders connect and
//! reconnect; senders over the connection cap are refused and counted; a
//! socket left by a killed sensor is replaced.
//!
//! The senders here are written in the test (the Frame Streams handshake
//! with the library's encoder, so a handshake bug on both sides would
//! cancel out — the real senders of `dnstap_senders.rs` check against
//! Unbound, PowerDNS Recursor and BIND).

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pdns_sensor::decode::{DecodeConfig, Decoder};
use pdns_sensor::report::RunReport;
use pdns_sensor::source::dnstap::frame_streams::{
    CONTENT_TYPE, ControlType, encode_control, encode_data,
};
use pdns_sensor::source::dnstap::proto;
use pdns_sensor::source::pcap;
use pdns_sensor::store::Store;
use pdns_sensor::vocab::packet::Transport;
use prost::Message as _;

/// One DNS message of a capture, with its capture time.
#[derive(Clone)]
struct Captured {
    secs: u64,
    nanos: u32,
    tcp: bool,
    dns: Vec<u8>,
}

/// Every DNS response the decoder finds in `files` (the same decoding
/// `ingest --threads 1` does: one decoder for all the files, so a TCP
/// stream seen in two files is reassembled once, as there).
fn responses(files: &[PathBuf]) -> Vec<Captured> {
    let mut out = Vec::new();
    let mut decoder = Decoder::new(&DecodeConfig::default());
    {
        let mut emit = |m: pdns_sensor::vocab::packet::DnsMessage<'_>| {
            if m.data.len() > 2 && m.data[2] & 0x80 != 0 {
                out.push(Captured {
                    secs: m.ts.secs,
                    nanos: m.ts.nanos,
                    tcp: m.transport == Transport::Tcp,
                    dns: m.data.to_vec(),
                });
            }
        };
        for file in files {
            let _ = pcap::read_file(file, |frame| decoder.decode(frame, &mut emit));
        }
        decoder.finish(&mut emit);
    }
    out
}

/// A dnstap protobuf of `kind` carrying `c` as its response.
fn dnstap(c: &Captured, kind: proto::message::Type, identity: &str) -> Vec<u8> {
    proto::Dnstap {
        identity: Some(Bytes::copy_from_slice(identity.as_bytes())),
        version: Some(Bytes::from_static(b"test")),
        r#type: proto::dnstap::Type::Message as i32,
        message: Some(proto::Message {
            r#type: kind as i32,
            socket_family: Some(proto::SocketFamily::Inet as i32),
            socket_protocol: Some(if c.tcp {
                proto::SocketProtocol::Tcp
            } else {
                proto::SocketProtocol::Udp
            } as i32),
            query_time_sec: Some(c.secs.saturating_sub(1)),
            response_time_sec: Some(c.secs),
            response_time_nsec: Some(c.nanos),
            response_message: Some(Bytes::copy_from_slice(&c.dns)),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A query message (no answers, ignored and counted).
fn query_frame() -> Vec<u8> {
    proto::Dnstap {
        r#type: proto::dnstap::Type::Message as i32,
        message: Some(proto::Message {
            r#type: proto::message::Type::ResolverQuery as i32,
            query_time_sec: Some(1),
            query_message: Some(Bytes::from_static(
                b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x01",
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

/// A Frame Streams sender (bidirectional, as resolvers do on sockets).
struct Sender<S: Read + Write> {
    stream: S,
}

impl<S: Read + Write> Sender<S> {
    fn open(mut stream: S) -> Sender<S> {
        stream
            .write_all(&encode_control(ControlType::Ready, Some(CONTENT_TYPE)))
            .unwrap();
        let accept = read_control(&mut stream);
        assert_eq!(
            accept,
            encode_control(ControlType::Accept, Some(CONTENT_TYPE)),
            "ACCEPT with our content type"
        );
        stream
            .write_all(&encode_control(ControlType::Start, Some(CONTENT_TYPE)))
            .unwrap();
        Sender { stream }
    }

    fn send(&mut self, payloads: &[Vec<u8>]) {
        let mut wire = Vec::new();
        for p in payloads {
            encode_data(p, &mut wire);
        }
        self.stream.write_all(&wire).unwrap();
    }

    /// STOP, then the receiver's FINISH.
    fn stop(mut self) {
        self.stream
            .write_all(&encode_control(ControlType::Stop, None))
            .unwrap();
        assert_eq!(
            read_control(&mut self.stream),
            encode_control(ControlType::Finish, None)
        );
    }
}

fn read_control(stream: &mut impl Read) -> Vec<u8> {
    let mut head = [0u8; 8];
    stream.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], &[0, 0, 0, 0], "a control frame");
    let len = u32::from_be_bytes(head[4..8].try_into().unwrap()) as usize;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    [&head[..], &body].concat()
}

fn connect(path: &Path) -> UnixStream {
    let s = UnixStream::connect(path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// `pdns-sensor run` with dnstap input only, killed if dropped.
struct Sensor {
    child: Child,
    dir: tempfile::TempDir,
    api: u16,
    socket: PathBuf,
}

impl Sensor {
    fn start(extra: &[&str]) -> Sensor {
        Sensor::start_as(&[], extra)
    }

    /// Started through `wrapper` (setpriv, say), in a directory anyone may
    /// write.
    fn start_as(wrapper: &[&str], extra: &[&str]) -> Sensor {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let socket = dir.path().join("run/dnstap.sock");
        let api = common::free_port();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = std::process::Command::new(program);
                c.args(args).arg(env!("CARGO_BIN_EXE_pdns-sensor"));
                common::hermetic(&mut c);
                c
            }
            None => common::sensor_command(),
        };
        cmd.arg("run")
            .arg("--db")
            .arg(dir.path().join("db"))
            .arg("--dnstap")
            .arg(format!("unix:{}", socket.display()))
            .args(["--listen", &format!("127.0.0.1:{api}")])
            .arg("--stats-json")
            .arg(dir.path().join("stats.json"))
            .args(["--flush-interval", "1"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap());
        let child = cmd.spawn().unwrap();
        let mut sensor = Sensor {
            child,
            dir,
            api,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(sensor.socket.exists() && std::net::TcpStream::connect(("127.0.0.1", api)).is_ok())
        {
            if let Some(status) = sensor.child.try_wait().unwrap() {
                panic!("run exited ({status}):\n{}", sensor.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "run did not start:\n{}",
                sensor.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sensor
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// The `/metrics` samples whose name starts with `prefix`.
    fn metrics(&self, prefix: &str) -> BTreeMap<String, f64> {
        let body = common::get(
            format!("127.0.0.1:{}", self.api).parse().unwrap(),
            "/metrics",
            &[],
        )
        .body;
        body.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| {
                let (k, v) = l.rsplit_once(' ')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    /// SIGTERM; waits for a clean exit and returns the run's report.
    fn stop(mut self) -> (RunReport, tempfile::TempDir) {
        // SAFETY: plain syscall on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "run did not stop:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "run failed ({status}):\n{}",
            self.stderr()
        );
        let text = std::fs::read_to_string(self.dir.path().join("stats.json")).unwrap();
        let report: RunReport = serde_json::from_str(&text).unwrap();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (report, dir)
    }
}

impl Drop for Sensor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The store's records with their origins, and without them.
fn stored(db: &Path) -> Stored {
    let store = Store::open_reader(db).unwrap();
    (common::all_records(&store), common::negatives(&store))
}

type Stored = (Vec<common::Line>, Vec<(String, String, String, u64)>);

/// Fails with the differences only (the stores hold thousands of records).
fn assert_same(got: &Stored, expected: &Stored, what: &str) {
    let diff = |a: &[common::Line], b: &[common::Line]| -> Vec<common::Line> {
        a.iter()
            .filter(|x| !b.contains(x))
            .take(10)
            .cloned()
            .collect()
    };
    let missing = diff(&expected.0, &got.0);
    let extra = diff(&got.0, &expected.0);
    assert!(
        missing.is_empty() && extra.is_empty() && got.1 == expected.1,
        "{what}: missing {missing:?}\nextra {extra:?}\nnegatives equal: {}",
        got.1 == expected.1
    );
    assert_eq!(got, expected, "{what}");
}

/// setpriv needs root to switch users.
fn require_root() {
    // SAFETY: plain syscall.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test needs root (it runs the sensor as nobody)"
    );
}

/// Captures with many record types, TCP and fragments among them.
fn sample_captures() -> Vec<PathBuf> {
    let all = common::all_pcaps();
    assert!(all.len() > 100);
    all
}

#[test]
fn dnstap_of_real_captures_equals_their_pcap_ingest() {
    let files = sample_captures();
    let captured = responses(&files);
    let baseline = common::ingest(&files);
    assert!(captured.len() > 300, "only {} responses", captured.len());
    let expected = stored(&baseline.db());
    assert!(expected.0.len() > 300 && !expected.1.is_empty());

    // 1. A Frame Streams file (unidirectional: START, data, STOP), with a
    //    query and a client response among the data (not recorded).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capture.fstrm");
    let mut wire = encode_control(ControlType::Start, Some(CONTENT_TYPE));
    for (i, c) in captured.iter().enumerate() {
        encode_data(
            &dnstap(c, proto::message::Type::ResolverResponse, "file"),
            &mut wire,
        );
        if i % 100 == 0 {
            encode_data(&query_frame(), &mut wire);
            encode_data(
                &dnstap(c, proto::message::Type::ClientResponse, "file"),
                &mut wire,
            );
        }
    }
    wire.extend(encode_control(ControlType::Stop, None));
    std::fs::write(&file, &wire).unwrap();
    let from_file = common::ingest(std::slice::from_ref(&file));
    let d = from_file.report.dnstap.as_ref().expect("a dnstap report");
    assert_eq!(d.recorded, captured.len() as u64);
    let extra = captured.len().div_ceil(100) as u64;
    assert_eq!(d.discarded["query"], extra);
    assert_eq!(d.discarded["type_not_selected"], extra);
    assert_eq!(d.messages["resolver_response"], captured.len() as u64);
    assert_same(
        &stored(&from_file.db()),
        &expected,
        "file ingest vs pcap ingest",
    );
    // The origin is dnstap's.
    let store = Store::open_reader(&from_file.db()).unwrap();
    let origins: std::collections::BTreeSet<Vec<&str>> = store
        .records(&pdns_sensor::store::Selector::All, &Default::default())
        .map(|r| r.unwrap().value.origin.names())
        .collect();
    assert_eq!(
        origins.into_iter().collect::<Vec<_>>(),
        vec![vec!["dnstap"]]
    );
    // The same file with --dnstap-types client-response,resolver-response
    // records the client responses too.
    let both = common::ingest_with(std::slice::from_ref(&file), |a| {
        a.dnstap.dnstap_types =
            pdns_sensor::source::dnstap::Selection::parse("client-response,resolver-response")
                .unwrap();
    });
    assert_eq!(
        both.report.dnstap.as_ref().unwrap().recorded,
        captured.len() as u64 + extra
    );

    // 2. Sockets: four concurrent senders share the responses.
    let sensor = Sensor::start(&["--dnstap-threads", "2"]);
    let shares: Vec<Vec<Vec<u8>>> = (0..4)
        .map(|s| {
            captured
                .iter()
                .skip(s)
                .step_by(4)
                .map(|c| {
                    dnstap(
                        c,
                        proto::message::Type::ResolverResponse,
                        &format!("sender-{s}"),
                    )
                })
                .collect()
        })
        .collect();
    let socket = Arc::new(sensor.socket.clone());
    let threads: Vec<_> = shares
        .into_iter()
        .map(|share| {
            let socket = Arc::clone(&socket);
            std::thread::spawn(move || {
                let mut sender = Sender::open(connect(&socket));
                for chunk in share.chunks(97) {
                    sender.send(chunk);
                }
                sender.stop();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Each sender's frames are counted under its identity. The counters
    // are published as the sensor's threads get to them, which can be a
    // moment after a sender has finished: wait for them (10 s at most).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let frames = sensor.metrics("pdns_dnstap_frames_total");
        let missing: Vec<_> = (0..4)
            .filter(|s| {
                !frames.contains_key(&format!(
                    "pdns_dnstap_frames_total{{identity=\"sender-{s}\"}}"
                ))
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no frames counted for senders {missing:?}: {frames:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (report, dir) = sensor.stop();
    let d = report.dnstap.expect("a dnstap report");
    assert_eq!(d.recorded, captured.len() as u64);
    let c = d.connections.unwrap();
    assert_eq!((c.accepted, c.finished, c.protocol_errors), (4, 4, 0));
    assert_eq!(report.filter, "none", "nothing captured");
    assert_same(
        &stored(&dir.path().join("db")),
        &expected,
        "socket input vs pcap ingest",
    );
}

#[test]
fn hostile_senders_are_cut_off_and_counted_while_a_good_one_loses_nothing() {
    let files = sample_captures();
    let captured: Vec<Captured> = responses(&files).into_iter().take(3000).collect();
    let sensor = Sensor::start(&["--dnstap-max-frame", "70000"]);
    let good: Vec<Vec<u8>> = captured
        .iter()
        .map(|c| dnstap(c, proto::message::Type::ResolverResponse, "good"))
        .collect();
    let socket = sensor.socket.clone();
    let good_sender = std::thread::spawn(move || {
        let mut sender = Sender::open(connect(&socket));
        for chunk in good.chunks(50) {
            sender.send(chunk);
            std::thread::sleep(Duration::from_millis(2));
        }
        sender.stop();
    });

    // Garbage: an HTTP request. The connection is closed.
    let mut garbage = connect(&sensor.socket);
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    assert_eq!(
        garbage.read_to_end(&mut rest).unwrap(),
        0,
        "closed, nothing sent back"
    );

    // A wrong content type in READY: no ACCEPT, closed.
    let mut wrong = connect(&sensor.socket);
    wrong
        .write_all(&encode_control(
            ControlType::Ready,
            Some(b"protobuf:other.Thing"),
        ))
        .unwrap();
    assert_eq!(wrong.read_to_end(&mut rest).unwrap(), 0);

    // Bad frames on an otherwise good stream: an oversized one (skipped),
    // one that is not protobuf, a Dnstap without its message, a response
    // without its DNS message, a malformed DNS message, a rewritten one —
    // then good frames again, then a frame cut off by a disconnect.
    let mut bad = Sender::open(connect(&sensor.socket));
    let mut big = captured[0].clone();
    big.dns.extend(vec![0u8; 80_000]);
    let mut no_response = proto::Dnstap::decode(
        &dnstap(&captured[0], proto::message::Type::ResolverResponse, "bad")[..],
    )
    .unwrap();
    no_response.message.as_mut().unwrap().response_message = None;
    let mut rewritten = proto::Dnstap::decode(
        &dnstap(&captured[1], proto::message::Type::ResolverResponse, "bad")[..],
    )
    .unwrap();
    rewritten.message.as_mut().unwrap().policy = Some(proto::Policy {
        action: Some(proto::policy::Action::Nxdomain as i32),
        ..Default::default()
    });
    let mut malformed = captured[2].clone();
    malformed.dns.truncate(14);
    let tail: Vec<Vec<u8>> = captured[3..13]
        .iter()
        .map(|c| dnstap(c, proto::message::Type::ResolverResponse, "bad"))
        .collect();
    bad.send(&[
        dnstap(&big, proto::message::Type::ResolverResponse, "bad"),
        b"\xff\xfe not a protobuf".to_vec(),
        proto::Dnstap {
            r#type: proto::dnstap::Type::Message as i32,
            ..Default::default()
        }
        .encode_to_vec(),
        no_response.encode_to_vec(),
        rewritten.encode_to_vec(),
        dnstap(&malformed, proto::message::Type::ResolverResponse, "bad"),
    ]);
    bad.send(&tail);
    let mut cut = Vec::new();
    encode_data(&tail[0], &mut cut);
    cut.truncate(cut.len() / 2);
    bad.stream.write_all(&cut).unwrap();
    drop(bad);

    good_sender.join().unwrap();
    // Everything above has been read once the sensor has counted it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = sensor.metrics("pdns_dnstap_connections_ended_total");
        if m.values().sum::<f64>() >= 4.0 {
            break;
        }
        assert!(Instant::now() < deadline, "{m:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let discarded = sensor.metrics("pdns_dnstap_discarded_total");
    let reason = |r: &str| discarded[&format!("pdns_dnstap_discarded_total{{reason=\"{r}\"}}")];
    assert_eq!(reason("frame_too_large"), 1.0);
    assert_eq!(reason("protobuf"), 1.0);
    assert_eq!(reason("not_message"), 1.0);
    assert_eq!(reason("no_response"), 1.0);
    assert_eq!(reason("policy"), 1.0);
    assert_eq!(reason("truncated_frame"), 1.0);
    let handshakes = sensor.metrics("pdns_dnstap_handshake_failures_total");
    assert_eq!(handshakes["pdns_dnstap_handshake_failures_total"], 2.0);

    let (report, dir) = sensor.stop();
    let d = report.dnstap.unwrap();
    // The good sender's, the bad sender's malformed one and its 10.
    assert_eq!(d.recorded, captured.len() as u64 + 1 + 10);
    let c = d.connections.unwrap();
    assert_eq!(c.accepted, 4);
    assert_eq!(
        (
            c.finished,
            c.protocol_errors,
            c.handshake_failures,
            c.truncated
        ),
        (1, 2, 2, 1)
    );

    // The store holds exactly what the good frames carry: compare with an
    // ingest of the same responses as a file.
    let file = dir.path().join("expected.fstrm");
    let mut wire = encode_control(ControlType::Start, None);
    for c in captured.iter().chain(&captured[3..13]) {
        encode_data(
            &dnstap(c, proto::message::Type::ResolverResponse, "x"),
            &mut wire,
        );
    }
    std::fs::write(&file, &wire).unwrap();
    let expected = common::ingest(&[file]);
    assert_eq!(stored(&dir.path().join("db")), stored(&expected.db()));
}

#[test]
fn dnstap_only_runs_without_privileges_and_replaces_a_stale_socket() {
    require_root();
    let captured: Vec<Captured> = responses(&sample_captures())
        .into_iter()
        .take(500)
        .collect();
    let payloads: Vec<Vec<u8>> = captured
        .iter()
        .map(|c| dnstap(c, proto::message::Type::AuthResponse, "auth"))
        .collect();
    // As nobody, without any capability: no ring is opened, so none is needed.
    let nobody = [
        "setpriv",
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    let sensor = Sensor::start_as(
        &nobody,
        &[
            "--dnstap-socket-mode",
            "0600",
            "--dnstap-socket-group",
            "nogroup",
        ],
    );
    let meta = std::fs::metadata(&sensor.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let nogroup = pdns_sensor::source::dnstap::endpoint::lookup_group("nogroup").unwrap();
    assert_eq!(meta.gid(), nogroup);
    let mut sender = Sender::open(connect(&sensor.socket));
    sender.send(&payloads);
    sender.stop();
    // Killed: the socket file stays behind.
    let mut sensor = sensor;
    sensor.child.kill().unwrap();
    sensor.child.wait().unwrap();
    assert!(sensor.socket.exists());
    let (socket, db_dir) = (
        sensor.socket.clone(),
        std::mem::replace(&mut sensor.dir, tempfile::tempdir().unwrap()),
    );
    drop(sensor);
    // A new sensor on the same path replaces it, and records (its store
    // is a new one: the killed sensor's flushes are not what is tested).
    let api = common::free_port();
    let mut child = common::sensor_command()
        .arg("run")
        .arg("--db")
        .arg(db_dir.path().join("db2"))
        .arg("--dnstap")
        .arg(format!("unix:{}", socket.display()))
        .args(["--listen", &format!("127.0.0.1:{api}")])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match UnixStream::connect(&socket) {
            Ok(s) => break s,
            Err(_) => {
                assert!(child.try_wait().unwrap().is_none(), "run exited");
                assert!(
                    Instant::now() < deadline,
                    "the stale socket was not replaced"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut sender = Sender::open(stream);
    sender.send(&payloads);
    sender.stop();
    // SAFETY: plain syscall on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("replacing the stale dnstap socket"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!socket.exists(), "the socket file is removed at exit");
    let (records, _) = stored(&db_dir.path().join("db2"));
    assert!(records.len() > 50, "{} records", records.len());
}

#[test]
fn many_senders_connect_and_reconnect() {
    let captured: Vec<Captured> = responses(&sample_captures())
        .into_iter()
        .take(2000)
        .collect();
    let payloads: Arc<Vec<Vec<u8>>> = Arc::new(
        captured
            .iter()
            .map(|c| dnstap(c, proto::message::Type::ForwarderResponse, "fwd"))
            .collect(),
    );
    let tcp = common::free_port();
    let sensor = Sensor::start(&["--dnstap", &format!("tcp:127.0.0.1:{tcp}")]);
    let socket = Arc::new(sensor.socket.clone());
    // 16 senders, half on the Unix socket, half over TCP, each connecting
    // three times and sending its share; some close without STOP.
    let threads: Vec<_> = (0..16)
        .map(|s| {
            let socket = Arc::clone(&socket);
            let payloads = Arc::clone(&payloads);
            std::thread::spawn(move || {
                let mine: Vec<Vec<u8>> = payloads.iter().skip(s).step_by(16).cloned().collect();
                for (round, part) in mine.chunks(mine.len().div_ceil(3)).enumerate() {
                    if s % 2 == 0 {
                        let mut sender = Sender::open(connect(&socket));
                        sender.send(part);
                        if round == 1 {
                            // Gone without STOP: what was sent still counts.
                            continue;
                        }
                        sender.stop();
                    } else {
                        let stream = std::net::TcpStream::connect(("127.0.0.1", tcp)).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        let mut sender = Sender::open(stream);
                        sender.send(part);
                        sender.stop();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while sensor.metrics("pdns_dnstap_connections_open")["pdns_dnstap_connections_open"] != 0.0 {
        assert!(Instant::now() < deadline, "connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (report, _dir) = sensor.stop();
    let d = report.dnstap.unwrap();
    assert_eq!(d.recorded, payloads.len() as u64, "nothing lost");
    let c = d.connections.unwrap();
    assert_eq!(c.accepted, 48);
    assert_eq!(c.closed, 8, "eight closed without STOP");
    assert_eq!(c.finished, 40);
}

#[test]
fn senders_beyond_the_connection_cap_are_refused_and_counted() {
    let captured: Vec<Captured> = responses(&sample_captures())
        .into_iter()
        .take(300)
        .collect();
    let payloads: Vec<Vec<u8>> = captured
        .iter()
        .map(|c| dnstap(c, proto::message::Type::ForwarderResponse, "fwd"))
        .collect();
    let (first_part, rest) = payloads.split_at(100);
    let (second_part, third_part) = rest.split_at(100);
    let sensor = Sensor::start(&["--dnstap-max-connections", "2"]);
    let mut first = Sender::open(connect(&sensor.socket));
    let mut second = Sender::open(connect(&sensor.socket));
    first.send(first_part);
    second.send(second_part);
    // A third sender, with two open: closed before any handshake.
    let mut refused = connect(&sensor.socket);
    let _ = refused.write_all(&encode_control(ControlType::Ready, Some(CONTENT_TYPE)));
    let mut buf = [0u8; 64];
    match refused.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a sender over the cap was answered: {other:?}"),
    }
    let count = |result: &str| {
        sensor.metrics("pdns_dnstap_connections_total")
            [&format!("pdns_dnstap_connections_total{{result=\"{result}\"}}")]
    };
    assert_eq!(count("refused"), 1.0, "{}", sensor.stderr());
    assert!(
        sensor.stderr().contains("--dnstap-max-connections"),
        "the refusal is logged with the setting to change:\n{}",
        sensor.stderr()
    );
    // The two held senders lost nothing, and a slot comes back when one
    // ends.
    first.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while sensor.metrics("pdns_dnstap_connections_open")["pdns_dnstap_connections_open"] != 1.0 {
        assert!(
            Instant::now() < deadline,
            "the finished sender's slot never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut third = Sender::open(connect(&sensor.socket));
    third.send(third_part);
    third.stop();
    second.stop();
    let (report, dir) = sensor.stop();
    let d = report.dnstap.unwrap();
    assert_eq!(d.recorded, payloads.len() as u64, "nothing lost");
    let c = d.connections.unwrap();
    assert_eq!((c.accepted, c.refused, c.finished), (3, 1, 3));
    // Exactly what one sender with every message makes.
    let single = Sensor::start(&[]);
    let mut all = Sender::open(connect(&single.socket));
    all.send(&payloads);
    all.stop();
    let (_, single_dir) = single.stop();
    assert_same(
        &stored(&dir.path().join("db")),
        &stored(&single_dir.path().join("db")),
        "three senders through a cap of two vs one sender",
    );
}
