//! HTTP latency with `wrk`, the load generator the query figures come from.
//!
//! One thread and one connection (`-t1 -c1`): the latency of a query, not of
//! a queue of them. A Lua script rotates over the requests — GET paths, or
//! POST bodies to one path (a GraphQL endpoint) — so a run measures many
//! different lookups, not one cached answer. `wrk --latency` prints the
//! percentiles this module parses.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Latency percentiles in milliseconds and requests/s, from `wrk --latency`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WrkResult {
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub rps: Option<f64>,
    /// Non-2xx/3xx responses plus socket errors (connect, read, write,
    /// timeout).
    pub errors: u64,
}

/// A wrk duration (`312.00us`, `1.20ms`, `2.50s`) in milliseconds.
pub fn millis(text: &str) -> Option<f64> {
    let t = text.trim();
    let (num, factor) = if let Some(v) = t.strip_suffix("us") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('m') {
        (v, 60_000.0)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1000.0)
    } else {
        (t, 1.0)
    };
    num.parse::<f64>().ok().map(|v| v * factor)
}

/// Parses the output of `wrk --latency`.
pub fn parse_wrk(out: &str) -> WrkResult {
    let mut r = WrkResult::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["50%", v] => r.p50 = millis(v),
            ["90%", v] => r.p90 = millis(v),
            ["99%", v] => r.p99 = millis(v),
            ["Requests/sec:", v] => r.rps = v.parse().ok(),
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>().unwrap_or(0),
            // "Socket errors: connect 0, read 0, write 0, timeout 0"
            ["Socket", "errors:", rest @ ..] => {
                for pair in rest.chunks(2) {
                    if let [_, n] = pair {
                        r.errors += n.trim_end_matches(',').parse::<u64>().unwrap_or(0);
                    }
                }
            }
            _ => {}
        }
    }
    r
}

/// A Lua string literal holding `s` byte for byte.
pub fn lua_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn lua_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| lua_string(s))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// A wrk script sending `GET` for each of `paths` in turn.
pub fn get_script(paths: &[String]) -> String {
    format!(
        "paths = {{{}}}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(\"GET\", paths[(counter % #paths) + 1])\nend\n",
        lua_list(paths)
    )
}

/// A wrk script sending `POST path` with each of `bodies` in turn, with
/// the given request headers (e.g. `Content-Type: application/json`).
pub fn post_script(path: &str, headers: &[(&str, &str)], bodies: &[String]) -> String {
    let headers: Vec<String> = headers
        .iter()
        .map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_string(v)))
        .collect();
    format!(
        "bodies = {{{}}}\nheaders = {{{}}}\ncounter = 0\nrequest = function()\n  counter = counter + 1\n  return wrk.format(\"POST\", {}, headers, bodies[(counter % #bodies) + 1])\nend\n",
        lua_list(bodies),
        headers.join(", "),
        lua_string(path)
    )
}

/// Runs `wrk -t1 -c1 -dSECS --latency -s SCRIPT http://127.0.0.1:PORT`;
/// inside network namespace `netns` (via `ip netns exec`) when given.
pub fn run_script(
    script: &str,
    port: u16,
    secs: u64,
    dir: &Path,
    netns: Option<&str>,
) -> Result<WrkResult> {
    let file = dir.join("wrk-requests.lua");
    std::fs::write(&file, script).with_context(|| format!("writing {}", file.display()))?;
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "wrk"]);
            c
        }
        None => Command::new("wrk"),
    };
    let out = cmd
        // One connection: latency of a query, not of a queue of them.
        // wrk's default 2 s timeout would drop slow queries (a Flex scan
        // of a large store) from the figures instead of measuring them.
        .args(["-t1", "-c1", &format!("-d{secs}s"), "--timeout", "60s"])
        .args(["--latency", "-s"])
        .arg(&file)
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .context("running wrk (installed by `cargo xtask setup`)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let r = parse_wrk(&String::from_utf8_lossy(&out.stdout));
    if r.p50.is_none() || r.rps.is_none() {
        bail!(
            "wrk printed no latency figures: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(r)
}

/// GET each of `paths` in turn for `secs` seconds against 127.0.0.1:`port`.
pub fn wrk(port: u16, paths: &[String], secs: u64, dir: &Path) -> Result<WrkResult> {
    run_script(&get_script(paths), port, secs, dir, None)
}

/// POST each of `bodies` in turn to `path` (with `Content-Type:
/// content_type`) for `secs` seconds against 127.0.0.1:`port`, inside
/// network namespace `netns` when given.
pub fn wrk_post(
    port: u16,
    path: &str,
    content_type: &str,
    bodies: &[String],
    secs: u64,
    dir: &Path,
    netns: Option<&str>,
) -> Result<WrkResult> {
    let script = post_script(path, &[("Content-Type", content_type)], bodies);
    run_script(&script, port, secs, dir, netns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_parses() {
        let text = "  Latency Distribution\n     50%  312.00us\n     75%  400.00us\n     90%    1.20ms\n     99%    2.50s\nRequests/sec:  12345.67\n  Non-2xx or 3xx responses: 3\n";
        let r = parse_wrk(text);
        assert_eq!(r.p50, Some(0.312));
        assert_eq!(r.p90, Some(1.2));
        assert_eq!(r.p99, Some(2500.0));
        assert_eq!(r.rps, Some(12345.67));
        assert_eq!(r.errors, 3);
    }

    #[test]
    fn socket_errors_count() {
        let r = parse_wrk("  Socket errors: connect 1, read 2, write 0, timeout 4\n");
        assert_eq!(r.errors, 7);
    }

    #[test]
    fn lua_strings_escape() {
        assert_eq!(lua_string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(lua_string("x\ny"), r#""x\010y""#);
        let s = post_script(
            "/query",
            &[("Content-Type", "application/json")],
            &[r#"{"query":"{ entries(rrname: \"a.b\") { count } }"}"#.to_string()],
        );
        assert!(s.contains(r#"["Content-Type"] = "application/json""#));
        assert!(s.contains(r#""{\"query\":\"{ entries(rrname: \\\"a.b\\\") { count } }\"}""#));
        assert!(s.contains("wrk.format(\"POST\", \"/query\", headers, bodies["));
    }

    /// The POST script really sends the bodies it holds, with its header:
    /// a one-shot HTTP server records what wrk sent.
    #[test]
    fn post_script_sends_bodies() {
        if Command::new("wrk").arg("--version").output().is_err() {
            panic!("wrk not on PATH (cargo xtask setup installs it)");
        }
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // wrk probes with an empty connection first: serve connections
        // one after another until two requests came.
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            while seen.len() < 2 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut w = stream;
                'requests: while seen.len() < 2 {
                    let mut head = Vec::new();
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            break 'requests;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap();
                        }
                        head.push(line);
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    seen.push((head, String::from_utf8(body).unwrap()));
                    w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .unwrap();
                }
            }
            seen
        });
        let dir = tempfile::tempdir().unwrap();
        let bodies = vec!["{\"a\":1}".to_string(), "{\"b\":\"x\\\"y\"}".to_string()];
        // wrk errors out once the server closes; what was sent is the point.
        let _ = wrk_post(
            port,
            "/query",
            "application/json",
            &bodies,
            1,
            dir.path(),
            None,
        );
        let seen = server.join().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        let mut got: Vec<&str> = seen.iter().map(|(_, b)| b.as_str()).collect();
        got.sort();
        assert_eq!(got, ["{\"a\":1}", "{\"b\":\"x\\\"y\"}"]);
        for (head, _) in &seen {
            assert!(head[0].starts_with("POST /query HTTP/1.1"), "{head:?}");
            assert!(
                head.iter()
                    .any(|h| h.eq_ignore_ascii_case("content-type: application/json\r\n")),
                "{head:?}"
            );
        }
    }
}
