//! `run --export-clickhouse` and SIGTERM: the graceful stop flushes every
//! worker, spools the last batches and waits until ClickHouse has them, so
//! the central history holds exactly what the sensor stored.
//!
//! The flush interval is far beyond the test: every observation is still in
//! the workers' maps when SIGTERM arrives, so everything ClickHouse ends up
//! with went through the shutdown path. ClickHouse (Debian's) runs inside
//! the sensor's namespace, on its loopback.

mod live_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use live_support::*;

const SERVER: &str = "/usr/sbin/clickhouse-server";
const URL: &str = "http://127.0.0.1:8123/pdns";

/// Starts clickhouse-server inside `ns` (ports 8123/9000 of its own
/// loopback), with every file under `dir`; waits until it answers.
fn clickhouse(ns: &Netns, dir: &Path) -> Proc {
    assert!(
        Path::new(SERVER).exists(),
        "{SERVER} is not installed (`cargo xtask setup` installs it)"
    );
    let d = dir.display();
    std::fs::write(
        dir.join("config.xml"),
        format!(
            r#"<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><http_port>8123</http_port><tcp_port>9000</tcp_port>
<path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/uf/</user_files_path>
<users_config>{d}/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<timezone>UTC</timezone><mark_cache_size>67108864</mark_cache_size>
</yandex>
"#
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("users.xml"),
        r#"<?xml version="1.0"?><yandex><profiles><default></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>
"#,
    )
    .unwrap();
    let child = ns
        .cmd(SERVER)
        .arg(format!("--config-file={d}/config.xml"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Proc::new(child, "clickhouse-server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ns
        .cmd("curl")
        .args(["-sf", "http://127.0.0.1:8123/ping"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "clickhouse-server did not answer in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn query(ns: &Netns, sql: &str) -> String {
    let out = ns
        .cmd("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "--data-binary",
            sql,
            "http://127.0.0.1:8123/",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{sql}: {text}");
    text
}

#[test]
fn sigterm_exports_everything_stored_before_it_exits() {
    require(&["ip", "tcpreplay", "curl"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("exp", false);
    let pairs = 20_000;
    let (file, expected) = link.traffic_file(dir.path(), pairs, 1_000);
    let ch_dir = dir.path().join("clickhouse");
    std::fs::create_dir(&ch_dir).unwrap();
    let _server = clickhouse(&link.b, &ch_dir);
    let schema = link
        .b
        .cmd(SENSOR)
        .args(["clickhouse-schema", "--apply", URL])
        .env("PDNS_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );

    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "2",
            "--flush-interval",
            "3600",
            "--export-clickhouse",
            URL,
            "--sensor-id",
            "live-1",
        ],
    );
    link.replay(&file, 1);
    let stopped = sensor.stop();
    assert!(stopped.status.success(), "{}", stopped.stderr);
    let s = &stopped.stats;
    assert_eq!(num(s, &["dns_responses"]), pairs as u64, "{s:#}");
    // Drained on SIGTERM: nothing waits, and what was sent is what the
    // store merged.
    assert_eq!(num(s, &["export", "remaining", "entries"]), 0, "{s:#}");
    assert_eq!(
        num(s, &["export", "sent_rows"]),
        num(s, &["records_written"]) + num(s, &["negatives_written"]),
        "{s:#}"
    );

    let local = counts(&dump(&stopped.db));
    assert_eq!(local.len(), expected.len());
    let central: BTreeMap<(String, String, String), u64> = query(
        &link.b,
        "SELECT rrname, rdata, sumMerge(cnt) FROM pdns.pdns_records WHERE rrtype = 1 \
         GROUP BY rrname, rdata FORMAT TabSeparated",
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('\t').collect();
        (
            (f[0].to_string(), "A".to_string(), f[1].to_string()),
            f[2].parse().unwrap(),
        )
    })
    .collect();
    assert_eq!(central, local);
    assert_eq!(central.values().sum::<u64>(), pairs as u64);
    // The sensor said so when it stopped.
    assert!(
        stopped.stderr.contains("nothing waits"),
        "{}",
        stopped.stderr
    );
}
