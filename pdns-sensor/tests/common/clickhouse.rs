//! A real ClickHouse server for a test: Debian's `clickhouse-server`
//! (installed by `cargo xtask setup`), on loopback ports of its own, every
//! file in a temporary directory, killed when the test ends. Fails loudly
//! when the server is not installed: these tests never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use pdns_sensor::clickhouse::client::{Client, ClientOptions, Target};

use super::free_port;
use pdns_sensor::vocab::value::{Origin, Value};

const SERVER: &str = "/usr/sbin/clickhouse-server";

/// Aggregates by store key, as both a local store and ClickHouse report
/// them.
pub(crate) type Totals = BTreeMap<Vec<u8>, Value>;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// What a history table of database `pdns` holds on `ch` (through its
/// `Distributed` table in a cluster), merged per `key_column`.
pub(crate) fn central(ch: &ClickHouse, table: &str, key_column: &str) -> Totals {
    let out = ch.query(&format!(
        "SELECT hex({key_column}), sumMerge(cnt), toUInt32(minMerge(first_seen)), \
         toUInt32(maxMerge(last_seen)), argMaxMerge(ttl_last), groupBitOrMerge(origin_bits) \
         FROM pdns.{table} GROUP BY {key_column} FORMAT TabSeparated"
    ));
    out.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                hex(f[0]),
                Value {
                    count: f[1].parse().unwrap(),
                    first: f[2].parse().unwrap(),
                    last: f[3].parse().unwrap(),
                    ttl: f[4].parse().unwrap(),
                    origin: Origin::from_bits(f[5].parse().unwrap()),
                },
            )
        })
        .collect()
}

/// Adds `other`'s aggregates into `into` (the store's merge).
pub(crate) fn merge(into: &mut Totals, other: &Totals) {
    for (k, v) in other {
        into.entry(k.clone())
            .and_modify(|x| *x = x.combine(*v))
            .or_insert(*v);
    }
}

pub(crate) struct ClickHouse {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub http_port: u16,
    pub tcp_port: u16,
    interserver_port: u16,
    /// More configuration (cluster, ZooKeeper, macros).
    extra: String,
}

impl ClickHouse {
    /// Starts a server with a user `pdns` (password `s3cret`) besides
    /// `default` (no password).
    pub(crate) fn start() -> ClickHouse {
        let mut ch = ClickHouse::new(free_port(), String::new());
        ch.resume();
        ch
    }

    /// A server with this native port and more configuration, not started.
    fn new(tcp_port: u16, extra: String) -> ClickHouse {
        let dir = tempfile::Builder::new()
            .prefix("pdns-clickhouse-")
            .tempdir()
            .unwrap();
        let ch = ClickHouse {
            dir,
            child: None,
            http_port: free_port(),
            tcp_port,
            interserver_port: free_port(),
            extra,
        };
        ch.write_config();
        ch
    }

    fn write_config(&self) {
        let d = self.dir.path().display();
        let config = format!(
            r#"<?xml version="1.0"?><yandex>
<logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/server.err.log</errorlog></logger>
<listen_host>127.0.0.1</listen_host><http_port>{http}</http_port><tcp_port>{tcp}</tcp_port>
<path>{d}/data/</path><tmp_path>{d}/tmp/</tmp_path><user_files_path>{d}/uf/</user_files_path>
<format_schema_path>{d}/fs/</format_schema_path>
<users_config>{d}/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<timezone>UTC</timezone><mark_cache_size>67108864</mark_cache_size><uncompressed_cache_size>0</uncompressed_cache_size>
<max_concurrent_queries>50</max_concurrent_queries>
<interserver_http_port>{interserver}</interserver_http_port><interserver_http_host>127.0.0.1</interserver_http_host>
{extra}
</yandex>
"#,
            http = self.http_port,
            tcp = self.tcp_port,
            interserver = self.interserver_port,
            extra = self.extra,
        );
        std::fs::write(self.dir.path().join("config.xml"), config).unwrap();
        let users = r#"<?xml version="1.0"?><yandex>
<profiles><default></default></profiles>
<users>
<default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
<pdns><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></pdns>
</users>
<quotas><default></default></quotas></yandex>
"#;
        std::fs::write(self.dir.path().join("users.xml"), users).unwrap();
    }

    /// Starts the server (again, after [`ClickHouse::stop`] or
    /// [`ClickHouse::kill`]) on the same ports and data, and waits until it
    /// answers.
    pub(crate) fn resume(&mut self) {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} is not installed (`cargo xtask setup` installs Debian's clickhouse-server)"
        );
        let log = std::fs::File::create(self.dir.path().join("stdout.log")).unwrap();
        let child = Command::new(SERVER)
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.client("default").query("SELECT 1").is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("clickhouse-server exited ({status}): {}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer in 30 s: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn logs(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!(
            "{}\n{}",
            read("stdout.log"),
            read("server.err.log")
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        )
    }

    /// Stops the server gracefully (SIGTERM) and waits.
    pub(crate) fn stop(&mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    /// Kills the server (SIGKILL) and waits.
    ///
    /// A replicated table killed mid-insert may hold parts on disk that
    /// never reached ZooKeeper (the insert was not acknowledged; the sender
    /// retries it). On restart ClickHouse 18.16 refuses to attach the table
    /// when such parts are many against what it has
    /// (`replicated_max_ratio_of_wrong_parts`), and the server exits: what
    /// an operator then does, and what this does for the next
    /// [`resume`](ClickHouse::resume), is to set the `force_restore_data`
    /// flag, which moves those parts aside (to `detached/`) and attaches
    /// the table from what ZooKeeper has.
    pub(crate) fn kill(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
        let flags = self.dir.path().join("data/flags");
        std::fs::create_dir_all(&flags).unwrap();
        std::fs::write(flags.join("force_restore_data"), b"").unwrap();
    }

    fn signal_and_wait(&mut self, signal: i32) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe { libc::kill(child.id() as i32, signal) };
            let _ = child.wait();
        }
    }

    /// The HTTP URL with database `db`, as `pdns` (with its password).
    pub(crate) fn url(&self, db: &str) -> String {
        format!("http://pdns:s3cret@127.0.0.1:{}/{db}", self.http_port)
    }

    /// A client logged in as `default`, on database `db`.
    pub(crate) fn client(&self, db: &str) -> Client {
        let target =
            Target::parse(&format!("http://127.0.0.1:{}/{db}", self.http_port), None).unwrap();
        Client::new(
            target,
            &ClientOptions {
                timeout: Duration::from_secs(30),
                ..Default::default()
            },
        )
        .unwrap()
    }

    /// Runs a query (as `default`); panics with the server's words on error.
    pub(crate) fn query(&self, sql: &str) -> String {
        self.client("default")
            .query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Debian's ZooKeeper on a loopback port, for replicated tables.
pub(crate) struct ZooKeeper {
    pub dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl ZooKeeper {
    pub(crate) fn start() -> ZooKeeper {
        let jar = "/usr/share/java/zookeeper.jar";
        assert!(
            Path::new(jar).exists(),
            "{jar} is not installed (`cargo xtask setup` installs Debian's zookeeper)"
        );
        let dir = tempfile::Builder::new()
            .prefix("pdns-zk-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("zoo.cfg"),
            format!(
                "tickTime=500\ndataDir={d}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
                 admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("zk.log")).unwrap();
        let child = Command::new("java")
            .args(["-Xmx256m", "-cp"])
            .arg(format!("{d}:{jar}"))
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(dir.path().join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let zk = ZooKeeper { dir, child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // `ruok` answers before sessions are served (a ClickHouse
            // that connects then loses its DDL worker); `srvr` says when.
            if zk.four_letters("ruok") == "imok" && zk.four_letters("srvr").contains("Mode: ") {
                return zk;
            }
            assert!(
                Instant::now() < deadline,
                "ZooKeeper did not answer in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("zk.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with("SLF4J"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn four_letters(&self, word: &str) -> String {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut answer = String::new();
        if s.write_all(word.as_bytes()).is_ok() {
            let _ = s.read_to_string(&mut answer);
        }
        answer
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two shards of two replicas each (cluster `pdns`), with ZooKeeper:
/// `nodes[2 * shard + replica]`.
pub(crate) struct Cluster {
    pub nodes: Vec<ClickHouse>,
    pub zookeeper: ZooKeeper,
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        Cluster::with(2, 2)
    }

    /// `shards` × `replicas` nodes: `nodes[replicas * shard + replica]`.
    pub(crate) fn with(shards: usize, replicas: usize) -> Cluster {
        let zookeeper = ZooKeeper::start();
        let n = shards * replicas;
        let tcp: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let shards: String = (0..shards)
            .map(|shard| {
                let replicas: String = (0..replicas)
                    .map(|r| {
                        format!(
                            "<replica><host>127.0.0.1</host><port>{}</port></replica>",
                            tcp[replicas * shard + r]
                        )
                    })
                    .collect();
                format!(
                    "<shard><internal_replication>true</internal_replication>{replicas}</shard>"
                )
            })
            .collect();
        let mut nodes: Vec<ClickHouse> = (0..n)
            .map(|i| {
                let extra = format!(
                    "<zookeeper><node><host>127.0.0.1</host><port>{zk}</port></node></zookeeper>\n\
                     <macros><shard>{shard}</shard><replica>r{i}</replica></macros>\n\
                     <remote_servers><pdns>{shards}</pdns></remote_servers>\n\
                     <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
                    zk = zookeeper.port,
                    shard = i / replicas + 1,
                );
                ClickHouse::new(tcp[i], extra)
            })
            .collect();
        for node in &mut nodes {
            node.resume();
        }
        Cluster { nodes, zookeeper }
    }
}
