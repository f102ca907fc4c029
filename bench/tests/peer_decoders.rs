//! The decoding peers run for real on a generated file: tshark prints one
//! line per packet and dnscap prints every DNS message but the fragmented
//! ones (it skips those even with defragmentation on), as
//! the generator's ground truth says; a peer that is not installed is
//! reported missing with a reason instead of measured.
//!
//! tshark and dnscap are installed by `cargo xtask setup`; without them
//! these tests fail (a missing tool must not pass silently).

use bench::r#gen::{Config, generate_file};
use bench::peers::decoders::Decoder;
use bench::tools::on_path_in;

fn workload(dir: &std::path::Path) -> (std::path::PathBuf, bench::r#gen::Summary) {
    let pcap = dir.join("w.pcap");
    let cfg = Config {
        packets: 4_000,
        names: 500,
        tcp_share: 0.1,
        ..Config::default()
    };
    let summary = generate_file(&cfg, &pcap, None, &mut |_| {}).unwrap();
    (pcap, summary)
}

#[test]
fn tshark_and_dnscap_decode_every_packet_of_a_generated_file() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = workload(dir.path());
    assert!(truth.tcp_exchanges > 0 && truth.fragmented_responses > 0);
    for d in [Decoder::Tshark, Decoder::Dnscap] {
        assert_eq!(d.missing(), None, "{} must be installed", d.name());
        let out = dir.path().join(d.name());
        std::fs::create_dir(&out).unwrap();
        let run = d.run(&pcap, &truth, &out).unwrap();
        assert!(
            run.measured.success(),
            "{}: {}",
            d.name(),
            run.measured.describe_failure()
        );
        assert_eq!(run.problem, None, "{}", d.name());
        match d {
            Decoder::Tshark => assert_eq!(run.decoded, truth.packets),
            _ => assert!(
                run.decoded >= truth.queries + truth.responses - truth.fragmented_responses
                    && run.decoded <= truth.packets,
                "dnscap decoded {} of {} messages",
                run.decoded,
                truth.queries + truth.responses
            ),
        }
    }
}

#[test]
fn a_truncated_file_is_a_problem_not_a_rate() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = workload(dir.path());
    let bytes = std::fs::read(&pcap).unwrap();
    std::fs::write(&pcap, &bytes[..bytes.len() / 2]).unwrap();
    let out = dir.path().join("t");
    std::fs::create_dir(&out).unwrap();
    let run = Decoder::Tshark.run(&pcap, &truth, &out).unwrap();
    assert!(run.problem.is_some() || !run.measured.success());
}

#[test]
fn missing_peers_say_why() {
    let empty = tempfile::tempdir().unwrap();
    for d in Decoder::ALL {
        assert!(!on_path_in(empty.path().as_os_str(), d.name()));
    }
    assert!(on_path_in(std::ffi::OsStr::new("/usr/bin:/bin"), "sh"));
    if !on_path_in(&std::env::var_os("PATH").unwrap(), "passivedns") {
        let why = Decoder::Passivedns.missing().expect("reported missing");
        assert!(why.contains("passivedns"), "{why}");
    }
}
