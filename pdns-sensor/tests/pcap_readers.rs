//! The three ways a capture is read agree: through a buffer from a byte
//! stream (`read`), in place from memory (`read_slice`), and from a file
//! mapped into memory (`read_file`, what `ingest` uses). Checked over
//! every capture in `testdata/`, each also cut short and damaged; and a
//! mapped file that shrinks while it is read stops where the file
//! stopped instead of ending the process with SIGBUS.

mod common;

use std::path::{Path, PathBuf};

use pdns_sensor::source::pcap::{self, ReadSummary};
use pdns_sensor::vocab::packet::{Frame, LinkType, Timestamp};

type Frames = Vec<(Timestamp, LinkType, Vec<u8>)>;
type Read = (Result<ReadSummary, String>, Frames);

fn collect(
    read: impl FnOnce(&mut dyn FnMut(&Frame<'_>)) -> Result<ReadSummary, pcap::SourceError>,
) -> Read {
    let mut frames = Frames::new();
    let result = read(&mut |frame: &Frame<'_>| {
        frames.push((frame.ts, frame.link, frame.data.to_vec()));
    });
    (result.map_err(|e| e.to_string()), frames)
}

/// The three readers over `bytes`, the mapped one from a file holding
/// them; errors name the capture `name` in all three.
fn read_three_ways(bytes: &[u8], dir: &Path, name: &str) -> [Read; 3] {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let mapped = collect(|f| pcap::read_file(&file, f));
    // `read_file` names the file by its path.
    let path = file.display().to_string();
    let streamed = collect(|f| pcap::read(bytes, &path, f));
    let in_place = collect(|f| pcap::read_slice(bytes, &path, f));
    [streamed, in_place, mapped]
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            captures(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pcap" | "pcapng")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn the_three_readers_agree_on_every_capture_whole_cut_and_damaged() {
    let mut files = Vec::new();
    captures(&common::testdata().join("pcap"), &mut files);
    files.sort();
    assert!(files.len() > 100, "{} captures", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut frames = 0;
    let mut variants = 0;
    let mut pcapng = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        pcapng += usize::from(bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]));
        let mut inputs = vec![("whole", bytes.clone())];
        // Cut inside the file header, inside the first record, and at a
        // third, a half and one byte short of the end.
        for cut in [10, 30, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
            inputs.push(("cut", bytes[..cut.min(bytes.len())].to_vec()));
        }
        // Damaged: a run of 0xff in the middle (record and block lengths
        // among what it hits).
        let mut damaged = bytes.clone();
        let at = bytes.len() / 2;
        damaged[at..(at + 9).min(bytes.len())].fill(0xff);
        inputs.push(("damaged", damaged));
        for (kind, input) in inputs {
            let [streamed, in_place, mapped] = read_three_ways(&input, tmp.path(), "capture");
            let what = format!("{} ({kind}, {} bytes)", file.display(), input.len());
            assert_eq!(streamed.0, in_place.0, "{what}: in place");
            assert!(streamed.1 == in_place.1, "{what}: frames in place");
            assert_eq!(streamed.0, mapped.0, "{what}: mapped");
            assert!(streamed.1 == mapped.1, "{what}: frames mapped");
            if kind == "whole" {
                let summary = streamed.0.as_ref().unwrap();
                assert!(!summary.truncated, "{what}");
                frames += streamed.1.len();
            }
            variants += 1;
        }
    }
    assert!(pcapng >= 1, "a pcapng capture among them");
    assert!(frames > 2000, "{frames} frames");
    eprintln!(
        "{} captures, {variants} inputs, {frames} frames of whole files: identical",
        files.len()
    );
}

#[test]
fn a_mapped_capture_that_shrinks_while_read_stops_where_the_file_stopped() {
    let original = common::pcap("zeek/erspan.pcap");
    let bytes = std::fs::read(&original).unwrap();
    // A page boundary well inside the file, so that every page past it
    // faults once the file is cut there.
    let cut = 64 << 10;
    assert!(bytes.len() > cut + (16 << 10), "{} bytes", bytes.len());
    let (before_cut, expected) = collect(|f| pcap::read_slice(&bytes[..cut], "cut", f));
    assert!(
        before_cut.unwrap().truncated,
        "the cut falls inside a record"
    );
    let (whole, all) = collect(|f| pcap::read_slice(&bytes, "whole", f));
    assert!(!whole.unwrap().truncated);
    assert!(
        all.len() > expected.len() + 10,
        "{} vs {}",
        all.len(),
        expected.len()
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("shrinking.pcap");
    std::fs::write(&path, &bytes).unwrap();
    let writer = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    let mut frames = Frames::new();
    let result = pcap::read_file(&path, |frame| {
        if frames.is_empty() {
            // Another program cuts the file short under the reader.
            writer.set_len(cut as u64).unwrap();
        }
        frames.push((frame.ts, frame.link, frame.data.to_vec()));
    });
    let summary = result.expect("what was read before the cut is kept");
    assert!(summary.truncated, "{summary:?}");
    assert_eq!(summary.frames, frames.len() as u64);
    assert_eq!(
        frames.len(),
        expected.len(),
        "frames up to the cut, no more"
    );
    assert!(
        frames == expected,
        "the same frames as the file's first {cut} bytes"
    );

    // The reader is still usable afterwards, and reads the cut file
    // (mapped again) as an ordinary short one.
    let (again, frames_again) = collect(|f| pcap::read_file(&path, f));
    assert!(again.unwrap().truncated);
    assert!(frames_again == expected);
}
