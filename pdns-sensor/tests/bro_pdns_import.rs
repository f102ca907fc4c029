//! `import-bro-pdns`: databases in both of bro-pdns's generations, in
//! SQLite and in PostgreSQL, filled from the Zeek dns.log baselines in
//! `testdata/zeek-dnslog`, compared with `import-zeek` of the same logs;
//! importing twice, importing a grown database, a database that is not
//! bro-pdns's, rows with impossible values.
//!
//! How the databases are written:
//! * Python generation: `bro_pdns_support/python_generation.py`, with
//!   SQLAlchemy from PyPI (installed by `cargo xtask setup`); its docstring
//!   says why bro-pdns's own Python program cannot run here and what the
//!   script keeps of it.
//! * Go generation: the `CREATE TABLE` statements of bro-pdns's
//!   `store_sqlite.go` / `store_pg.go` (below, as its source defines them),
//!   filled the way its `aggregate.go` and `Update` do: per file, per
//!   (query, qtype_name, answer), the occurrences, the first and last `ts`
//!   and the last TTL (`-` answers skipped, a `-` TTL as 0); the query
//!   stored character-reversed; an existing row gets count added, first
//!   and last widened, TTL replaced; times as `datetime(ts, 'unixepoch')`
//!   (SQLite) or `to_timestamp(ts)::timestamp` (PostgreSQL, naive in the
//!   session's zone); `individual` counts every question (`Q`, reversed)
//!   and answer (`A`). Its ASCII reader splits `answers` at commas with no
//!   regard for Zeek's `(empty)`, which is stored as an answer.
//!
//! PostgreSQL: each test that needs one starts its own server (Debian's
//! PostgreSQL 15) on a unix socket in a temporary directory, as an
//! unprivileged user when run as root, killed when the test ends. A
//! machine without it fails the test: nothing is skipped.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pdns_sensor::cli::DbArgs;
use pdns_sensor::cli::import_bro_pdns::{self, ImportBroPdnsArgs};
use pdns_sensor::report::ImportBroPdnsReport;
use pdns_sensor::store::{Filter, Selector, Store};
use pdns_sensor::vocab::value::Origin;

/// The first line's time; each data line is a minute after the one before
/// it, across all files, so first and last seen differ.
const TS: u64 = 1_600_000_000;

// ---------------------------------------------------------------------
// The logs.

/// A data line of a TSV dns.log, as bro-pdns's aggregators read it.
#[derive(Clone, Debug)]
struct LogLine {
    ts: u64,
    query: String,
    qtype_name: String,
    answers: Vec<String>,
    ttls: Vec<String>,
}

/// Copies of the TSV baselines that log answers, with a real `ts` in
/// place of the mask; returns the copies and their lines.
fn logs(dir: &Path) -> Vec<(PathBuf, Vec<LogLine>)> {
    let root = common::testdata().join("zeek-dnslog");
    let mut sources: Vec<PathBuf> = Vec::new();
    for test in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(test.unwrap().path()).unwrap() {
            sources.push(f.unwrap().path());
        }
    }
    sources.sort();
    let mut ts = TS;
    let mut out = Vec::new();
    for src in sources {
        let text = std::fs::read_to_string(&src).unwrap();
        let Some(fields) = text.lines().find_map(|l| l.strip_prefix("#fields\t")) else {
            continue; // JSON logs: bro-pdns's Python reader took TSV only
        };
        let fields: Vec<&str> = fields.split('\t').collect();
        if !fields.contains(&"answers") || !fields.contains(&"qtype_name") {
            continue;
        }
        let col = |name: &str| fields.iter().position(|f| *f == name).unwrap();
        let (q, t, a, l) = (col("query"), col("qtype_name"), col("answers"), col("TTLs"));
        let mut lines = Vec::new();
        let mut body = String::new();
        for line in text.lines() {
            match line.strip_prefix("XXXXXXXXXX.XXXXXX") {
                Some(rest) => {
                    body.push_str(&format!("{ts}.000000{rest}\n"));
                    let cols: Vec<&str> = line.split('\t').collect();
                    // As both generations' readers split them: `-` and
                    // `(empty)` are not special (the Go version skips `-`
                    // answers later).
                    let list =
                        |s: &str| -> Vec<String> { s.split(',').map(String::from).collect() };
                    lines.push(LogLine {
                        ts,
                        query: cols[q].to_string(),
                        qtype_name: cols[t].to_string(),
                        answers: list(cols[a]),
                        ttls: list(cols[l]),
                    });
                    ts += 60;
                }
                None => {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
        let name = src
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('/', "-");
        let path = dir.join(name);
        std::fs::write(&path, body).unwrap();
        out.push((path, lines));
    }
    assert!(
        out.len() >= 20,
        "expected the Zeek TSV baselines, found {}",
        out.len()
    );
    out
}

// ---------------------------------------------------------------------
// The stores.

/// (name, type, rdata) -> (count, ttl, first, last, origin).
type Records = BTreeMap<(String, String, String), (u64, u32, u64, u64, Origin)>;

fn records(db: &Path) -> Records {
    let store = Store::open_reader(db).unwrap();
    store
        .records(&Selector::All, &Filter::default())
        .map(|r| {
            let r = r.unwrap();
            let row = pdns_sensor::dump::Row::record(&r);
            (
                (row.name, row.rtype, row.data),
                (
                    r.value.count,
                    r.value.ttl,
                    r.value.first,
                    r.value.last,
                    r.value.origin,
                ),
            )
        })
        .collect()
}

fn zeek_import(db: &Path, logs: &[(PathBuf, Vec<LogLine>)]) -> Records {
    let paths: Vec<PathBuf> = logs.iter().map(|(p, _)| p.clone()).collect();
    pdns_sensor::cli::import_zeek::run_with_stop(
        &common::import_zeek_args(db, &paths),
        &std::sync::atomic::AtomicBool::new(false),
    )
    .unwrap();
    records(db)
}

fn args(db: &Path, database: &str) -> ImportBroPdnsArgs {
    ImportBroPdnsArgs {
        db: DbArgs {
            db: db.to_path_buf(),
        },
        retention: Default::default(),
        nod: Default::default(),
        export: Default::default(),
        timezone: None,
        source_id: None,
        password_file: None,
        batch_rows: 50_000,
        stats_json: None,
        quiet: true,
        status_interval: 10,
        database: Some(database.to_string()),
    }
}

fn import(db: &Path, database: &str, timezone: Option<&str>) -> ImportBroPdnsReport {
    let mut a = args(db, database);
    a.timezone = timezone.map(String::from);
    import_bro_pdns::run(&a).unwrap()
}

/// Every row read is imported, unchanged or skipped under one reason.
fn assert_accounted(r: &ImportBroPdnsReport) {
    let s = &r.import.stats;
    let skipped: u64 =
        s.skipped_rows.values().sum::<u64>() + s.skipped_answers.values().sum::<u64>();
    assert_eq!(
        s.rows,
        s.rows_imported + s.rows_unchanged + skipped,
        "{s:?}"
    );
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Generation {
    Python,
    Go,
}

/// What the bro-pdns import holds is a subset of what `import-zeek` of the
/// same logs holds, with the times bro-pdns aggregated; returns how many
/// records were compared.
fn assert_consistent(bro: &Records, zeek: &Records, generation: Generation) -> usize {
    assert!(!bro.is_empty(), "nothing imported");
    for (key, &(count, ttl, first, last, origin)) in bro {
        assert_eq!(origin, Origin::BRO_PDNS, "{key:?}");
        let Some(&(z_count, z_ttl, z_first, z_last, _)) = zeek.get(key) else {
            panic!("{generation:?}: {key:?} is not a record of the Zeek import");
        };
        assert_eq!(last, z_last, "{generation:?} last seen of {key:?}");
        assert_eq!(ttl, z_ttl, "{generation:?} TTL of {key:?}");
        match generation {
            // bro-pdns counts answer occurrences, the Zeek import distinct
            // records per reply: never fewer.
            Generation::Go => {
                assert_eq!(first, z_first, "first seen of {key:?}");
                assert!(count >= z_count, "count of {key:?}: {count} < {z_count}");
            }
            // The Python version's first seen is the last sighting of the
            // first file; its count the first file's plus one per later
            // file.
            Generation::Python => {
                assert!(z_first <= first && first <= last, "first seen of {key:?}");
                assert!(count >= 1 && count <= z_count * 2, "count of {key:?}");
            }
        }
    }
    bro.len()
}

/// The rows the baselines are known to hold that cannot be rebuilt: a
/// CNAME chain (`workfamily.sas.upenn.edu` in the `rrsig` baseline) and
/// RRSIG summaries.
fn assert_chain_skipped(r: &ImportBroPdnsReport, bro: &Records) {
    let s = &r.import.stats;
    assert!(s.skipped("cname_owner_unknown") > 0, "{s:?}");
    assert!(s.skipped("owner_behind_cname") > 0, "{s:?}");
    assert!(s.skipped("rrsig") > 0, "{s:?}");
    assert!(
        !bro.keys()
            .any(|(name, _, _)| name == "workfamily.sas.upenn.edu."),
        "a record behind a CNAME chain was stored under the question"
    );
    assert!(
        bro.contains_key(&(
            "virgo.sas.upenn.edu.".to_string(),
            "A".to_string(),
            "128.91.234.142".to_string()
        )),
        "an address with no chain under its question is rebuilt"
    );
}

// ---------------------------------------------------------------------
// Python generation (SQLAlchemy).

fn python_generation(url: &str, logs: &[(PathBuf, Vec<LogLine>)], tz: &str) {
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bro_pdns_support/python_generation.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(url)
        .args(logs.iter().map(|(p, _)| p))
        .env("TZ", tz)
        .output()
        .expect("python3 runs (cargo xtask setup installs SQLAlchemy)");
    assert!(
        out.status.success(),
        "python_generation.py failed (SQLAlchemy and psycopg2 come from `cargo xtask setup`): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------
// Go generation.

/// `store_sqlite.go`'s schema (tables and indexes as its source defines
/// them; its PRAGMAs are connection settings, not schema).
const GO_SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tuples (
	query character varying,
	type character varying,
	answer character varying,
	count integer,
	ttl integer,
	first REAL,
	last REAL,
	PRIMARY KEY (query, type, answer)
) ;
CREATE INDEX IF NOT EXISTS tuples_query ON tuples(query);
CREATE INDEX IF NOT EXISTS tuples_answer ON tuples(answer);
CREATE INDEX IF NOT EXISTS tuples_first ON tuples(first);
CREATE INDEX IF NOT EXISTS tuples_last ON tuples(last);
CREATE TABLE IF NOT EXISTS individual (
	which char(1),
	value character varying,
	count integer,
	first REAL,
	last REAL,
	PRIMARY KEY (which, value)
);
CREATE INDEX IF NOT EXISTS individual_first ON individual(first);
CREATE INDEX IF NOT EXISTS individual_last ON individual(last);
CREATE TABLE IF NOT EXISTS filenames (
	filename character varying PRIMARY KEY UNIQUE NOT NULL,
	time REAL DEFAULT (datetime('now', 'localtime')),
	aggregation_time real,
	total_records int,
	skipped_records int,
	tuples int,
	individual int,
	store_time real,
	inserted int,
	updated int
);";

/// `store_pg.go`'s tables (its upsert functions are done as statements
/// below).
const GO_PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tuples (
	query text,
	type text,
	answer text,
	count bigint,
	ttl integer,
	first timestamp,
	last timestamp,
	PRIMARY KEY (query, type, answer)
) ;
CREATE INDEX tuples_query ON tuples(query varchar_pattern_ops);
CREATE INDEX tuples_answer ON tuples(answer varchar_pattern_ops);
CREATE TABLE IF NOT EXISTS individual (
	which char(1),
	value text,
	count bigint,
	first timestamp,
	last timestamp,
	PRIMARY KEY (which, value)
);
CREATE INDEX individual_value ON individual(value varchar_pattern_ops);
CREATE TABLE IF NOT EXISTS filenames (
	filename text PRIMARY KEY UNIQUE NOT NULL,
	time timestamp DEFAULT now(),
	aggregation_time real,
	total_records int,
	skipped_records int,
	tuples int,
	individual int,
	store_time real,
	inserted int,
	updated int
);";

#[derive(Clone, Copy, Debug)]
struct Stat {
    count: i64,
    first: i64,
    last: i64,
    ttl: i64,
}

/// One file's aggregation as `aggregate.go` does it: tuples keyed by
/// (query, qtype_name, answer), individual values keyed by (which, value).
#[allow(clippy::type_complexity)]
fn go_aggregate(
    lines: &[LogLine],
) -> (
    BTreeMap<(String, String, String), Stat>,
    BTreeMap<(String, String), Stat>,
) {
    let mut tuples: BTreeMap<(String, String, String), Stat> = BTreeMap::new();
    let mut values: BTreeMap<(String, String), Stat> = BTreeMap::new();
    let bump = |s: &mut Stat, ts: i64, ttl: i64| {
        s.count += 1;
        s.last = ts;
        s.ttl = ttl;
    };
    for line in lines {
        let ts = line.ts as i64;
        let new = |ttl| Stat {
            count: 1,
            first: ts,
            last: ts,
            ttl,
        };
        values
            .entry(("Q".into(), line.query.clone()))
            .and_modify(|s| bump(s, ts, s.ttl))
            .or_insert(new(0));
        for (i, answer) in line.answers.iter().enumerate() {
            if answer == "-" {
                continue;
            }
            let ttl_text = line
                .ttls
                .get(i)
                .map_or("0", |t| t.split('.').next().unwrap());
            let ttl: i64 = if ttl_text == "-" {
                0
            } else {
                ttl_text.parse().unwrap()
            };
            tuples
                .entry((line.query.clone(), line.qtype_name.clone(), answer.clone()))
                .and_modify(|s| bump(s, ts, ttl))
                .or_insert(new(ttl));
            values
                .entry(("A".into(), answer.clone()))
                .and_modify(|s| bump(s, ts, ttl))
                .or_insert(new(ttl));
        }
    }
    (tuples, values)
}

fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

/// Loads files into a Go-generation SQLite database, one `Update` per
/// file as bro-pdns's Go version does.
fn go_sqlite(path: &Path, files: &[(PathBuf, Vec<LogLine>)]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(GO_SQLITE_SCHEMA).unwrap();
    for (_, lines) in files {
        let (tuples, values) = go_aggregate(lines);
        let tx = conn.unchecked_transaction().unwrap();
        for ((query, qtype, answer), s) in &tuples {
            let q = reverse(query);
            let n = tx
                .execute(
                    "UPDATE tuples SET count=count+?1, ttl=?2, \
                     first=min(datetime(?3, 'unixepoch'), first), \
                     last=max(datetime(?4, 'unixepoch'), last) \
                     WHERE query=?5 AND type=?6 AND answer=?7",
                    rusqlite::params![s.count, s.ttl, s.first, s.last, q, qtype, answer],
                )
                .unwrap();
            if n == 0 {
                tx.execute(
                    "INSERT INTO tuples (query, type, answer, ttl, count, first, last) \
                     VALUES (?1, ?2, ?3, ?4, ?5, datetime(?6, 'unixepoch'), datetime(?7, 'unixepoch'))",
                    rusqlite::params![q, qtype, answer, s.ttl, s.count, s.first, s.last],
                )
                .unwrap();
            }
        }
        for ((which, value), s) in &values {
            let v = if which == "Q" {
                reverse(value)
            } else {
                value.clone()
            };
            let n = tx
                .execute(
                    "UPDATE individual SET count=count+?1, \
                     first=min(datetime(?2, 'unixepoch'), first), \
                     last=max(datetime(?3, 'unixepoch'), last) WHERE value=?4 AND which=?5",
                    rusqlite::params![s.count, s.first, s.last, v, which],
                )
                .unwrap();
            if n == 0 {
                tx.execute(
                    "INSERT INTO individual (value, which, count, first, last) \
                     VALUES (?1, ?2, ?3, datetime(?4, 'unixepoch'), datetime(?5, 'unixepoch'))",
                    rusqlite::params![v, which, s.count, s.first, s.last],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

/// The same into PostgreSQL (`store_pg.go`: `to_timestamp(ts)::timestamp`
/// in the session's zone, the server's default here).
fn go_postgres(client: &mut postgres::Client, files: &[(PathBuf, Vec<LogLine>)]) {
    client.batch_execute(GO_PG_SCHEMA).unwrap();
    for (_, lines) in files {
        let (tuples, values) = go_aggregate(lines);
        let mut tx = client.transaction().unwrap();
        for ((query, qtype, answer), s) in &tuples {
            let q = reverse(query);
            let (count, ttl, first, last) = (s.count, s.ttl as i32, s.first as f64, s.last as f64);
            let n = tx
                .execute(
                    "UPDATE tuples SET count=count+$1, ttl=$2, \
                     first=least(to_timestamp($3)::timestamp, first), \
                     last=greatest(to_timestamp($4)::timestamp, last) \
                     WHERE query=$5 AND type=$6 AND answer=$7",
                    &[&count, &ttl, &first, &last, &q, qtype, answer],
                )
                .unwrap();
            if n == 0 {
                tx.execute(
                    "INSERT INTO tuples (query, type, answer, ttl, count, first, last) \
                     VALUES ($1, $2, $3, $4, $5, to_timestamp($6)::timestamp, to_timestamp($7)::timestamp)",
                    &[&q, qtype, answer, &ttl, &count, &first, &last],
                )
                .unwrap();
            }
        }
        for ((which, value), s) in &values {
            let v = if which == "Q" {
                reverse(value)
            } else {
                value.clone()
            };
            let (first, last) = (s.first as f64, s.last as f64);
            let n = tx
                .execute(
                    "UPDATE individual SET count=count+$1, \
                     first=least(to_timestamp($2)::timestamp, first), \
                     last=greatest(to_timestamp($3)::timestamp, last) WHERE value=$4 AND which=$5",
                    &[&s.count, &first, &last, &v, which],
                )
                .unwrap();
            if n == 0 {
                tx.execute(
                    "INSERT INTO individual (value, which, count, first, last) \
                     VALUES ($1, $2, $3, to_timestamp($4)::timestamp, to_timestamp($5)::timestamp)",
                    &[&v, which, &s.count, &first, &last],
                )
                .unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

// ---------------------------------------------------------------------
// A PostgreSQL server of the test's own.

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The server asks every client for this password (SCRAM), so that the
/// URL's and `--password-file`'s ways of giving it are both exercised.
const PG_PASSWORD: &str = "s3cr@t w/&?=%";

fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct PgServer {
    child: Child,
    socket_dir: PathBuf,
    _dir: tempfile::TempDir,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program args` as the unprivileged user when root (PostgreSQL refuses
/// to run as root).
fn as_postgres_user(program: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "nobody", "--", program]);
        c
    } else {
        Command::new(program)
    }
}

impl PgServer {
    /// initdb and start a server whose default `TimeZone` is `zone`, on a
    /// unix socket only; waits (30 s at most) until it answers.
    fn start(zone: &str) -> PgServer {
        let initdb = format!("{PG_BIN}/initdb");
        assert!(
            Path::new(&initdb).exists(),
            "{initdb} missing: PostgreSQL 15 comes from `cargo xtask setup` (Debian's postgresql)"
        );
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let socket_dir = dir.path().join("socket");
        std::fs::create_dir(&socket_dir).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "nobody"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{PG_PASSWORD}\n")).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("nobody")
                .arg(&pwfile)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_postgres_user(&initdb)
            .arg("-D")
            .arg(&data)
            .arg(format!("--pwfile={}", pwfile.display()))
            .args([
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-locale",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        let child = as_postgres_user(&format!("{PG_BIN}/postgres"))
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&socket_dir)
            .args(["-c", "listen_addresses=", "-c", "fsync=off"])
            .args(["-c", &format!("timezone={zone}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = PgServer {
            child,
            socket_dir,
            _dir: dir,
        };
        let started = Instant::now();
        loop {
            if server.client("postgres").is_ok() {
                return server;
            }
            let log = std::fs::read_to_string(server._dir.path().join("postgres.log"))
                .unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL without the password.
    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@/{db}?host={}",
            self.socket_dir.display()
        )
    }

    /// The URL with the password in it (percent-encoded).
    fn url_with_password(&self, db: &str) -> String {
        format!(
            "postgres://postgres:{}@/{db}?host={}",
            url_encoded(PG_PASSWORD),
            self.socket_dir.display()
        )
    }

    fn client(&self, db: &str) -> Result<postgres::Client, postgres::Error> {
        postgres::Client::connect(&self.url_with_password(db), postgres::NoTls)
    }

    fn create_db(&self, db: &str) {
        self.client("postgres")
            .unwrap()
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .unwrap();
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGTERM through kill(1): the server runs as another user, but
        // its parent (runuser) forwards the signal.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------
// The tests.

#[test]
fn python_generation_sqlite_matches_the_zeek_import() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    let zeek = zeek_import(&tmp.path().join("zeek"), &logs);
    let file = tmp.path().join("bro-pdns.db");
    python_generation(
        &format!("sqlite:///{}", file.display()),
        &logs,
        "Europe/Berlin",
    );
    let db = tmp.path().join("db");
    let report = import(&db, file.to_str().unwrap(), Some("Europe/Berlin"));
    assert_accounted(&report);
    assert_eq!(report.import.timezones, ["Europe/Berlin"]);
    // The Python version stored a row for every reply without answers.
    assert!(report.import.stats.skipped("no_answer") > 0);
    let bro = records(&db);
    let n = assert_consistent(&bro, &zeek, Generation::Python);
    assert_chain_skipped(&report, &bro);
    assert!(n >= 15, "only {n} records rebuilt");

    // Read in the wrong zone, every time is off by the zone's offset.
    let wrong = tmp.path().join("wrong");
    import(&wrong, file.to_str().unwrap(), None);
    let shifted = records(&wrong);
    for (key, v) in &bro {
        assert_eq!(shifted[key].3, v.3 + 7200, "{key:?}");
    }
}

#[test]
fn go_generation_sqlite_matches_the_zeek_import() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    let zeek = zeek_import(&tmp.path().join("zeek"), &logs);
    let file = tmp.path().join("go.db");
    go_sqlite(&file, &logs);
    let db = tmp.path().join("db");
    // --timezone does not apply: the Go version wrote UTC in SQLite.
    let report = import(&db, file.to_str().unwrap(), Some("Asia/Tokyo"));
    assert_accounted(&report);
    assert_eq!(report.import.timezones, ["UTC"]);
    let s = &report.import.stats;
    assert!(s.individual_rows > 0);
    assert!(
        s.unanswered_questions > 0,
        "NXDOMAIN questions have no tuples: {s:?}"
    );
    let bro = records(&db);
    assert_consistent(&bro, &zeek, Generation::Go);
    assert_chain_skipped(&report, &bro);
    assert_eq!(
        bro.values().map(|v| v.0).sum::<u64>(),
        s.sightings,
        "every sighting added is in the store"
    );
}

#[test]
fn postgresql_databases_of_both_generations() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    let zeek = zeek_import(&tmp.path().join("zeek"), &logs);
    let pg = PgServer::start("Europe/Berlin");

    pg.create_db("python");
    python_generation(
        &format!(
            "postgresql+psycopg2://postgres:{}@/python?host={}",
            url_encoded(PG_PASSWORD),
            pg.socket_dir.display()
        ),
        &logs,
        "America/New_York",
    );
    let db = tmp.path().join("py");
    let report = import(
        &db,
        &pg.url_with_password("python"),
        Some("America/New_York"),
    );
    assert_accounted(&report);
    assert_consistent(&records(&db), &zeek, Generation::Python);

    pg.create_db("go");
    go_postgres(&mut pg.client("go").unwrap(), &logs);
    let db = tmp.path().join("go");
    // Naive times in the server's zone, which the import reads itself; the
    // password from a file.
    let password_file = tmp.path().join("password");
    std::fs::write(&password_file, format!("{PG_PASSWORD}\n")).unwrap();
    let mut a = args(&db, &pg.url("go"));
    a.password_file = Some(password_file.clone());
    let report = import_bro_pdns::run(&a).unwrap();
    assert_accounted(&report);
    assert_eq!(report.import.timezones, ["Europe/Berlin"]);
    assert_eq!(
        report.import.source_id,
        format!("postgres://{}:5432/go", pg.socket_dir.display())
    );
    let bro = records(&db);
    assert_consistent(&bro, &zeek, Generation::Go);
    assert_chain_skipped(&report, &bro);

    // Not bro-pdns's: an empty database names what is missing.
    pg.create_db("empty");
    let e = import_bro_pdns::run(&args(
        &tmp.path().join("none"),
        &pg.url_with_password("empty"),
    ))
    .unwrap_err();
    assert!(format!("{e:#}").contains("no table `dns`"), "{e:#}");
    // Without the password: the server's refusal, and nothing else.
    let e = import_bro_pdns::run(&args(&tmp.path().join("none"), &pg.url("go"))).unwrap_err();
    assert!(format!("{e:#}").contains("password"), "{e:#}");
}

#[test]
fn importing_again_counts_once_and_adds_only_the_growth() {
    let tmp = tempfile::tempdir().unwrap();
    let logs = logs(tmp.path());
    let (early, late) = logs.split_at(logs.len() / 2);
    let file = tmp.path().join("go.db");
    go_sqlite(&file, early);
    let db = tmp.path().join("db");
    let first = import(&db, file.to_str().unwrap(), None);
    assert!(first.import.stats.rows_imported > 0);
    let after_first = records(&db);

    // The same database again: nothing added.
    let again = import(&db, file.to_str().unwrap(), None);
    assert_accounted(&again);
    assert_eq!(again.import.stats.rows_imported, 0);
    assert_eq!(
        again.import.stats.rows_unchanged,
        first.import.stats.rows_imported
    );
    assert_eq!(records(&db), after_first);

    // The database grew (bro-pdns loaded more logs): only the growth.
    go_sqlite(&file, late);
    let grown = import(&db, file.to_str().unwrap(), None);
    assert_accounted(&grown);
    assert!(grown.import.stats.rows_imported > 0);
    let fresh = tmp.path().join("fresh");
    import(&fresh, file.to_str().unwrap(), None);
    assert_eq!(
        records(&db),
        records(&fresh),
        "growth added once, as a fresh import of the whole"
    );
    // And the same file under another name is another source, unless
    // given its old name.
    let copy = tmp.path().join("copy.db");
    std::fs::copy(&file, &copy).unwrap();
    let mut a = args(&db, copy.to_str().unwrap());
    a.source_id = Some(grown.import.source_id.clone());
    assert_eq!(
        import_bro_pdns::run(&a).unwrap().import.stats.rows_imported,
        0
    );
    assert_eq!(records(&db), records(&fresh));
}

#[test]
fn a_database_that_is_not_bro_pdns_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |database: &Path| {
        let out = common::hermetic(&mut common::sensor_command())
            .args(["import-bro-pdns", "--db"])
            .arg(tmp.path().join("db"))
            .arg(database)
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let other = tmp.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE users (id integer)")
        .unwrap();
    let e = run(&other);
    assert!(
        e.contains("not a bro-pdns database")
            && e.contains("no table `dns`")
            && e.contains("users"),
        "{e}"
    );
    conn.execute_batch(
        "CREATE TABLE dns (query text, type text, count int, ttl int, first text, last text)",
    )
    .unwrap();
    let e = run(&other);
    assert!(e.contains("table `dns` has no column `answer`"), "{e}");
    let text = tmp.path().join("text.db");
    std::fs::write(
        &text,
        "this is not a database at all, just some text\n".repeat(100),
    )
    .unwrap();
    let e = run(&text);
    assert!(e.contains("not a database"), "{e}");
    let e = run(&tmp.path().join("missing.db"));
    assert!(e.contains("no such file"), "{e}");
    // Nothing was written: no database was created for them.
    assert!(!tmp.path().join("db").join("CURRENT").exists());
}

#[test]
fn impossible_rows_are_counted_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.db");
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute_batch(
        "CREATE TABLE dns (query VARCHAR(255) NOT NULL, type VARCHAR(16) NOT NULL, \
         answer VARCHAR(255) NOT NULL, count INTEGER, ttl INTEGER, first DATETIME, last DATETIME, \
         PRIMARY KEY (query, type, answer))",
    )
    .unwrap();
    let long = vec!["abcdefghi"; 30].join(".");
    /// query, type, answer, count, ttl, first, last.
    type Row<'a> = (
        String,
        &'a str,
        String,
        Option<i64>,
        Option<i64>,
        &'a str,
        &'a str,
    );
    let rows: Vec<Row<'_>> = vec![
        (
            "good.test".into(),
            "A",
            "192.0.2.1".into(),
            Some(3),
            Some(60),
            "2020-01-01 10:00:00.000000",
            "2020-01-02 10:00:00.000000",
        ),
        (
            "zero.test".into(),
            "A",
            "192.0.2.2".into(),
            Some(0),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "neg.test".into(),
            "A",
            "192.0.2.3".into(),
            Some(-2),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "null.test".into(),
            "A",
            "192.0.2.4".into(),
            None,
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "late.test".into(),
            "A",
            "192.0.2.5".into(),
            Some(1),
            Some(60),
            "2020-01-03 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "when.test".into(),
            "A",
            "192.0.2.6".into(),
            Some(1),
            Some(60),
            "last tuesday",
            "2020-01-01 10:00:00",
        ),
        (
            "pre.test".into(),
            "A",
            "192.0.2.7".into(),
            Some(1),
            Some(60),
            "1969-07-20 20:17:00",
            "2020-01-01 10:00:00",
        ),
        (
            "gap.test".into(),
            "A",
            "192.0.2.8".into(),
            Some(1),
            Some(60),
            "2020-03-29 02:30:00",
            "2020-03-29 03:30:00",
        ),
        (
            "ttl.test".into(),
            "A",
            "192.0.2.9".into(),
            Some(1),
            Some(-1),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            long,
            "A",
            "192.0.2.10".into(),
            Some(1),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "dash.test".into(),
            "A",
            "-".into(),
            Some(1),
            None,
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "txt.test".into(),
            "TXT",
            "TXT 99 short".into(),
            Some(1),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "key.test".into(),
            "DNSKEY",
            "DNSKEY 8".into(),
            Some(1),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "junk.test".into(),
            "A",
            "\u{1}\u{2}binary Junk".into(),
            Some(1),
            Some(60),
            "2020-01-01 10:00:00",
            "2020-01-01 10:00:00",
        ),
        (
            "fold.test".into(),
            "A",
            "192.0.2.11".into(),
            Some(2),
            None,
            "2020-10-25 02:30:00",
            "2020-10-25 02:30:00",
        ),
    ];
    for (q, t, a, c, ttl, f, l) in &rows {
        conn.execute(
            "INSERT INTO dns VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            rusqlite::params![q, t, a, c, ttl, f, l],
        )
        .unwrap();
    }
    // NULL times, which SQLAlchemy would have allowed.
    conn.execute(
        "INSERT INTO dns VALUES ('nulltime.test', 'A', '192.0.2.12', 1, 60, NULL, NULL)",
        [],
    )
    .unwrap();
    let db = tmp.path().join("db");
    let stats_file = tmp.path().join("stats.json");
    let mut a = args(&db, file.to_str().unwrap());
    a.timezone = Some("Europe/Berlin".into());
    a.stats_json = Some(stats_file.clone());
    let report = import_bro_pdns::run(&a).unwrap();
    assert_accounted(&report);
    let s = &report.import.stats;
    let expect: HashMap<&str, u64> = [
        ("bad_count", 3),
        ("first_after_last", 1),
        ("bad_time", 3),
        ("nonexistent_local_time", 1),
        ("bad_ttl", 1),
        ("bad_query", 1),
        ("no_answer", 1),
        ("bad_txt", 1),
        ("dnskey", 1),
        ("unrecognised", 1),
    ]
    .into_iter()
    .collect();
    for (reason, n) in &expect {
        assert_eq!(s.skipped(reason), *n, "{reason}: {s:?}");
    }
    assert_eq!(s.rows, rows.len() as u64 + 1);
    assert_eq!(s.rows_imported, 2);
    assert_eq!(s.ambiguous_local_times, 1);
    assert_eq!(s.rows_without_ttl, 1);
    let stored = records(&db);
    let good = &stored[&(
        "good.test.".to_string(),
        "A".to_string(),
        "192.0.2.1".to_string(),
    )];
    // 10:00 in Berlin in winter is 09:00 UTC.
    assert_eq!(
        (good.0, good.1, good.2, good.3),
        (3, 60, 1_577_869_200, 1_577_955_600)
    );
    // A time that occurred twice: the range that surely holds it.
    let fold = &stored[&(
        "fold.test.".to_string(),
        "A".to_string(),
        "192.0.2.11".to_string(),
    )];
    assert_eq!(fold.3 - fold.2, 3600);
    assert_eq!(stored.len(), 2);
    // The counters by name in --stats-json.
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&stats_file).unwrap()).unwrap();
    assert_eq!(json["bro_pdns"]["skipped_rows"]["bad_count"], 3);
    assert_eq!(json["bro_pdns"]["rows_imported"], 2);
    assert_eq!(json["generations"][0], "python");
}

#[test]
fn the_origin_and_the_counters_show_on_every_surface() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("go.db");
    let logs = logs(tmp.path());
    go_sqlite(&file, &logs);
    let db = tmp.path().join("db");
    let out = common::hermetic(&mut common::sensor_command())
        .args(["import-bro-pdns", "--db"])
        .arg(&db)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(
        summary.contains("imported bro-pdns") && summary.contains("go generation"),
        "{summary}"
    );
    let out = common::hermetic(&mut common::sensor_command())
        .args(["dump", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().count() > 0);
    assert!(text.lines().all(|l| l.contains("\"bro-pdns\"")), "{text}");

    // CIRCL marks records that did not come from the wire.
    let store = std::sync::Arc::new(Store::open_reader(&db).unwrap());
    let server = common::serve(store, pdns_sensor::serve::ServeConfig::default());
    let answer = common::get(server.addr, "/pdns/query/virgo.sas.upenn.edu", &[]);
    assert_eq!(answer.status, 200, "{}", answer.body);
    let lines = answer.lines();
    assert!(!lines.is_empty());
    for line in &lines {
        let origin = line["origin"].as_str().unwrap();
        assert!(origin.ends_with("#bro-pdns"), "{line}");
    }

    // Metrics: this process's import moves the counters /metrics shows.
    let again = tmp.path().join("again");
    let report = import(&again, file.to_str().unwrap(), None);
    let metrics = common::get(server.addr, "/metrics", &[]).body;
    let value = |needle: &str| -> u64 {
        metrics
            .lines()
            .find(|l| l.starts_with(needle))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{needle} not in /metrics"))
    };
    assert!(value("pdns_bro_pdns_rows_total{result=\"read\"}") >= report.import.stats.rows);
    assert!(
        value("pdns_bro_pdns_rows_skipped_total{reason=\"cname_owner_unknown\"}")
            >= report.import.stats.skipped("cname_owner_unknown")
    );
}

/// Killed at an arbitrary point, an import run again ends where an
/// uninterrupted one does: every batch carries its ledger entries, so no
/// row is counted twice or lost.
#[test]
fn an_interrupted_import_ends_as_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.db");
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.execute_batch(GO_SQLITE_SCHEMA).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO tuples VALUES (?1, 'A', ?2, ?3, 300, \
                 datetime(?4, 'unixepoch'), datetime(?5, 'unixepoch'))",
            )
            .unwrap();
        for i in 0..150_000u32 {
            let query = reverse(&format!("h{}.z{}.example", i / 2, i % 101));
            let answer = format!("10.{}.{}.{}", (i >> 16) & 255, (i >> 8) & 255, i & 255);
            let first = (TS + u64::from(i)) as i64;
            insert
                .execute(rusqlite::params![
                    query,
                    answer,
                    1 + i % 7,
                    first,
                    first + 3600
                ])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    drop(conn);

    let whole = tmp.path().join("whole");
    import(&whole, file.to_str().unwrap(), None);

    let db = tmp.path().join("db");
    let mut child = common::hermetic(&mut common::sensor_command())
        .args(["import-bro-pdns", "--quiet", "--batch-rows", "5000", "--db"])
        .arg(&db)
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Until the store holds some of it, then SIGKILL.
    let started = Instant::now();
    while !db.join("CURRENT").exists() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    let rerun = import(&db, file.to_str().unwrap(), None);
    assert_accounted(&rerun);
    eprintln!(
        "after the kill: {} rows already in, {} imported by the rerun",
        rerun.import.stats.rows_unchanged, rerun.import.stats.rows_imported
    );
    assert_eq!(records(&db), records(&whole));
}
