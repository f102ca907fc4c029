//! SIGTERM under load loses nothing: every response that reached the ring
//! before the signal is in the store afterwards.
//!
//! The flush interval is set far beyond the test, so every observation
//! still sits in the workers' pre-aggregation maps when SIGTERM arrives,
//! and the ring's retire timeout is 1 s, so the last frames still sit in a
//! block the kernel has not handed over yet. Only the shutdown path — stop
//! the filter, drain the rings until the kernel retires that block, flush
//! every worker, flush and close the database — gets them into the store.
//! (Without the drain, the first test fails.)

mod live_support;

use live_support::*;

#[test]
fn sigterm_right_after_the_last_packet_loses_nothing() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("term", false);
    let pairs = 100_000;
    let (file, expected) = link.traffic_file(dir.path(), pairs, 5_000);

    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "2",
            "--flush-interval",
            "3600",
            "--ring-timeout-ms",
            "1000",
        ],
    );
    link.replay(&file, 1);
    let stopped = sensor.stop();
    let s = &stopped.stats;
    assert_eq!(num(&s["interfaces"][link.if_b], &["drops"]), 0, "{s:#}");
    assert_eq!(num(s, &["dns_responses"]), pairs as u64, "{s:#}");
    let stored = counts(&dump(&stopped.db));
    assert_eq!(stored.len(), expected.len());
    for (name, n) in &expected {
        let k: usize = name[1..].split('.').next().unwrap().parse().unwrap();
        let key = (
            name.clone(),
            "A".to_string(),
            format!("192.0.2.{}", k % 250 + 1),
        );
        assert_eq!(stored.get(&key), Some(n), "{name}");
    }
    assert_eq!(stored.values().sum::<u64>(), pairs as u64);
}

#[test]
fn sigterm_during_replay_stores_everything_decoded() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("term2", false);
    let (file, expected) = link.traffic_file(dir.path(), 50_000, 1_000);

    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "2",
            "--flush-interval",
            "3600",
        ],
    );
    // Replay in the background (bounded: 20 loops, about 3 s), signal
    // the sensor in the middle of it.
    let mut replay = Proc::new(
        link.a
            .cmd("tcpreplay")
            .args([
                "-q",
                "-K",
                "--topspeed",
                "-l",
                "20",
                "-i",
                link.if_a,
                file.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
        "tcpreplay",
    );
    std::thread::sleep(std::time::Duration::from_millis(700));
    assert!(
        replay.wait_timeout(std::time::Duration::ZERO).is_none(),
        "replay ended too early"
    );
    let stopped = sensor.stop();
    replay
        .wait_timeout(std::time::Duration::from_secs(60))
        .expect("tcpreplay finished");
    let s = &stopped.stats;
    let responses = num(s, &["dns_responses"]);
    assert!(responses > 10_000, "{s:#}");
    assert_eq!(num(&s["interfaces"][link.if_b], &["drops"]), 0, "{s:#}");
    // Every response decoded before the stop is stored, none twice.
    let stored = counts(&dump(&stopped.db));
    assert_eq!(stored.values().sum::<u64>(), responses, "{s:#}");
    let most: std::collections::BTreeMap<_, _> = expected.into_iter().collect();
    for ((name, _, _), n) in &stored {
        assert!(*n <= most[name] * 20, "{name}");
    }
}
