//! `pdns-sensor serve --tls-cert --tls-key` with a certificate authority
//! made by the test: curl, dnsdbq, the Python clients and the shipped MISP
//! module over HTTPS; TLS 1.2 and 1.3; plain HTTP on the TLS port; SIGHUP
//! swapping the certificate under a live connection; start-up errors.
//!
//! dnsdbq's libcurl reads no environment variable for its CA bundle, so
//! it runs in a private mount namespace (`unshare`) where the test CA is
//! bind-mounted over the system bundle: nothing changes outside that one
//! process.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{ServeProcess, client, client_ok, serve_failure};
use common::tls::{TestCa, TlsConn, serial};

/// A database from real captures, a CA, and `serve` over TLS with keys.
struct Fixture {
    _ingested: common::Ingested,
    dir: tempfile::TempDir,
    ca: TestCa,
    ca_file: std::path::PathBuf,
    serve: ServeProcess,
}

fn fixture() -> Fixture {
    let ingested = common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write_ca(dir.path());
    let cert = ca.server_cert(dir.path(), "server", 1);
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "testkey\nuser:pass\n").unwrap();
    let serve = ServeProcess::start(
        &ingested.db(),
        &[
            "--tls-cert",
            cert.cert.to_str().unwrap(),
            "--tls-key",
            cert.key.to_str().unwrap(),
            "--api-key-file",
            keys.to_str().unwrap(),
        ],
    );
    Fixture {
        _ingested: ingested,
        dir,
        ca,
        ca_file,
        serve,
    }
}

fn curl(args: &[&str]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20"]).args(args);
    cmd
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        .unwrap()
}

/// dnsdbq with `ca` as the only trusted CA: bind-mounted over the system
/// bundle libcurl reads, in a mount namespace of its own.
fn dnsdbq(ca: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    assert!(
        Path::new(bundle).exists(),
        "{bundle} is missing: run `cargo xtask setup` (ca-certificates)"
    );
    let mut cmd = Command::new("unshare");
    if !is_root() {
        cmd.arg("--map-root-user");
    }
    cmd.args([
        "--mount",
        "sh",
        "-c",
        &format!("mount --bind \"$0\" {bundle} && exec dnsdbq \"$@\""),
    ])
    .arg(ca)
    .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    client(&mut cmd)
}

#[test]
fn curl_over_tls_1_2_and_1_3_and_plain_http_answered_400() {
    let f = fixture();
    let url = format!(
        "https://127.0.0.1:{}/dnsdb/v2/lookup/rrset/name/www.apple.com",
        f.serve.port
    );
    let ca = f.ca_file.to_str().unwrap();
    for (flags, version) in [
        (["--tlsv1.2", "--tls-max", "1.2"], "TLSv1.2"),
        (["--tlsv1.3", "--tls-max", "1.3"], "TLSv1.3"),
    ] {
        let (ok, body, log) = client(
            curl(&["-v", "--cacert", ca, "-H", "X-API-Key: testkey"])
                .args(flags)
                .arg(&url),
        );
        assert!(ok, "{log}");
        assert!(
            log.contains(&format!("SSL connection using {version}")),
            "{version}: {log}"
        );
        assert!(log.contains("ALPN: server accepted http/1.1"), "{log}");
        assert!(
            body.contains("\"rdata\":[\"www-apple-com.v.aaplimg.com.\"]"),
            "{body}"
        );
    }
    // Without the test CA the certificate is not trusted (curl exit 60).
    let out = curl(&[&url]).output().unwrap();
    assert_eq!(out.status.code(), Some(60), "{out:?}");

    // Plain HTTP on the TLS port: a plain 400 that says what to do.
    let plain = client_ok(&mut curl(&[
        "-i",
        &format!("http://127.0.0.1:{}/dnsdb/v2/ping", f.serve.port),
    ]));
    assert!(plain.starts_with("HTTP/1.1 400 Bad Request"), "{plain}");
    assert!(plain.contains("This port speaks HTTPS"), "{plain}");

    // Streamed answers on a kept-alive connection come without the ~40 ms
    // Nagle/delayed-ACK stall (TCP_NODELAY on TLS connections too).
    let mut conn = TlsConn::connect(f.serve.addr(), f.ca.client_config());
    let mut took = Vec::new();
    for _ in 0..21 {
        let started = Instant::now();
        let r = conn.get(
            "/dnsdb/v2/lookup/rrset/name/google.com",
            &[("X-API-Key", "testkey")],
        );
        took.push(started.elapsed());
        assert_eq!(r.status, 200);
        assert!(r.body.ends_with("{\"cond\":\"succeeded\"}\n"), "{}", r.body);
    }
    took.sort();
    assert!(
        took[10] < Duration::from_millis(25),
        "median request on a kept-alive TLS connection took {:?}: {took:?}",
        took[10]
    );

    let metrics = client_ok(&mut curl(&[
        "--cacert",
        ca,
        &format!("https://127.0.0.1:{}/metrics", f.serve.port),
    ]));
    let value = |line: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(line))
            .unwrap_or_else(|| panic!("{line} missing:\n{metrics}"))
            .trim()
            .parse()
            .unwrap()
    };
    assert!(value("pdns_api_tls_handshakes_total{result=\"ok\"}") >= 3.0);
    assert!(value("pdns_api_tls_handshakes_total{result=\"plain_http\"}") >= 1.0);
    assert!(value("pdns_api_tls_handshakes_total{result=\"failed\"}") >= 1.0);
    // serve's readiness probe connected and closed without a byte.
    assert!(value("pdns_api_tls_handshakes_total{result=\"closed\"}") >= 1.0);
    assert!(value("pdns_api_tls_certificate_expiry_timestamp_seconds") > 4.0e9);
}

#[test]
fn sighup_swaps_the_certificate_and_old_connections_keep_theirs() {
    let ingested = common::ingest(&[common::pcap("dnscap/dns.pcap")]);
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let first = ca.server_cert(dir.path(), "server", 1001);
    let serve = ServeProcess::start(
        &ingested.db(),
        &[
            "--tls-cert",
            first.cert.to_str().unwrap(),
            "--tls-key",
            first.key.to_str().unwrap(),
        ],
    );
    let config = ca.client_config();
    let mut old = TlsConn::connect(serve.addr(), config.clone());
    assert_eq!(old.get("/dnsdb/v2/ping", &[]).status, 200);
    assert_eq!(old.peer_certificate(), first.der);
    let first_serial = serial(&first.der);

    // New files in place, then SIGHUP: new connections get the new
    // certificate...
    let second = ca.server_cert(dir.path(), "next", 2002);
    std::fs::copy(&second.cert, &first.cert).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    serve.signal(libc::SIGHUP);
    serve.wait_for_log("TLS certificate reloaded", 1);
    let fresh = TlsConn::connect(serve.addr(), config.clone());
    let fresh_serial = serial(&fresh.peer_certificate());
    assert_eq!(fresh.peer_certificate(), second.der);
    assert_ne!(fresh_serial, first_serial);
    assert!(
        serve.stderr().contains(&format!("serial {fresh_serial}")),
        "{}",
        serve.stderr()
    );
    // ...while the connection made before keeps working, on its own.
    let r = old.get(
        "/dnsdb/v2/lookup/rrset/name/google.com/A",
        &[("Accept", "application/x-ndjson")],
    );
    assert_eq!(r.status, 200);
    assert!(r.body.contains("216.58.218.206"), "{}", r.body);
    assert_eq!(old.peer_certificate(), first.der);

    // A reload that cannot work (a key that is not the certificate's)
    // keeps the certificate being served, and says why.
    let stranger = ca.server_cert(dir.path(), "stranger", 3003);
    std::fs::copy(&stranger.key, &first.key).unwrap();
    serve.signal(libc::SIGHUP);
    serve.wait_for_log("TLS certificate not reloaded", 1);
    assert!(
        serve
            .stderr()
            .contains("does not belong to the certificate"),
        "{}",
        serve.stderr()
    );
    let after = TlsConn::connect(serve.addr(), config.clone());
    assert_eq!(after.peer_certificate(), second.der);
    // And the listener itself never went away.
    let mut again = TlsConn::connect(serve.addr(), config);
    let metrics = again.get("/metrics", &[]).body;
    for line in [
        "pdns_api_tls_reloads_total{result=\"ok\"} 1",
        "pdns_api_tls_reloads_total{result=\"failed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing:\n{metrics}");
    }
}

#[test]
fn both_tls_versions_negotiate_with_a_rustls_client() {
    let f = fixture();
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(f.ca.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut conn = TlsConn::connect(f.serve.addr(), std::sync::Arc::new(config));
        assert_eq!(conn.protocol(), version.version);
        let r = conn.get("/pdns/query/www.apple.com", &[("Authorization", "testkey")]);
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.body.contains("www-apple-com.v.aaplimg.com"), "{}", r.body);
    }
}

#[test]
fn dnsdbq_over_https() {
    let f = fixture();
    let server = format!("https://127.0.0.1:{}", f.serve.port);
    let env = [
        ("DNSDB_SERVER", server.as_str()),
        ("DNSDB_API_KEY", "testkey"),
    ];
    let (ok, out, err) = dnsdbq(&f.ca_file, &env, &["-r", "www.apple.com"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("www.apple.com.  CNAME  www-apple-com.v.aaplimg.com."),
        "{out}\n{err}"
    );
    let (ok, out, err) = dnsdbq(&f.ca_file, &env, &["-I"]);
    assert!(ok, "{err}");
    assert!(out.contains("limit: unlimited"), "{out}\n{err}");
    // A CA that did not sign the server's certificate: libcurl refuses.
    let elsewhere = f.dir.path().join("other");
    std::fs::create_dir(&elsewhere).unwrap();
    let other = TestCa::named("another CA").write_ca(&elsewhere);
    let (_, out, err) = dnsdbq(&other, &env, &["-r", "www.apple.com"]);
    assert!(!out.contains("aaplimg"), "{out}");
    assert!(err.contains("curl error 60"), "{err}");
}

#[test]
fn python_clients_and_the_misp_module_over_https() {
    let f = fixture();
    let module_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/misp");
    let script = format!(
        r#"
import json, sys
import dnsdb2, pypdns
sys.path.insert(0, {dir:?})
import pdns_sensor_circl as m
base = "https://127.0.0.1:{port}"
c = dnsdb2.Client("testkey", server=base)
rrset = list(c.lookup_rrset("www.apple.com"))
p = pypdns.PyPDNS(url=base + "/pdns/query", basic_auth=("user", "pass"))
circl = p.query("www.apple.com")
q = {{"attribute": {{"type": "domain", "value": "www.apple.com", "uuid": "5f2b1b4e-0000-4000-8000-000000000001"}},
     "config": {{"url": base + "/pdns/query", "username": "user", "password": "pass"}}}}
misp = m.handler(json.dumps(q))
print(json.dumps({{"rrset": rrset, "circl": [r["rdata"] for r in circl], "misp": misp}}, default=str))
"#,
        dir = module_dir.display().to_string(),
        port = f.serve.port
    );
    let out = client_ok(
        Command::new("python3")
            .arg("-c")
            .arg(&script)
            .env("REQUESTS_CA_BUNDLE", &f.ca_file),
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        v["rrset"][0]["rdata"],
        serde_json::json!(["www-apple-com.v.aaplimg.com."])
    );
    assert_eq!(
        v["circl"],
        serde_json::json!(["www-apple-com.v.aaplimg.com"])
    );
    let objects = v["misp"]["results"]["Object"]
        .as_array()
        .unwrap_or_else(|| panic!("no MISP objects: {v}"));
    assert_eq!(objects[0]["name"], "passive-dns");

    // Without the CA the same clients refuse the server.
    let (ok, _, err) = client(
        Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import dnsdb2; list(dnsdb2.Client('testkey', server='https://127.0.0.1:{}').lookup_rrset('www.apple.com'))",
                f.serve.port
            ))
            .env_remove("REQUESTS_CA_BUNDLE"),
    );
    assert!(!ok);
    assert!(err.contains("CERTIFICATE_VERIFY_FAILED"), "{err}");
}

#[test]
fn tls_start_up_errors_name_the_file() {
    let db_dir = tempfile::tempdir().unwrap();
    let db = db_dir.path().join("db");
    pdns_sensor::store::Store::open(&db).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let good = ca.server_cert(dir.path(), "good", 1);
    let other = ca.server_cert(dir.path(), "other", 2);
    let p = |path: &Path| path.to_str().unwrap().to_string();
    let missing = dir.path().join("missing.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64!\n").unwrap();
    let encrypted = dir.path().join("encrypted.key");
    std::fs::write(
        &encrypted,
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
    )
    .unwrap();
    for (cert, key, wants) in [
        (
            p(&missing),
            p(&good.key),
            format!("cannot read the TLS certificate file {}", missing.display()),
        ),
        (
            p(&good.cert),
            p(&missing),
            format!("cannot read the TLS key file {}", missing.display()),
        ),
        (
            p(&good.key),
            p(&good.key),
            format!(
                "the TLS certificate file {} holds no PEM CERTIFICATE (found: PrivateKey)",
                good.key.display()
            ),
        ),
        (
            p(&good.cert),
            p(&good.cert),
            format!(
                "the TLS key file {} holds no unencrypted private key",
                good.cert.display()
            ),
        ),
        (
            p(&good.cert),
            p(&encrypted),
            format!(
                "the TLS key file {} holds no unencrypted private key",
                encrypted.display()
            ),
        ),
        (
            p(&garbage),
            p(&good.key),
            format!(
                "the TLS certificate file {} is not valid PEM",
                garbage.display()
            ),
        ),
        (
            "/dev/zero".to_string(),
            p(&good.key),
            "cannot read the TLS certificate file /dev/zero: larger than 1 MiB".to_string(),
        ),
        (
            p(&good.cert),
            p(&other.key),
            format!(
                "the TLS key file {} does not belong to the certificate in {}",
                other.key.display(),
                good.cert.display()
            ),
        ),
    ] {
        let (status, stderr) = serve_failure(&db, &["--tls-cert", &cert, "--tls-key", &key]);
        assert!(!status.success());
        assert!(stderr.contains(&wants), "wanted {wants:?} in:\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    // One without the other is a usage error.
    let (status, stderr) = serve_failure(&db, &["--tls-cert", &p(&good.cert)]);
    assert_eq!(status.code(), Some(2));
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

#[test]
fn sighup_without_tls_is_logged_and_the_api_goes_on() {
    // `systemctl reload` sends SIGHUP whatever the configuration: without
    // certificates it must not end the process (its default action would).
    let ingested = common::ingest(&[common::pcap("dnscap/dns.pcap")]);
    let serve = ServeProcess::start(&ingested.db(), &[]);
    for round in 1..=2 {
        serve.signal(libc::SIGHUP);
        serve.wait_for_log("SIGHUP: nothing to reload", round);
        let r = common::get(
            serve.addr(),
            "/dnsdb/v2/lookup/rrset/name/google.com/A",
            &[],
        );
        assert_eq!(r.status, 200, "{}", serve.stderr());
        assert!(r.body.contains("216.58.218.206"), "{}", r.body);
    }
}
