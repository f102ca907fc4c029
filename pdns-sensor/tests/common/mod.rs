//! Helpers shared by the integration tests: where the test data is, and
//! ingesting captures into a throw-away database through the same code
//! path as `pdns-sensor ingest`; `serve` as a child process (`process`);
//! a test CA and an HTTPS client (`tls`); loopback ports for the servers
//! tests start ([`free_port`]).
#![allow(dead_code)]

pub(crate) mod clickhouse;
pub(crate) mod process;
pub(crate) mod tls;
pub(crate) mod tunnel;

use std::path::{Path, PathBuf};

use pdns_sensor::cli::DbArgs;
use pdns_sensor::cli::ingest::{self, IngestArgs};
use pdns_sensor::dump::Row;
use pdns_sensor::report::IngestReport;
use pdns_sensor::store::{Filter, Selector, Store};

/// A loopback port free for TCP and UDP, never handed out twice in this
/// process.
///
/// Tests run as parallel threads, each starting servers that bind their
/// ports a moment after choosing them, next to Chromium, ClickHouse and
/// resolvers that bind ephemeral ports of their own: a port found free by
/// binding port 0 and letting it go is an ephemeral port, which any of
/// them can take in between. These come from a range below the kernel's
/// ephemeral ports (32768 and up), per process, from a counter.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 24) as u16 * 500;
    for _ in 0..500 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 500;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 500);
}

/// The repository's `testdata/` (captures, Zeek baselines, `pairs.tsv`;
/// see its `MANIFEST.md`). Fails loudly if it is missing: these tests must
/// not pass by finding nothing.
pub(crate) fn testdata() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dir = root.join("testdata");
    assert!(
        dir.join("MANIFEST.md").exists(),
        "test data not found at {} (it is part of the repository: testdata/)",
        dir.display()
    );
    dir
}

pub(crate) fn pcap(rel: &str) -> PathBuf {
    let p = testdata().join("pcap").join(rel);
    assert!(p.exists(), "missing capture {}", p.display());
    p
}

pub(crate) struct Ingested {
    pub dir: tempfile::TempDir,
    pub report: IngestReport,
}

impl Ingested {
    pub(crate) fn db(&self) -> PathBuf {
        self.dir.path().join("db")
    }

    pub(crate) fn store(&self) -> Store {
        Store::open_reader(&self.db()).unwrap()
    }
}

pub(crate) fn args(db: &Path, files: &[PathBuf]) -> IngestArgs {
    IngestArgs {
        db: DbArgs {
            db: db.to_path_buf(),
        },
        threads: 1,
        pipeline: Default::default(),
        retention: Default::default(),
        nod: Default::default(),
        export: Default::default(),
        dnstap: Default::default(),
        compact: false,
        stats_json: None,
        quiet: true,
        status_interval: 10,
        files: files.to_vec(),
    }
}

/// Ingests files into a fresh database with the given tweaks.
/// `import-zeek` arguments for `paths` into `db`, everything else at its
/// default (quiet).
pub(crate) fn import_zeek_args(
    db: &Path,
    paths: &[PathBuf],
) -> pdns_sensor::cli::import_zeek::ImportZeekArgs {
    pdns_sensor::cli::import_zeek::ImportZeekArgs {
        db: DbArgs {
            db: db.to_path_buf(),
        },
        retention: Default::default(),
        nod: Default::default(),
        export: Default::default(),
        follow: None,
        aggregate_entries: 100_000,
        flush_interval: 5,
        stats_json: None,
        quiet: true,
        status_interval: 10,
        paths: paths.to_vec(),
    }
}

pub(crate) fn ingest_with(files: &[PathBuf], tweak: impl FnOnce(&mut IngestArgs)) -> Ingested {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args(&dir.path().join("db"), files);
    tweak(&mut a);
    let report = ingest::run(&a).unwrap();
    Ingested { dir, report }
}

pub(crate) fn ingest(files: &[PathBuf]) -> Ingested {
    ingest_with(files, |_| {})
}

/// The binary, hermetic (see [`hermetic`]).
pub(crate) fn sensor_command() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_pdns-sensor"));
    hermetic(&mut c);
    c
}

/// Runs `c` without the `PDNS_*` variables of the caller's environment and
/// without a configuration file (not even the default path's), with colour
/// left to the terminal test.
pub(crate) fn hermetic(c: &mut std::process::Command) -> &mut std::process::Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PDNS_") {
            c.env_remove(key);
        }
    }
    c.env("PDNS_CONFIG", "/dev/null").env_remove("NO_COLOR")
}

/// Every record as `(name, type, rdata, count, ttl, first, last)` with text
/// fields, sorted.
pub(crate) type Line = (String, String, String, u64, u32, u64, u64);

pub(crate) fn records(store: &Store, selector: &Selector) -> Vec<Line> {
    let filter = Filter::default();
    let mut out: Vec<Line> = store
        .records(selector, &filter)
        .map(|r| {
            let row = Row::record(&r.unwrap());
            (
                row.name,
                row.rtype,
                row.data,
                row.value.count,
                row.value.ttl,
                row.value.first,
                row.value.last,
            )
        })
        .collect();
    out.sort();
    out
}

pub(crate) fn all_records(store: &Store) -> Vec<Line> {
    records(store, &Selector::All)
}

pub(crate) fn negatives(store: &Store) -> Vec<(String, String, String, u64)> {
    let filter = Filter::default();
    let mut out: Vec<_> = store
        .negatives(&Selector::All, &filter)
        .map(|r| {
            let row = Row::negative(&r.unwrap());
            (row.name, row.rtype, row.data, row.value.count)
        })
        .collect();
    out.sort();
    out
}

/// Every capture file under `testdata/pcap`.
pub(crate) fn all_pcaps() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![testdata().join("pcap")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    assert!(
        out.len() > 100,
        "expected the full capture set of testdata/pcap, found {}",
        out.len()
    );
    out
}

/// Rewrites a capture frame by frame (for variants of real captures, e.g.
/// an extra VLAN tag) into a classic Ethernet pcap.
pub(crate) fn rewrite_pcap(input: &Path, output: &Path, mut f: impl FnMut(&[u8]) -> Vec<u8>) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    pdns_sensor::source::pcap::read_file(input, |frame| {
        let data = f(frame.data);
        out.extend_from_slice(&(frame.ts.secs as u32).to_le_bytes());
        out.extend_from_slice(&(frame.ts.nanos / 1000).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
    })
    .unwrap();
    std::fs::write(output, out).unwrap();
}

/// A running API server over a store, on an ephemeral loopback port.
pub(crate) struct Server {
    pub addr: std::net::SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

pub(crate) fn serve(
    store: std::sync::Arc<Store>,
    config: pdns_sensor::serve::ServeConfig,
) -> Server {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let state = std::sync::Arc::new(pdns_sensor::serve::AppState {
        backend: pdns_sensor::serve::Backend::Store(store),
        config,
    });
    runtime.spawn(async move {
        axum::serve(listener, pdns_sensor::serve::router(state))
            .await
            .unwrap();
    });
    Server {
        addr,
        _runtime: runtime,
    }
}

/// A response: status, headers (lowercase names), body.
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn lines(&self) -> Vec<serde_json::Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

/// A plain HTTP/1.1 GET over a fresh connection (no client library, so the
/// bytes on the wire are exactly what a test says).
pub(crate) fn get(addr: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
}
