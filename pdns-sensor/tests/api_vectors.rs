//! Conformance vectors for the three query APIs (C: CIRCL, D: DNSDB,
//! B: bro-pdns), each as an HTTP-level test against a server over the
//! fixture store F1–F6 built by `fixture`.

mod common;

use std::sync::Arc;

use serde_json::{Value, json};

use pdns_sensor::serve::ServeConfig;
use pdns_sensor::serve::auth::ApiKeys;
use pdns_sensor::store::Store;
use pdns_sensor::vocab::Rtype;
use pdns_sensor::vocab::batch::Batch;
use pdns_sensor::vocab::key;
use pdns_sensor::vocab::name;
use pdns_sensor::vocab::value::{Origin, Value as Rec};

const KEY: (&str, &str) = ("X-API-Key", "testkey");
const NDJSON: (&str, &str) = ("Accept", "application/x-ndjson");
const BASIC: (&str, &str) = ("Authorization", "Basic dXNlcjpwYXNz"); // user:pass

/// The fixture store: records F1–F6.
fn fixture() -> (tempfile::TempDir, Arc<Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    let mut agg = Batch::default();
    let mut add = |owner: &str, rtype: u16, rdata: &[u8], count, first, last| {
        let mut key = Vec::new();
        key::record_key(
            &mut key,
            &name::encode_presentation(owner).unwrap(),
            Rtype::from_int(rtype),
            rdata,
        );
        agg.records.insert(
            &key,
            Rec {
                count,
                first,
                last,
                ttl: 300,
                origin: Origin::WIRE,
            },
        );
    };
    add(
        "www.example.com",
        1,
        &[198, 51, 100, 3],
        12,
        1700000000,
        1700086400,
    );
    add(
        "www.example.com",
        1,
        &[198, 51, 100, 4],
        3,
        1700003600,
        1700007200,
    );
    add(
        "www.example.com",
        28,
        &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        5,
        1700000000,
        1700090000,
    );
    add(
        "example.com",
        15,
        b"\x00\x0a\x04mail\x07example\x03com\x00",
        7,
        1700100000,
        1700200000,
    );
    add(
        "alias.example.net",
        5,
        b"\x03www\x07example\x03com\x00",
        2,
        1700100000,
        1700100000,
    );
    add(
        "example.com",
        16,
        b"\x0bv=spf1 -all",
        4,
        1700100000,
        1700200000,
    );
    store.write(&agg).unwrap();
    (dir, Arc::new(store))
}

fn server() -> (tempfile::TempDir, common::Server) {
    let (dir, store) = fixture();
    let config = ServeConfig {
        keys: Some(ApiKeys::parse("testkey\nuser:pass\n").unwrap()),
        origin: "https://pdns.example.org".into(),
        sensor_id: Some("sensor-1".into()),
        ..ServeConfig::default()
    };
    (dir, common::serve(store, config))
}

fn f1_dnsdb(bailiwick: bool) -> Value {
    let mut v = json!({"count":12,"time_first":1700000000,"time_last":1700086400,"rrname":"www.example.com.","rrtype":"A","rdata":["198.51.100.3"]});
    if bailiwick {
        v["bailiwick"] = json!("example.com.");
    }
    v
}

fn objs(r: &common::Response) -> Vec<Value> {
    let lines = r.lines();
    assert_eq!(lines.first(), Some(&json!({"cond":"begin"})), "{}", r.body);
    let last = lines.last().unwrap();
    assert!(last.get("cond").is_some(), "no terminator: {}", r.body);
    lines[1..lines.len() - 1]
        .iter()
        .map(|l| l["obj"].clone())
        .collect()
}

fn cond(r: &common::Response) -> Value {
    r.lines().last().unwrap()["cond"].clone()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

fn names(v: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = v
        .iter()
        .map(|o| format!("{} {} {}", o["rrname"], o["rrtype"], o["rdata"]))
        .collect();
    n.sort();
    n
}

#[test]
fn c1_forward_lookup_no_headers() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[BASIC, ("User-Agent", "PyPDNS / 2.3.1")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    assert!(r.body.ends_with('\n'));
    let o = "https://pdns.example.org";
    let expected = vec![
        json!({"rrname":"www.example.com","rrtype":"A","rdata":"198.51.100.3","count":12,"time_first":1700000000,"time_last":1700086400,"origin":o,"sensor_id":"sensor-1"}),
        json!({"rrname":"www.example.com","rrtype":"A","rdata":"198.51.100.4","count":3,"time_first":1700003600,"time_last":1700007200,"origin":o,"sensor_id":"sensor-1"}),
        json!({"rrname":"www.example.com","rrtype":"AAAA","rdata":"2001:db8::1","count":5,"time_first":1700000000,"time_last":1700090000,"origin":o,"sensor_id":"sensor-1"}),
        json!({"rrname":"alias.example.net","rrtype":"CNAME","rdata":"www.example.com","count":2,"time_first":1700100000,"time_last":1700100000,"origin":o,"sensor_id":"sensor-1"}),
    ];
    assert_eq!(sorted(r.lines()), sorted(expected));
}

#[test]
fn c2_ip_lookup_is_inverse() {
    let (_d, s) = server();
    let r = common::get(s.addr, "/pdns/query/198.51.100.3", &[BASIC]);
    assert_eq!(r.status, 200);
    let lines = r.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["rrname"], "www.example.com");
    assert_eq!(lines[0]["rdata"], "198.51.100.3");
    assert_eq!(lines[0]["count"], 12);
}

#[test]
fn c3_rrtype_filter() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[BASIC, ("dribble-filter-rrtype", "AAAA")],
    );
    let lines = r.lines();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["rdata"], "2001:db8::1");
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[BASIC, ("dribble-filter-rrtype", "BOGUS")],
    );
    assert_eq!((r.status, r.body.as_str()), (200, ""));
}

#[test]
fn c4_pagination() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[BASIC, ("dribble-paginate-count", "2")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.lines().len(), 2);
    let cursor = r
        .header("x-dribble-cursor")
        .expect("a cursor for the next page")
        .to_string();
    assert!(cursor.parse::<u64>().unwrap() > 0);
    let r2 = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[
            BASIC,
            ("dribble-paginate-count", "2"),
            ("dribble-paginate-cursor", &cursor),
        ],
    );
    assert_eq!(r2.lines().len(), 2);
    assert!(r2.header("x-dribble-cursor").is_none());
    let mut all: Vec<Value> = r.lines();
    all.extend(r2.lines());
    assert_eq!(names(&all).len(), 4);
    let full = common::get(s.addr, "/pdns/query/www.example.com", &[BASIC]);
    assert_eq!(sorted(all), sorted(full.lines()));
}

#[test]
fn c5_truncation_signal() {
    let (_d, store) = fixture();
    let config = ServeConfig {
        default_limit: 2,
        ..ServeConfig::default()
    };
    let s = common::serve(store, config);
    let r = common::get(s.addr, "/pdns/query/www.example.com", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.lines().len(), 2);
    let errors: Value =
        serde_json::from_str(r.header("x-dribble-errors").expect("x-dribble-errors")).unwrap();
    assert_eq!(
        errors,
        json!({"error":"maxset","record":"www.example.com","value":2})
    );
}

#[test]
fn c6_auth() {
    let (_d, s) = server();
    let r = common::get(s.addr, "/pdns/query/www.example.com", &[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Basic realm=\"pdns\""));
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[("Authorization", "Basic dXNlcjp3cm9uZw==")],
    );
    assert_eq!(r.status, 403);
    // A bare token (PyPDNS auth_token) is accepted too.
    let r = common::get(
        s.addr,
        "/pdns/query/www.example.com",
        &[("Authorization", "testkey")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn c7_not_found_and_c8_active_query_header() {
    let (_d, s) = server();
    let r = common::get(s.addr, "/pdns/query/nothing.invalid", &[BASIC]);
    assert_eq!((r.status, r.body.as_str()), (200, ""));
    let r = common::get(
        s.addr,
        "/pdns/query/198.51.100.3",
        &[BASIC, ("dribble-disable-active-query", "1")],
    );
    assert_eq!(r.lines().len(), 1);
}

#[test]
fn d1_rrset_typed() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/dnsdb/v2/lookup/rrset/name/www.example.com/A?swclient=dnsdb2python&version=1.1.5&limit=10",
        &[NDJSON, KEY],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let mut f2 = f1_dnsdb(true);
    f2["count"] = json!(3);
    f2["time_first"] = json!(1700003600);
    f2["time_last"] = json!(1700007200);
    f2["rdata"] = json!(["198.51.100.4"]);
    assert_eq!(objs(&r), vec![f1_dnsdb(true), f2]);
    assert_eq!(cond(&r), "succeeded");
}

#[test]
fn d2_limited_humantime() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/dnsdb/v2/lookup/rrset/name/www.example.com?swclient=dnsdb2python&version=1.1.5&limit=1&offset=0&humantime=True",
        &[NDJSON, KEY],
    );
    let o = objs(&r);
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["time_first"], "2023-11-14T22:13:20Z");
    assert_eq!(o[0]["time_last"], "2023-11-15T22:13:20Z");
    assert_eq!(o[0]["rdata"], json!(["198.51.100.3"]));
    assert_eq!(cond(&r), "limited");
    assert!(r.lines().last().unwrap()["msg"].is_string());
}

#[test]
fn d3_rdata_ip() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/dnsdb/v2/lookup/rdata/ip/198.51.100.0,24",
        &[NDJSON, KEY],
    );
    let o = objs(&r);
    assert_eq!(o.len(), 2);
    assert_eq!(o[0], f1_dnsdb(false));
    assert!(o.iter().all(|x| x.get("bailiwick").is_none()));
    for path in [
        "/dnsdb/v2/lookup/rdata/ip/2001:db8::1",
        "/dnsdb/v2/lookup/rdata/ip/2001%3Adb8%3A%3A1",
    ] {
        let o = objs(&common::get(s.addr, path, &[NDJSON, KEY]));
        assert_eq!(o.len(), 1, "{path}");
        assert_eq!(o[0]["rdata"], json!(["2001:db8::1"]));
        assert!(o[0].get("bailiwick").is_none());
    }
    assert_eq!(
        common::get(
            s.addr,
            "/dnsdb/v2/lookup/rdata/ip/198.51.100.3/MX",
            &[NDJSON, KEY]
        )
        .status,
        400
    );
    let o = objs(&common::get(
        s.addr,
        "/dnsdb/v2/lookup/rdata/ip/198.51.100.1-198.51.100.3",
        &[NDJSON, KEY],
    ));
    assert_eq!(o, vec![f1_dnsdb(false)]);
}

#[test]
fn d4_rdata_name() {
    let (_d, s) = server();
    let o = objs(&common::get(
        s.addr,
        "/dnsdb/v2/lookup/rdata/name/www.example.com/CNAME",
        &[NDJSON, KEY],
    ));
    assert_eq!(
        o,
        vec![
            json!({"count":2,"time_first":1700100000,"time_last":1700100000,"rrname":"alias.example.net.","rrtype":"CNAME","rdata":["www.example.com."]})
        ]
    );
    let o = objs(&common::get(
        s.addr,
        "/dnsdb/v2/lookup/rdata/name/mail.example.com",
        &[NDJSON, KEY],
    ));
    assert_eq!(o.len(), 1);
    assert_eq!(o[0]["rdata"], json!(["10 mail.example.com."]));
}

#[test]
fn d5_wildcards_trailing_slash_encoding() {
    let (_d, s) = server();
    let get = |p: &str| names(&objs(&common::get(s.addr, p, &[NDJSON, KEY])));
    let apex_and_below = get("/dnsdb/v2/lookup/rrset/name/%2A.example.com");
    assert_eq!(apex_and_below.len(), 5, "{apex_and_below:?}"); // F1,F2,F3,F4,F6
    assert_eq!(
        get("/dnsdb/v2/lookup/rrset/name/*.example.com/ANY/example.com"),
        apex_and_below
    );
    let www = get("/dnsdb/v2/lookup/rrset/name/www.example.*");
    assert_eq!(www.len(), 3, "{www:?}"); // F1,F2,F3
    assert_eq!(get("/dnsdb/v2/lookup/rrset/name/%2B.example.com"), www);
    assert_eq!(get("/dnsdb/v2/lookup/rrset/name/www.example.com/"), www);
    assert_eq!(get("/dnsdb/v2/lookup/rrset/name/www.example.com."), www);
}

#[test]
fn d6_empty_auth_unknown_offset() {
    let (_d, s) = server();
    let r = common::get(
        s.addr,
        "/dnsdb/v2/lookup/rrset/name/nothing.invalid",
        &[NDJSON, KEY],
    );
    assert_eq!(
        (r.status, r.body.as_str()),
        (200, "{\"cond\":\"begin\"}\n{\"cond\":\"succeeded\"}\n")
    );
    assert_eq!(
        common::get(
            s.addr,
            "/dnsdb/v2/lookup/rrset/name/www.example.com",
            &[NDJSON]
        )
        .status,
        403
    );
    assert_eq!(
        common::get(s.addr, "/dnsdb/v2/lookup/bogus/x", &[NDJSON, KEY]).status,
        404
    );
    assert_eq!(
        common::get(
            s.addr,
            "/dnsdb/v2/lookup/rrset/name/www.example.com?offset=99999999",
            &[NDJSON, KEY]
        )
        .status,
        416
    );
    assert_eq!(
        common::get(
            s.addr,
            "/dnsdb/v2/lookup/rrset/name/www.example.com",
            &[("Accept", "text/html"), KEY]
        )
        .status,
        415
    );
}

#[test]
fn d7_summarize() {
    let (_d, s) = server();
    let o = objs(&common::get(
        s.addr,
        "/dnsdb/v2/summarize/rrset/name/www.example.com",
        &[NDJSON, KEY],
    ));
    assert_eq!(
        o,
        vec![json!({"count":20,"num_results":3,"time_first":1700000000,"time_last":1700090000})]
    );
}

#[test]
fn d8_rate_limit_and_ping() {
    let (_d, s) = server();
    let r = common::get(s.addr, "/dnsdb/v2/rate_limit", &[NDJSON, KEY]);
    assert_eq!(
        r.lines(),
        vec![
            json!({"rate":{"reset":"n/a","limit":"unlimited","remaining":"n/a","results_max":1000000,"offset_max":3000000}})
        ]
    );
    assert_eq!(
        common::get(s.addr, "/dnsdb/v2/ping", &[NDJSON, KEY]).lines(),
        vec![json!({"ping":"ok"})]
    );
}

#[test]
fn d9_v1_aliases() {
    let (_d, s) = server();
    let json_accept = ("Accept", "application/json");
    let r = common::get(
        s.addr,
        "/lookup/rrset/name/www.example.com/A",
        &[json_accept, KEY],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.lines()[0], f1_dnsdb(true));
    let r = common::get(s.addr, "/lookup/rdata/ip/198.51.100.3", &[json_accept, KEY]);
    let mut f1 = f1_dnsdb(false);
    f1["rdata"] = json!("198.51.100.3");
    assert_eq!(r.lines(), vec![f1]);
    assert_eq!(
        common::get(
            s.addr,
            "/lookup/rrset/name/nothing.invalid",
            &[json_accept, KEY]
        )
        .status,
        404
    );
}

#[test]
fn d10_every_stream_ends_with_a_terminator() {
    // A query that runs out of time must still end with a terminator.
    let (_d, store) = fixture();
    let config = ServeConfig {
        query_timeout: std::time::Duration::from_nanos(1),
        ..ServeConfig::default()
    };
    let s = common::serve(store, config);
    let r = common::get(
        s.addr,
        "/dnsdb/v2/lookup/rrset/name/*.example.com",
        &[NDJSON],
    );
    assert!(
        r.lines().last().unwrap().get("cond").is_some(),
        "{}",
        r.body
    );
}

#[test]
fn flex_globs_are_anchored_and_answer_flex_objects() {
    let (_d, s) = server();
    // As at DNSDB, a glob matches the whole name, trailing dot included:
    // without the dot nothing matches.
    let r = common::get(
        s.addr,
        "/dnsdb/v2/glob/rrnames/*.example.com/A",
        &[NDJSON, KEY],
    );
    assert_eq!((r.status, objs(&r).len()), (200, 0));
    assert_eq!(cond(&r), "succeeded");
    let r = common::get(
        s.addr,
        "/dnsdb/v2/glob/rrnames/*.example.com./A",
        &[NDJSON, KEY],
    );
    assert_eq!(r.status, 200);
    let found = objs(&r);
    assert!(
        found.contains(&json!({"rrname":"www.example.com.","rrtype":"A","count":15,"time_first":1700000000,"time_last":1700086400})),
        "{}",
        r.body
    );
    assert_eq!(cond(&r), "succeeded");
}

#[test]
fn flex_scans_end_limited_at_the_query_timeout() {
    let (_d, store) = fixture();
    // More names than one search block and more records than one clock
    // check, so the scan has somewhere to stop.
    let mut batch = Batch::default();
    for i in 0..5000u32 {
        let mut k = Vec::new();
        key::record_key(
            &mut k,
            &name::encode_presentation(&format!("host-{i}.example.org")).unwrap(),
            Rtype::A,
            &i.to_be_bytes(),
        );
        batch
            .records
            .insert(&k, Rec::seen(1700000000, 60, Origin::WIRE));
    }
    store.write(&batch).unwrap();
    let config = ServeConfig {
        query_timeout: std::time::Duration::from_nanos(1),
        ..ServeConfig::default()
    };
    let s = common::serve(store, config);
    for path in [
        "/dnsdb/v2/regex/rrnames/nomatch",
        "/dnsdb/v2/regex/rdata/nomatch",
    ] {
        let r = common::get(s.addr, path, &[NDJSON]);
        assert_eq!(
            r.lines().last().unwrap(),
            &json!({"cond": "limited", "msg": "Query time limit reached"}),
            "{path}: {}",
            r.body
        );
    }
}

#[test]
fn b_vectors_bro_pdns() {
    let (_d, s) = server();
    let r = common::get(s.addr, "/dns/www.example.com", &[KEY]);
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let records = v["records"].as_array().unwrap();
    assert_eq!(records.len(), 4); // three owned, one CNAME pointing at it
    let f1 = records
        .iter()
        .find(|x| x["answer"] == "198.51.100.3")
        .unwrap();
    assert_eq!(
        f1,
        &json!({"query":"www.example.com","type":"A","answer":"198.51.100.3","count":12,"ttl":300,"first":"2023-11-14 22:13:20","last":"2023-11-15 22:13:20"})
    );
    let r = common::get(s.addr, "/dns/nothing.invalid", &[KEY]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!({"records": []})
    );
    let r = common::get(s.addr, "/dns/find/tuples/198.51.100.3", &[KEY]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!([{"Query":"www.example.com","Type":"A","Answer":"198.51.100.3","Count":12,"TTL":300,"First":"2023-11-14 22:13:20","Last":"2023-11-15 22:13:20"}])
    );
    let r = common::get(s.addr, "/dns/find/individual/alias.example.net", &[KEY]);
    assert_eq!(
        serde_json::from_str::<Value>(&r.body).unwrap(),
        json!([{"Value":"alias.example.net","Which":"Q","Count":2,"First":"2023-11-16 02:00:00","Last":"2023-11-16 02:00:00"}])
    );
    let like: Value =
        serde_json::from_str(&common::get(s.addr, "/dns/like/tuples/example.com", &[KEY]).body)
            .unwrap();
    assert_eq!(like.as_array().unwrap().len(), 6);
    let xyz = common::get(s.addr, "/dns/xyz/tuples/198.51.100.3", &[KEY]);
    assert_eq!(xyz.body, r#"[{"Answer":"198.51.100.3","Count":12,"First":"2023-11-14 22:13:20","Last":"2023-11-15 22:13:20","Query":"www.example.com","TTL":300,"Type":"A"}]"#.to_string() + "\n");
    assert_eq!(
        common::get(s.addr, "/dns/find/tuples/nothing.invalid", &[KEY]).body,
        "[]\n"
    );
}

#[test]
fn bad_requests_get_4xx_never_500() {
    let (_d, s) = server();
    for path in [
        "/dnsdb/v2/lookup/rrset/name/a..b",
        "/dnsdb/v2/lookup/rrset/name/www.example.com/NOTATYPE",
        "/dnsdb/v2/lookup/rdata/ip/10.0.0.0,33",
        "/dnsdb/v2/lookup/rdata/ip/banana",
        "/dnsdb/v2/lookup/rrset/name/www.example.com?time_first_after=yesterday",
        "/dnsdb/v2/lookup/rrset/name/www.example.com?limit=-1",
        "/dnsdb/v2/lookup/rrset/name/www.example.com?humantime=maybe",
        "/dnsdb/v2/lookup/rrset/name/www.example.com/A/example.com/extra",
        "/dnsdb/v2/lookup/rdata/raw/00",
        "/dnsdb/v2/lookup/rrset/raw/zz",
        "/dnsdb/v2/lookup/rrset/name/%FF%FE",
        "/pdns/query/a..b",
        "/negative/a..b",
        "/negative/example.com?rcode=NOPE",
    ] {
        let r = common::get(s.addr, path, &[NDJSON, KEY, BASIC]);
        assert!(
            (400..500).contains(&r.status),
            "{path}: {} {}",
            r.status,
            r.body
        );
        assert!(
            serde_json::from_str::<Value>(r.body.trim()).is_ok() || r.body.is_empty(),
            "{path}: {}",
            r.body
        );
    }
    assert_eq!(common::get(s.addr, "/nope", &[]).status, 404);
}

#[test]
fn time_fences_absolute_and_relative() {
    let (_d, s) = server();
    let get = |q: &str| {
        objs(&common::get(
            s.addr,
            &format!("/dnsdb/v2/lookup/rrset/name/*.example.com?{q}"),
            &[NDJSON, KEY],
        ))
        .len()
    };
    assert_eq!(get("time_first_after=1700100000"), 2); // F4, F6
    assert_eq!(get("time_last_before=1700007200"), 1); // F2
    assert_eq!(
        get("time_first_before=1700000000&time_last_after=1700090000"),
        1
    ); // F3
    assert_eq!(get("time_last_after=-3600"), 0); // nothing in the last hour
    assert_eq!(get("time_last_after=-2000000000"), 5);
}
