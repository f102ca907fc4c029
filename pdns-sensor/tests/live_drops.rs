//! Kernel drops are visible, never silent: a deliberately tiny ring under
//! `tcpreplay --topspeed` reports non-zero drops in the run's statistics
//! and its summary.

mod live_support;

use live_support::*;

#[test]
fn tiny_ring_reports_drops() {
    require(&["ip", "tcpreplay"]);
    let dir = tempfile::tempdir().unwrap();
    let link = Link::new("drop", false);
    let (file, _) = link.traffic_file(dir.path(), 50_000, 1_000);

    // Two 4 KiB blocks: about 30 frames of room.
    let sensor = Sensor::start(
        &link.b,
        &[
            "-i",
            link.if_b,
            "--threads",
            "1",
            "--ring-block-size",
            "4096",
            "--ring-blocks",
            "2",
        ],
    );
    link.replay(&file, 3);
    let stopped = sensor.stop();
    let s = &stopped.stats;
    let iface = &s["interfaces"][link.if_b];
    let (packets, drops, frames) = (
        num(iface, &["packets"]),
        num(iface, &["drops"]),
        num(iface, &["frames"]),
    );
    assert!(drops > 0, "no drops reported: {s:#}");
    // The kernel's packet count includes its drops; what was not dropped
    // was read.
    assert_eq!(packets, frames + drops, "{s:#}");
    let offered = num(s, &["filter_stats", "accepted"]);
    assert_eq!(offered, packets, "{s:#}");
    assert!(
        stopped.stderr.contains("the kernel dropped packets"),
        "{}",
        stopped.stderr
    );
    assert!(
        stopped
            .stderr
            .contains(&format!("dropped {drops} (ring full)")),
        "{}",
        stopped.stderr
    );
}
