//! The configuration file and the `PDNS_*` environment, through the binary
//! as an operator runs it: precedence (flag > environment > file > default)
//! on `dump`, `ingest`, `serve` and `import-zeek`; errors that name the
//! key, its table and its line; `config check`; and the example file
//! shipped in `packaging/`, which must list every option of every command.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use clap::ArgAction;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the binary with a configuration file (or none), extra variables
/// and arguments.
fn sensor(config: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = common::sensor_command();
    if let Some(config) = config {
        c.arg("--config").arg(config);
    }
    c.envs(env.iter().copied()).args(args).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed ({}): {}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `(rrname, rrtype)` of every COF line dump printed.
fn dumped(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["rrname"].as_str().unwrap().to_string(),
                v["rrtype"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn dump_options_come_from_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    // Two databases with different content: which one a dump read shows.
    let (db_a, db_b) = (dir.path().join("a"), dir.path().join("b"));
    for (db, pcaps) in [
        (&db_a, &["dnscap/dns.pcap", "dnscap/dns6.pcap"][..]),
        (&db_b, &["zeek/pcapng-multi-interface.pcapng"]),
    ] {
        let files: Vec<PathBuf> = pcaps.iter().map(|p| common::pcap(p)).collect();
        let mut args = vec!["ingest", "--db", s(db)];
        args.extend(files.iter().map(|f| s(f)));
        ok(&sensor(None, &[], &args));
    }
    let all_a = dumped(&ok(&sensor(
        None,
        &[],
        &["dump", "--db", s(&db_a), "--json"],
    )));
    let all_b = dumped(&ok(&sensor(
        None,
        &[],
        &["dump", "--db", s(&db_b), "--json"],
    )));
    assert!(all_a.len() > 3, "{all_a:?}");
    assert_ne!(all_a, all_b);

    let config = write(
        dir.path(),
        "c.toml",
        &format!(
            "[common]\ndb = {:?}\n\n[dump]\nlimit = 3\njson = true\n",
            s(&db_a)
        ),
    );
    let c = Some(config.as_path());
    // The file: its database, its limit, its switch.
    let rows = dumped(&ok(&sensor(c, &[], &["dump"])));
    assert_eq!(rows, all_a[..3]);
    // The environment beats the file.
    let env = [("PDNS_LIMIT", "2"), ("PDNS_DB", s(&db_b))];
    let rows = dumped(&ok(&sensor(c, &env, &["dump"])));
    assert_eq!(rows, all_b[..2]);
    // A flag beats both.
    let rows = dumped(&ok(&sensor(
        c,
        &env,
        &["dump", "--limit", "1", "--db", s(&db_a)],
    )));
    assert_eq!(rows, all_a[..1]);
    // A switch set in the file is turned off by its variable.
    let table = ok(&sensor(c, &[("PDNS_JSON", "false")], &["dump"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert_eq!(table.lines().count(), 1 + 3);
    // Without a file, the built-in default: no limit.
    let rows = dumped(&ok(&sensor(
        None,
        &[],
        &["dump", "--json", "--db", s(&db_a)],
    )));
    assert_eq!(rows, all_a);
}

#[test]
fn a_flag_replaces_a_conflicting_selector_of_the_file() {
    let ingested = common::ingest(&[common::pcap("dnscap/dns.pcap")]);
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        &format!(
            "[dump]\ndb = {:?}\njson = true\nname = \"206.218.58.216.in-addr.arpa\"\n",
            s(&ingested.db())
        ),
    );
    let c = Some(config.as_path());
    let by_name = dumped(&ok(&sensor(c, &[], &["dump"])));
    assert!(!by_name.is_empty());
    for row in by_name {
        assert_eq!(
            row,
            (
                "206.218.58.216.in-addr.arpa.".to_string(),
                "PTR".to_string()
            )
        );
    }
    // --rdata and --name conflict: the flag wins, the file's name yields
    // (rather than clap refusing, or the file's name silently winning).
    let by_rdata = dumped(&ok(&sensor(c, &[], &["dump", "--rdata", "216.58.218.206"])));
    assert_eq!(by_rdata, [("google.com.".to_string(), "A".to_string())]);
    // The same from the environment.
    let by_rdata = dumped(&ok(&sensor(
        c,
        &[("PDNS_RDATA", "216.58.218.206")],
        &["dump"],
    )));
    assert_eq!(by_rdata, [("google.com.".to_string(), "A".to_string())]);
}

#[test]
fn ingest_reads_repeatable_options_and_switches_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = common::pcap("tcpdump/dns_udp_8053.pcap");
    let config = write(
        dir.path(),
        "c.toml",
        "[ingest]\nport = [53, 8053]\nquiet = true\n",
    );
    let c = Some(config.as_path());
    let db = dir.path().join("a");
    let out = sensor(c, &[], &["ingest", "--db", s(&db), s(&pcap)]);
    ok(&out);
    assert_eq!(text(&out.stderr), "", "quiet from the file");
    let records = ok(&sensor(None, &[], &["dump", "--db", s(&db), "--json"]));
    assert!(records.contains("www.tcpdump.org."), "{records}");

    // The flag replaces the file's list; PDNS_QUIET=false its switch.
    let db = dir.path().join("b");
    let out = sensor(
        c,
        &[("PDNS_QUIET", "0")],
        &["ingest", "--db", s(&db), "--port", "53", s(&pcap)],
    );
    ok(&out);
    assert!(
        text(&out.stderr).contains("ingested 1 file(s)"),
        "{}",
        text(&out.stderr)
    );
    let records = ok(&sensor(None, &[], &["dump", "--db", s(&db), "--json"]));
    assert_eq!(records, "");
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and waits until `port` answers; returns the /metrics
/// status line.
fn serve_on(config: &Path, env: &[(&str, &str)], port: u16) -> String {
    let child = common::sensor_command()
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(status)) = child.0.try_wait() {
            let mut err = String::new();
            child
                .0
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("serve exited ({status}): {err}");
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "serve did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let response = common::get(addr, "/metrics", &[]);
    format!("{} {}", response.status, response.body.contains("pdns_"))
}

#[test]
fn serve_listens_where_the_file_or_the_environment_says() {
    let ingested = common::ingest(&[common::pcap("dnscap/dns6.pcap")]);
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (common::free_port(), common::free_port());
    let config = write(
        dir.path(),
        "c.toml",
        &format!(
            "[common]\ndb = {:?}\n[serve]\nlisten = \"127.0.0.1:{file_port}\"\n",
            s(&ingested.db())
        ),
    );
    assert_eq!(serve_on(&config, &[], file_port), "200 true");
    let env_listen = format!("127.0.0.1:{env_port}");
    assert_eq!(
        serve_on(&config, &[("PDNS_LISTEN", &env_listen)], env_port),
        "200 true"
    );
}

#[test]
fn import_zeek_follows_the_file_named_in_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    // Neither paths nor --follow: a clear error, wherever they could come from.
    let out = sensor(None, &[], &["import-zeek", "--db", s(&db)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr)
            .contains("nothing to import: give dns.log files or directories, or --follow FILE"),
        "{}",
        text(&out.stderr)
    );
    // `follow` from the file is enough (clap alone would insist on PATH).
    let log = write(dir.path(), "dns.log", "");
    let config = write(
        dir.path(),
        "c.toml",
        &format!("[import-zeek]\ndb = {:?}\nfollow = {:?}\n", s(&db), s(&log)),
    );
    let child = common::sensor_command()
        .arg("--config")
        .arg(&config)
        .arg("import-zeek")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    // The follower records its position in the database once it runs.
    while !db.join("CURRENT").exists() {
        assert!(
            Instant::now() < deadline,
            "import-zeek did not start following"
        );
        assert!(child.0.try_wait().unwrap().is_none(), "import-zeek exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the pid of a child this test started and has not
    // reaped (it is reaped by `wait` below); no memory is involved.
    assert_eq!(unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) }, 0);
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains(&format!("following {}", s(&log))), "{err}");
}

#[test]
fn bad_files_are_errors_that_name_the_key_the_table_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "bad.toml",
        "# a comment\n[common]\ndb = \"/tmp/x\"\n\n[dump]\nlisten = \"127.0.0.1:80\"\nlimit = \"lots\"\n\
         \n[serve]\nresults-max = true\nlisen = \"127.0.0.1:80\"\n\n[ingest]\nfiles = [\"a.pcap\"]\n\
         port = \"domain\"\n[nope]\n",
    );
    let path = s(&config);
    // Every command refuses it, not only the one whose table is wrong.
    for command in [&["dump"][..], &["config", "check"], &["serve"]] {
        let out = sensor(Some(&config), &[], command);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert_eq!(text(&out.stdout), "");
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        let expect = [
            format!(
                "{path}:6: [dump] listen: `dump` has no option --listen (it is an option of: run, serve)"
            ),
            format!(
                "{path}:7: [dump] limit: invalid value \"lots\": invalid digit found in string"
            ),
            format!(
                "{path}:10: [serve] results-max: expected a value (a string or a number), found a boolean"
            ),
            format!(
                "{path}:11: [serve] lisen: `serve` has no option --lisen (did you mean `listen`?)"
            ),
            format!("{path}:14: [ingest] files: FILE is a positional argument"),
            format!(
                "{path}:15: [ingest] port: invalid value \"domain\": invalid digit found in string"
            ),
            format!("{path}:16: unknown table [nope]"),
        ];
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), expect.len() + 1, "{err}");
        for (line, expect) in lines.iter().zip(&expect) {
            assert!(
                line.starts_with(&format!("pdns-sensor: error: {expect}")),
                "{line:?}\nexpected {expect:?}"
            );
        }
        assert!(
            lines.last().unwrap().contains("came from --config"),
            "{err}"
        );
    }
    // The manual is still there.
    let out = sensor(Some(&config), &[], &["serve", "--help"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout).contains("--listen <LISTEN>"),
        "{}",
        text(&out.stdout)
    );
    // A TOML syntax error, and a file that is not there.
    let broken = write(
        dir.path(),
        "broken.toml",
        "[serve]\nlisten = \"127.0.0.1:80\nquiet = true\n",
    );
    let out = sensor(Some(&broken), &[], &["dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with(&format!(
            "pdns-sensor: error: {}:2: not valid TOML",
            s(&broken)
        )),
        "{}",
        text(&out.stderr)
    );
    let missing = dir.path().join("missing.toml");
    let out = sensor(None, &[("PDNS_CONFIG", s(&missing))], &["dump"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("missing.toml: cannot read it: No such file"),
        "{err}"
    );
    assert!(err.contains("came from PDNS_CONFIG"), "{err}");
    // Something that never ends is not read to its end.
    let out = sensor(Some(Path::new("/dev/zero")), &[], &["dump"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("/dev/zero: larger than 1024 KiB: not a configuration file"),
        "{}",
        text(&out.stderr)
    );
    // A bad value in the environment is clap's usual error.
    let out = sensor(None, &[("PDNS_THREADS", "many")], &["ingest", "x.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value 'many' for '--threads <THREADS>'"),
        "{}",
        text(&out.stderr)
    );
}

/// `config check`'s table of one command: key → (value, source).
fn check_table(stdout: &str, table: &str) -> BTreeMap<String, (String, String)> {
    let mut rows = BTreeMap::new();
    let mut inside = false;
    for line in stdout.lines() {
        if line.starts_with('[') {
            inside = line == format!("[{table}]");
            continue;
        }
        if !inside || line.is_empty() {
            continue;
        }
        let (left, source) = line.rsplit_once("  # ").unwrap();
        let left = left.trim_end();
        let (key, value) = match left.strip_prefix("# ") {
            Some(key) => (key, "(not set)"),
            None => left.split_once(" = ").unwrap(),
        };
        rows.insert(key.to_string(), (value.to_string(), source.to_string()));
    }
    rows
}

#[test]
fn config_check_shows_every_value_and_where_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[common]\ndb = \"/var/lib/pdns-sensor\"\nquiet = true\n\n[serve]\nlisten = \"127.0.0.1:9000\"\n\
         results-max = 500\norigin = \"urn:site\"\n\n[ingest]\nport = [53, 5353]\n",
    );
    let out = sensor(
        Some(&config),
        &[("PDNS_RESULTS_MAX", "700")],
        &["config", "check", "serve", "--origin", "urn:flag"],
    );
    let stdout = ok(&out);
    assert!(
        stdout.starts_with(&format!(
            "# configuration file {} (from --config): valid\n",
            s(&config)
        )),
        "{stdout}"
    );
    let serve = check_table(&stdout, "serve");
    let row = |k: &str| serve.get(k).map(|(v, s)| (v.as_str(), s.as_str()));
    assert_eq!(row("origin"), Some(("\"urn:flag\"", "flag")));
    assert_eq!(row("results-max"), Some(("700", "env PDNS_RESULTS_MAX")));
    assert_eq!(
        row("listen"),
        Some(("\"127.0.0.1:9000\"", "file, [serve] line 6"))
    );
    assert_eq!(
        row("db"),
        Some(("\"/var/lib/pdns-sensor\"", "file, [common] line 2"))
    );
    assert_eq!(row("default-limit"), Some(("10000", "default")));
    assert_eq!(row("sensor-id"), Some(("(not set)", "not set")));
    // Every option of serve, and only those (quiet is not one).
    let options: Vec<String> = options_of("serve").into_iter().map(|(k, _)| k).collect();
    assert_eq!(serve.keys().cloned().collect::<Vec<_>>(), sorted(options));
    assert_eq!(
        stdout.matches("\n[").count(),
        1,
        "only the command asked for: {stdout}"
    );

    // Without a command: every command, in one valid TOML document.
    let stdout = ok(&sensor(Some(&config), &[], &["config", "check"]));
    for command in [
        "run",
        "ingest",
        "dump",
        "serve",
        "import-zeek",
        "import-bro-pdns",
    ] {
        assert!(
            stdout.contains(&format!("\n[{command}]\n")),
            "{command}: {stdout}"
        );
    }
    let ingest = check_table(&stdout, "ingest");
    assert_eq!(
        ingest["port"],
        (
            "[53, 5353]".to_string(),
            "file, [ingest] line 11".to_string()
        )
    );
    assert_eq!(
        ingest["quiet"],
        ("true".to_string(), "file, [common] line 3".to_string())
    );
    assert_eq!(
        ingest["status-interval"],
        ("10".to_string(), "default".to_string())
    );
    // The output pins every value: fed back as a file, it says the same.
    let pinned = write(dir.path(), "pinned.toml", &stdout);
    let again = ok(&sensor(Some(&pinned), &[], &["config", "check"]));
    let strip = |t: &str| -> Vec<(String, String)> {
        t.lines()
            .filter(|l| !l.starts_with('#') && l.contains(" = "))
            .map(|l| {
                let (k, v) = l.split_once(" = ").unwrap();
                (
                    k.to_string(),
                    v.split("  # ").next().unwrap().trim().to_string(),
                )
            })
            .collect()
    };
    assert_eq!(strip(&again), strip(&stdout));

    // Flags after the command are checked as that command checks them.
    let out = sensor(
        Some(&config),
        &[],
        &["config", "check", "serve", "--listen", "nowhere"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("invalid value 'nowhere' for '--listen <LISTEN>'"),
        "{}",
        text(&out.stderr)
    );
    // No file at all.
    let stdout = ok(&sensor(None, &[], &["config", "check", "dump"]));
    assert!(
        stdout.starts_with("# configuration file /dev/null (from PDNS_CONFIG): valid"),
        "{stdout}"
    );
    assert_eq!(
        check_table(&stdout, "dump")["db"],
        ("\"./pdns-data\"".to_string(), "default".to_string())
    );
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// The options of a command as the binary defines them: long name and the
/// argument.
fn options_of(command: &str) -> Vec<(String, clap::Arg)> {
    let cmd = pdns_sensor::cli::command();
    let sub = cmd.find_subcommand(command).unwrap();
    sub.get_arguments()
        .filter(|a| {
            !a.is_positional()
                && a.get_id() != "config"
                && !matches!(a.get_action(), ArgAction::Help | ArgAction::Version)
        })
        .filter_map(|a| Some((a.get_long()?.to_string(), a.clone())))
        .collect()
}

/// Every command with options (the tables of the file).
/// The commands whose options a configuration file sets (not the
/// packaging helpers `completions` and `manpages`).
fn commands_with_options() -> Vec<String> {
    pdns_sensor::cli::command()
        .get_subcommands()
        .filter(|c| !c.has_subcommands())
        .map(|c| c.get_name().to_string())
        .filter(|name| !["completions", "manpages"].contains(&name.as_str()))
        .filter(|name| !options_of(name).is_empty())
        .collect()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("packaging/pdns-sensor.toml")
}

/// The lines of each table of the example, by table name.
fn example_tables(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut tables: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_string();
        }
        tables
            .entry(current.clone())
            .or_default()
            .push(line.to_string());
    }
    tables
}

/// A `#key = value` or `key = value` line: (key, value text).
fn setting(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.trim_start_matches('#').split_once(" = ")?;
    (!key.contains(' ') && !key.is_empty()).then_some((key, value))
}

#[test]
fn the_example_file_is_valid_and_lists_every_option_with_its_default() {
    let path = example();
    let example = std::fs::read_to_string(&path).unwrap();
    // Valid as shipped, and production-minded: the database under
    // /var/lib, the API on loopback.
    let out = sensor(Some(&path), &[], &["config", "check"]);
    let stdout = ok(&out);
    let db_line = 1 + example
        .lines()
        .position(|l| l == "db = \"/var/lib/pdns-sensor\"")
        .expect("the example sets db");
    for command in commands_with_options() {
        let table = check_table(&stdout, &command);
        // Every command that opens a database (not clickhouse-schema).
        if !options_of(&command).iter().any(|(long, _)| long == "db") {
            assert!(!table.contains_key("db"), "{command}");
            continue;
        }
        assert_eq!(
            table["db"],
            (
                "\"/var/lib/pdns-sensor\"".to_string(),
                format!("file, [common] line {db_line}")
            ),
            "{command}"
        );
        if let Some((listen, _)) = table.get("listen") {
            assert!(listen.starts_with("\"127.0.0.1:"), "{command}: {listen}");
        }
    }

    let tables = example_tables(&example);
    let mut missing = Vec::new();
    for command in commands_with_options() {
        let lines = tables.get(&command).map(Vec::as_slice).unwrap_or_default();
        for (long, arg) in options_of(&command) {
            let Some(value) = lines
                .iter()
                .find_map(|l| setting(l).filter(|(k, _)| *k == long).map(|(_, v)| v))
            else {
                missing.push(format!("[{command}] {long}"));
                continue;
            };
            // The value shown is the built-in default, where there is one.
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|d| d.to_string_lossy().into_owned())
                .collect();
            if !defaults.is_empty() {
                assert_eq!(
                    values(value),
                    defaults,
                    "[{command}] {long}: the example shows {value}"
                );
            }
        }
    }
    assert!(
        missing.is_empty(),
        "options without a line in {}: {}",
        path.display(),
        missing.join(", ")
    );

    // Every commented-out line is a valid setting: uncommented (one at a
    // time, as an operator would), the file still passes.
    let lines: Vec<&str> = example.lines().collect();
    let scratch = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('#') || setting(line).is_none() {
            continue;
        }
        let mut edited: Vec<&str> = lines.clone();
        let uncommented = &line[1..];
        edited[i] = uncommented;
        let file = write(scratch.path(), "edited.toml", &edited.join("\n"));
        let out = sensor(Some(&file), &[], &["config", "check"]);
        assert!(
            out.status.success(),
            "line {}: {uncommented}: {}",
            i + 1,
            text(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked > 50, "{checked}");
}

/// The values of a TOML value as the example writes them: `"text"`, `10`,
/// `false`, `[53]`.
fn values(toml: &str) -> Vec<String> {
    let scalar = |v: &str| v.trim().trim_matches('"').to_string();
    match toml.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
        Some(items) => items.split(',').map(scalar).collect(),
        None => vec![scalar(toml)],
    }
}
