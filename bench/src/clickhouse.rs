//! A ClickHouse server for the export scenario: Debian's
//! `clickhouse-server` (installed by `cargo xtask setup`) on free loopback
//! ports, everything in a temporary directory, killed when dropped.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const SERVER: &str = "/usr/sbin/clickhouse-server";

pub struct ClickHouse {
    _dir: tempfile::TempDir,
    child: Child,
    pub http_port: u16,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl ClickHouse {
    pub fn start() -> Result<ClickHouse> {
        if !Path::new(SERVER).exists() {
            bail!(
                "{SERVER} is not installed (`cargo xtask setup` installs Debian's clickhouse-server)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("pdns-bench-clickhouse-")
            .tempdir()?;
        let d = dir.path().display();
        let (http, tcp) = (free_port()?, free_port()?);
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                r#"<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>
<path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/uf/</user_files_path>
<users_config>{d}/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<timezone>UTC</timezone><mark_cache_size>134217728</mark_cache_size><uncompressed_cache_size>0</uncompressed_cache_size>
</yandex>
"#
            ),
        )?;
        std::fs::write(
            dir.path().join("users.xml"),
            r#"<?xml version="1.0"?><yandex><profiles><default></default></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default></default></quotas></yandex>
"#,
        )?;
        let log = std::fs::File::create(dir.path().join("stdout.log"))?;
        let child = Command::new(SERVER)
            .arg(format!("--config-file={d}/config.xml"))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting clickhouse-server")?;
        let ch = ClickHouse {
            _dir: dir,
            child,
            http_port: http,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            if Instant::now() >= deadline {
                bail!("clickhouse-server did not listen within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(ch)
    }

    /// The HTTP URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("http://127.0.0.1:{}/{db}", self.http_port)
    }

    /// Bytes on disk of a table's data (its parts, all columns).
    pub fn table_bytes(&self, db: &str, table: &str) -> Option<u64> {
        let sql = format!(
            "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = '{db}' AND table = \
             '{table}' AND active"
        );
        self.query(&sql).ok()?.trim().parse().ok()
    }

    /// A query's answer as text (curl, as the tests' clients do).
    pub fn query(&self, sql: &str) -> Result<String> {
        let out = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--data-binary", sql])
            .arg(format!("http://127.0.0.1:{}/", self.http_port))
            .output()
            .context("running curl")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!("ClickHouse: {sql}: {text}");
        }
        Ok(text)
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
