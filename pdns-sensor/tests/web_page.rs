//! The web page at `/`, in a real browser (Debian's Chromium, headless,
//! through WebDriver), over a database ingested from real captures in
//! `testdata/pcap`. What the page shows is held against what other
//! surfaces answer for the same question: the DNSDB API (names, types,
//! rdata, counts, times), `dump --json` (TTL, origin), `dump --regex`, the
//! `/negative` and `/nod` endpoints. Times are compared as the page prints
//! them (its JavaScript formats them; the expected text comes from the
//! sensor's Rust formatter), so a formatting slip on either side fails.
//!
//! Screenshots of the main views are written under the test's target
//! directory on every run; with `PDNS_UPDATE_SCREENSHOTS=1` they replace
//! the ones in `docs/screenshots/` that the README shows.

mod common;
mod web_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::process::ServeProcess;
use fantoccini::Locator;
use fantoccini::key::Key;
use pdns_sensor::vocab::time::format_utc;
use serde_json::Value;
use web_support::Browser;

/// Captures with names in many zones, addresses in shared /24s, CNAME
/// chains, DNSSEC records, negative answers.
fn ingest() -> common::Ingested {
    common::ingest(&[
        common::pcap("dnscap/dns.pcap"),
        common::pcap("zeek/pcapng-multi-interface.pcapng"),
        common::pcap("zeek/dns-edns-ecs.pcap"),
        common::pcap("zeek/ipv6-fragmented-dns.pcap"),
        common::pcap("zeek/dns-caa.pcap"),
        common::pcap("zeek/dns-spf.pcap"),
        common::pcap("zeek/dns-https.pcap"),
        common::pcap("tcpdump/dns-uri.pcap"),
    ])
}

/// One record as the table shows it: name, type, data, count, first seen,
/// last seen (the columns the DNSDB API also answers).
type Shown = (String, String, String, String, String, String);

/// The first six columns of the page's table.
fn shown(table: &[Vec<String>]) -> BTreeSet<Shown> {
    table
        .iter()
        .map(|c| {
            (
                c[0].clone(),
                c[1].clone(),
                c[2].clone(),
                c[3].clone(),
                c[4].clone(),
                c[5].clone(),
            )
        })
        .collect()
}

/// The records a DNSDB v2 lookup path answers, as the page should show them.
fn dnsdb(serve: &ServeProcess, paths: &[String], headers: &[(&str, &str)]) -> BTreeSet<Shown> {
    let mut out = BTreeSet::new();
    for path in paths {
        let r = common::get(serve.addr(), path, headers);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        let lines = r.lines();
        assert_eq!(
            lines.last().unwrap()["cond"],
            "succeeded",
            "{path}: the expectation itself was cut short"
        );
        for l in lines {
            let Some(o) = l.get("obj") else { continue };
            let rdata = match &o["rdata"] {
                Value::Array(a) => a[0].as_str().unwrap().to_string(),
                v => v.as_str().unwrap().to_string(),
            };
            out.insert((
                o["rrname"].as_str().unwrap().to_string(),
                o["rrtype"].as_str().unwrap().to_string(),
                rdata,
                o["count"].to_string(),
                format_utc(o["time_first"].as_u64().unwrap()),
                format_utc(o["time_last"].as_u64().unwrap()),
            ));
        }
    }
    out
}

/// `lookup/rrset/name/{q}` over every type (ANY leaves DNSSEC out).
fn rrset_paths(q: &str) -> Vec<String> {
    ["ANY", "ANY-DNSSEC"]
        .iter()
        .map(|t| format!("/dnsdb/v2/lookup/rrset/name/{q}/{t}?limit=0"))
        .collect()
}

/// `dump --json` lines keyed by (name, type, data): TTL and origin.
fn dump(db: &Path, extra: &[&str]) -> BTreeMap<(String, String, String), (String, String)> {
    let out = Command::new(common::process::SENSOR)
        .args(["dump", "--json", "--db"])
        .arg(db)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let origin: Vec<&str> = v["origin"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap())
                .collect();
            (
                (
                    v["rrname"].as_str().unwrap().to_string(),
                    v["rrtype"].as_str().unwrap().to_string(),
                    v["rdata"][0].as_str().unwrap().to_string(),
                ),
                (v["ttl"].to_string(), origin.join(", ")),
            )
        })
        .collect()
}

/// Types `text` into the search box and presses Enter, as an analyst does.
async fn type_search(b: &Browser, text: &str) {
    let from = b.client.current_url().await.unwrap().to_string();
    let q = b.client.find(Locator::Id("q")).await.unwrap();
    q.clear().await.unwrap();
    q.send_keys(&format!("{text}{}", char::from(Key::Enter)))
        .await
        .unwrap();
    b.wait_navigated(&from).await;
}

fn base(serve: &ServeProcess) -> String {
    format!("http://{}", serve.addr())
}

fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Keeps a screenshot: under the target directory always, and in
/// `docs/screenshots/` when asked to update them.
fn keep_screenshot(png: &[u8], name: &str) {
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
    assert!(
        png.len() > 10_000,
        "{name}: {} bytes: an empty page?",
        png.len()
    );
    std::fs::write(screenshot_dir().join(name), png).unwrap();
    if std::env::var_os("PDNS_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), png).unwrap();
    }
}

#[tokio::test]
async fn searches_show_what_the_api_answers() {
    let ingested = ingest();
    let serve = ServeProcess::start(&ingested.db(), &[]);
    let b = Browser::start(1400, 1000).await;
    let ttl_origin = dump(&ingested.db(), &[]);

    // A subtree, typed into the box.
    b.open(&format!("{}/", base(&serve))).await;
    type_search(&b, "*.com").await;
    let table = b.table("records").await;
    let expected = dnsdb(&serve, &rrset_paths("*.com"), &[]);
    assert!(
        expected.len() > 20,
        "{} records: too few to test with",
        expected.len()
    );
    assert_eq!(shown(&table), expected, "page rows for *.com");
    for c in &table {
        let (ttl, origin) = &ttl_origin[&(c[0].clone(), c[1].clone(), c[2].clone())];
        assert_eq!((&c[6], &c[7]), (ttl, origin), "TTL and origin of {c:?}");
    }
    assert!(
        b.text("#summary").await.contains("every name below it"),
        "the page says what it searched"
    );
    keep_screenshot(&b.screenshot().await, "search.png");

    // A CIDR.
    type_search(&b, "142.251.181.0/24").await;
    let expected = dnsdb(
        &serve,
        &["/dnsdb/v2/lookup/rdata/ip/142.251.181.0,24?limit=0".to_string()],
        &[],
    );
    assert!(expected.len() >= 4);
    assert_eq!(
        shown(&b.table("records").await),
        expected,
        "page rows for a /24"
    );

    // What points at a name.
    type_search(&b, "rdata:www-apple-com.v.aaplimg.com").await;
    let expected = dnsdb(
        &serve,
        &["/dnsdb/v2/lookup/rdata/name/www-apple-com.v.aaplimg.com?limit=0".to_string()],
        &[],
    );
    assert!(!expected.is_empty());
    assert_eq!(
        shown(&b.table("records").await),
        expected,
        "rdata name search"
    );

    // A regular expression over names, against `dump --regex`.
    type_search(&b, r"/^ns-[0-9]+\.awsdns-/").await;
    let expected: BTreeSet<(String, String, String)> =
        dump(&ingested.db(), &["--regex", r"^ns-[0-9]+\.awsdns-"])
            .into_keys()
            .collect();
    assert!(expected.len() > 5);
    let got: BTreeSet<(String, String, String)> = b
        .table("records")
        .await
        .into_iter()
        .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
        .collect();
    assert_eq!(got, expected, "regex search");

    // A deep link with a type, reloaded: the same rows, the form filled in.
    let link = format!("{}/?q=*.google.com&type=AAAA", base(&serve));
    b.open(&link).await;
    let first = b.table("records").await;
    b.client.refresh().await.unwrap();
    b.wait_ready().await;
    assert_eq!(b.table("records").await, first, "reloading shows the same");
    let expected = dnsdb(
        &serve,
        &["/dnsdb/v2/lookup/rrset/name/*.google.com/AAAA?limit=0".to_string()],
        &[],
    );
    assert!(!expected.is_empty());
    assert_eq!(shown(&first), expected, "deep link with a type");
    assert_eq!(
        b.run("return [document.getElementById('q').value, document.getElementById('type').value]")
            .await,
        serde_json::json!(["*.google.com", "AAAA"])
    );

    // A search cut at its row limit says so, and offers the rest.
    let cut = format!("{}/?q=*.com&limit=5", base(&serve));
    b.open(&cut).await;
    assert_eq!(b.table("records").await.len(), 5);
    assert!(
        b.text("#summary")
            .await
            .contains("Only the first 5 rows are shown"),
        "{}",
        b.text("#summary").await
    );
    b.client
        .find(Locator::Id("more"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_navigated(&cut).await;
    assert_eq!(
        shown(&b.table("records").await),
        dnsdb(&serve, &rrset_paths("*.com"), &[])
    );
}

#[tokio::test]
async fn pivots_and_the_back_button() {
    let ingested = ingest();
    let serve = ServeProcess::start(&ingested.db(), &[]);
    let b = Browser::start(1400, 1000).await;
    let start = format!("{}/?q=google.com", base(&serve));
    b.open(&start).await;
    let before = b.table("records").await;
    assert_eq!(
        shown(&before),
        dnsdb(&serve, &rrset_paths("google.com"), &[])
    );

    // Click the address of the first A record.
    let address = before
        .iter()
        .find(|c| c[1] == "A")
        .expect("google.com has A records")[2]
        .clone();
    b.client
        .find(Locator::XPath(&format!(
            "//table[@id='records']//td[contains(@class,'rdata')]//a[text()='{address}']"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_navigated(&start).await;
    let url = b.client.current_url().await.unwrap();
    assert!(url.as_str().contains(&format!("q={address}")), "{url}");
    let pivoted = b.table("records").await;
    assert_eq!(
        shown(&pivoted),
        dnsdb(
            &serve,
            &[format!("/dnsdb/v2/lookup/rdata/ip/{address}?limit=0")],
            &[]
        )
    );
    keep_screenshot(&b.screenshot().await, "pivot.png");

    // Back: the first search again; forward: the pivot again.
    b.client.back().await.unwrap();
    b.wait_ready().await;
    assert_eq!(b.client.current_url().await.unwrap().as_str(), start);
    assert_eq!(b.table("records").await, before);
    b.client.forward().await.unwrap();
    b.wait_ready().await;
    assert_eq!(b.table("records").await, pivoted);

    // The arrow beside a name: what points at it.
    b.open(&format!("{}/?q=www.apple.com", base(&serve))).await;
    let from = b.client.current_url().await.unwrap().to_string();
    b.client
        .find(Locator::Css("#records td.rdata a.pivot"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.wait_navigated(&from).await;
    let target = b.table("records").await;
    assert!(
        target
            .iter()
            .all(|c| c[0] == "www-apple-com.v.aaplimg.com."),
        "{target:?}"
    );
}

/// Parses RFC 4180 CSV.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn exports_hold_what_is_shown() {
    let ingested = ingest();
    let serve = ServeProcess::start(&ingested.db(), &[]);
    let b = Browser::start(1400, 1000).await;
    b.open(&format!("{}/?q=*.com", base(&serve))).await;
    // Sort by count (most first): the table and the exports follow.
    b.client
        .find(Locator::Css("th[data-key='count'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let table = b.table("records").await;
    let counts: Vec<u64> = table.iter().map(|c| c[3].parse().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    assert!(counts.first() > counts.last(), "a sort that shows nothing");
    assert_eq!(
        b.run("return document.querySelector(\"th[data-key='count']\").getAttribute('aria-sort')")
            .await,
        "descending"
    );

    let fetch = |id: &str| {
        format!(
            "const done = arguments[arguments.length - 1]; \
             fetch(document.getElementById('{id}').href).then(r => r.text()).then(done, e => done('ERROR ' + e))"
        )
    };
    let csv = b
        .client
        .execute_async(&fetch("export-csv"), vec![])
        .await
        .unwrap();
    let csv = parse_csv(csv.as_str().unwrap());
    assert_eq!(
        csv[0],
        [
            "rrname",
            "rrtype",
            "rdata",
            "count",
            "time_first",
            "time_last",
            "ttl",
            "origin"
        ]
    );
    assert_eq!(csv.len() - 1, table.len());
    let ttl_origin = dump(&ingested.db(), &[]);
    for (line, c) in csv[1..].iter().zip(&table) {
        assert_eq!(&line[..4], &c[..4], "CSV row in the table's order");
        let key = (c[0].clone(), c[1].clone(), c[2].clone());
        assert_eq!(line[6], ttl_origin[&key].0);
        assert_eq!(line[7].replace('+', ", "), ttl_origin[&key].1);
    }
    // The times, as RFC 3339, are the API's.
    let expected = dnsdb(&serve, &rrset_paths("*.com"), &[]);
    let from_csv: BTreeSet<Shown> = csv[1..]
        .iter()
        .map(|l| {
            let first = expected
                .iter()
                .find(|e| e.0 == l[0] && e.1 == l[1] && e.2 == l[2])
                .unwrap_or_else(|| panic!("{l:?} is not in the API's answer"));
            assert_eq!(format_rfc3339_text(&first.4), l[4]);
            assert_eq!(format_rfc3339_text(&first.5), l[5]);
            first.clone()
        })
        .collect();
    assert_eq!(from_csv, expected);

    let cof = b
        .client
        .execute_async(&fetch("export-cof"), vec![])
        .await
        .unwrap();
    let cof: Vec<Value> = cof
        .as_str()
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cof.len(), table.len());
    let api: BTreeSet<String> = {
        let mut all = BTreeSet::new();
        for path in rrset_paths("*.com") {
            for l in common::get(serve.addr(), &path, &[]).lines() {
                if let Some(o) = l.get("obj") {
                    let mut o = o.clone();
                    let m = o.as_object_mut().unwrap();
                    m.remove("bailiwick");
                    let rdata = m["rdata"][0].clone();
                    m.insert("rdata".into(), rdata);
                    all.insert(o.to_string());
                }
            }
        }
        all
    };
    let exported: BTreeSet<String> = cof.iter().map(|o| o.to_string()).collect();
    assert_eq!(exported, api, "COF lines are the API's objects");
    assert_eq!(
        cof.iter()
            .map(|o| o["count"].to_string())
            .collect::<Vec<_>>(),
        table.iter().map(|c| c[3].clone()).collect::<Vec<_>>(),
        "COF lines in the table's order"
    );
}

/// `2024-03-01 12:00:00` → `2024-03-01T12:00:00Z`.
fn format_rfc3339_text(utc: &str) -> String {
    utc.replacen(' ', "T", 1) + "Z"
}

#[tokio::test]
async fn negative_answers_and_new_domains() {
    let ingested = ingest();
    let serve = ServeProcess::start(&ingested.db(), &[]);
    let b = Browser::start(1400, 1000).await;

    b.open(&format!("{}/?q=*.com&tab=negative", base(&serve)))
        .await;
    let table = b.table("negatives").await;
    let api = common::get(serve.addr(), "/negative/*.com?limit=1000", &[]);
    let expected: BTreeSet<Vec<String>> = api
        .lines()
        .iter()
        .map(|n| {
            vec![
                n["rrname"].as_str().unwrap().to_string(),
                n["rrtype"].as_str().unwrap().to_string(),
                n["rcode"].as_str().unwrap().to_string(),
                n["count"].to_string(),
                format_utc(n["time_first"].as_u64().unwrap()),
                format_utc(n["time_last"].as_u64().unwrap()),
            ]
        })
        .collect();
    assert!(!expected.is_empty(), "no negative answers to test with");
    let got: BTreeSet<Vec<String>> = table.into_iter().collect();
    assert_eq!(got, expected);
    keep_screenshot(&b.screenshot().await, "negative.png");

    b.open(&format!("{}/?tab=nod&after=1970-01-01", base(&serve)))
        .await;
    let table = b.table("nods").await;
    let api = common::get(serve.addr(), "/nod?since=0&limit=1000", &[]);
    let expected: Vec<Vec<String>> = api
        .lines()
        .iter()
        .filter(|d| d.get("domain").is_some())
        .map(|d| {
            let warmup = if d["warmup"] == true {
                " (warm-up)"
            } else {
                ""
            };
            vec![
                d["domain"].as_str().unwrap().to_string(),
                format!("{}{warmup}", format_utc(d["first_seen"].as_u64().unwrap())),
                d["rrname"].as_str().unwrap_or("").to_string(),
                d["rrtype"].as_str().unwrap_or("").to_string(),
                d["seen_in"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    assert!(expected.len() > 5);
    let got: Vec<Vec<String>> = table
        .into_iter()
        .map(|mut c| {
            // The domain and first-name cells are links; compare their text.
            c.truncate(5);
            c
        })
        .collect();
    assert_eq!(got, expected, "newly observed domains in first-seen order");
}

#[tokio::test]
async fn keys_and_errors_in_plain_words() {
    let ingested = ingest();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "testkey\nanalyst:s3cret\n").unwrap();
    let serve = ServeProcess::start(&ingested.db(), &["--api-key-file", keys.to_str().unwrap()]);
    // Other clients get HTTP's challenge; the page's requests (marked as
    // a script's) a plain 401, or the browser would open its own dialog.
    let plain = common::get(serve.addr(), "/ui/search?q=google.com", &[]);
    assert_eq!(plain.status, 401);
    assert!(plain.header("www-authenticate").is_some());
    let script = common::get(
        serve.addr(),
        "/ui/search?q=google.com",
        &[("X-Requested-With", "XMLHttpRequest")],
    );
    assert_eq!(script.status, 401);
    assert!(
        script.header("www-authenticate").is_none(),
        "{:?}",
        script.headers
    );

    let b = Browser::start(1400, 1000).await;
    let link = format!("{}/?q=google.com", base(&serve));

    b.open(&link).await;
    assert!(b.shown("key-box").await, "the page asks for a key");
    assert_eq!(b.text("#key-why").await, "This sensor needs an API key.");
    assert!(!b.shown("error").await);
    assert!(!b.shown("records").await);
    keep_screenshot(&b.screenshot().await, "key.png");

    let use_key = async |key: &str| {
        // The page reloads with the key: forget the old page's state first.
        b.run("delete document.body.dataset.ready").await;
        let input = b.client.find(Locator::Id("key")).await.unwrap();
        input.clear().await.unwrap();
        input
            .send_keys(&format!("{key}{}", char::from(Key::Enter)))
            .await
            .unwrap();
        b.wait_ready().await;
    };
    use_key("wrong").await;
    assert!(
        b.text("#key-why")
            .await
            .starts_with("The sensor refused this key"),
        "{}",
        b.text("#key-why").await
    );
    use_key("analyst:s3cret").await;
    assert!(!b.shown("key-box").await, "{}", b.text("#key-why").await);
    assert!(!b.shown("error").await, "{}", b.text("#error").await);
    assert_eq!(
        shown(&b.table("records").await),
        dnsdb(
            &serve,
            &rrset_paths("google.com"),
            &[("X-API-Key", "testkey")]
        )
    );
    // The status strip reads with the same key.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while b.text("#st-records").await == "—" {
        assert!(std::time::Instant::now() < deadline, "no status");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(b.text("#st-records").await.starts_with('≈'));

    // Searches the API rejects are said, not a blank page.
    for (q, words) in [
        ("/(/", "The sensor cannot search for that: "),
        ("198.51.100.0/33", "The sensor cannot search for that: "),
        ("www..example.com", "The sensor cannot search for that: "),
    ] {
        b.open(&format!(
            "{}/?q={}",
            base(&serve),
            percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
        ))
        .await;
        let error = b.text("#error").await;
        assert!(
            error.starts_with(words) && error.len() > words.len(),
            "{q}: {error}"
        );
        assert!(!b.shown("records").await);
    }
    keep_screenshot(&b.screenshot().await, "error.png");
    let _ = b.driver_log();
}

#[tokio::test]
async fn narrow_windows_and_the_keyboard() {
    let ingested = ingest();
    let serve = ServeProcess::start(&ingested.db(), &[]);
    let b = Browser::start(420, 900).await;
    b.open(&format!("{}/?q=google.com", base(&serve))).await;
    // One column: rows become labelled cards, nothing wider than the window.
    assert_eq!(
        b.run("return getComputedStyle(document.querySelector('#records td')).display")
            .await,
        "flex"
    );
    let overflow = b
        .run("return document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "wider than the window by {overflow}"
    );
    keep_screenshot(&b.screenshot().await, "narrow.png");

    // `/` comes back to the box; Tab reaches the sort buttons and Enter sorts.
    b.run("document.activeElement.blur()").await;
    b.client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("/")
        .await
        .unwrap();
    assert_eq!(b.run("return document.activeElement.id").await, "q");
    b.client.set_window_size(1400, 1000).await.unwrap();
    let sort = b
        .client
        .find(Locator::Css("th[data-key='rrtype'] button"))
        .await
        .unwrap();
    sort.send_keys(&char::from(Key::Enter).to_string())
        .await
        .unwrap();
    let types: Vec<String> = b
        .table("records")
        .await
        .into_iter()
        .map(|c| c[1].clone())
        .collect();
    let mut sorted = types.clone();
    sorted.sort();
    assert_eq!(types, sorted);
}

#[tokio::test]
async fn hostile_names_stay_text() {
    // A dns.log whose names and text hold markup (what a hostile zone can
    // put on the wire), imported as Zeek logs are.
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("dns.json.log");
    let script = "<script>window.pwned=2</script>";
    let lines = [
        r#"{"ts":1774911650.5,"query":"<img src=x onerror=window.pwned=1>.hostile.example","qtype":1,"qtype_name":"A","rcode":0,"answers":["192.0.2.66"],"TTLs":[30.0],"rejected":false}"#
            .to_string(),
        format!(
            r#"{{"ts":1774911651.0,"query":"txt.hostile.example","qtype":16,"rcode":0,"answers":["TXT {} {script}"],"TTLs":[5.0],"rejected":false}}"#,
            script.len()
        ),
    ];
    std::fs::write(&log, lines.join("\n") + "\n").unwrap();
    let db = dir.path().join("db");
    let out = Command::new(common::process::SENSOR)
        .args(["import-zeek", "--quiet", "--db"])
        .arg(&db)
        .arg(&log)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let serve = ServeProcess::start(&db, &[]);
    let b = Browser::start(1400, 1000).await;
    b.open(&format!("{}/?q=*.hostile.example", base(&serve)))
        .await;
    let table = b.table("records").await;
    assert_eq!(table.len(), 2, "{table:?}");
    assert!(
        table.iter().any(|c| c[2] == format!("\"{script}\"")),
        "the TXT shows as text: {table:?}"
    );
    assert!(
        table.iter().any(|c| c[0].starts_with("<img\\032src=x")),
        "the name shows as text: {table:?}"
    );
    let verdict = b
        .run(
            "return [typeof window.pwned, \
             document.querySelectorAll('#records img, #records script').length, \
             document.querySelectorAll('#records svg').length]",
        )
        .await;
    assert_eq!(verdict, serde_json::json!(["undefined", 0, 2]));
}
