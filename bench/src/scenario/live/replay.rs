//! The replayed traffic: a workload pcap retargeted to the receiving veth
//! end, and `tcpreplay` at a fixed rate or at top speed.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::veth::{RX_MAC, TX_IF, TX_MAC};
use crate::netns::{Netns, run_bounded};

/// A replay rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rate {
    /// `--pps=N`.
    Pps(u64),
    /// `--topspeed`.
    Top,
}

impl Rate {
    /// The workload field `rate`: the requested pps, or `"topspeed"`.
    pub(super) fn value(&self) -> serde_json::Value {
        match self {
            Rate::Pps(n) => (*n).into(),
            Rate::Top => "topspeed".into(),
        }
    }

    fn arg(&self) -> String {
        match self {
            Rate::Pps(n) => format!("--pps={n}"),
            Rate::Top => "--topspeed".into(),
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rate::Pps(n) => write!(f, "{n} pps"),
            Rate::Top => write!(f, "topspeed"),
        }
    }
}

/// What tcpreplay says it did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Replayed {
    pub packets: Option<f64>,
    pub secs: Option<f64>,
    pub pps: Option<f64>,
}

/// Sends `packets` packets of `pcap` (looping over it as often as needed)
/// from the tx namespace at `rate`. The file is preloaded (`-K`), so the
/// disk is not part of the measurement.
pub(super) fn replay(
    tx: &Netns,
    pcap: &Path,
    pcap_packets: u64,
    packets: u64,
    rate: Rate,
) -> Result<Replayed> {
    let loops = packets.div_ceil(pcap_packets.max(1)).max(1);
    // The slowest rate sets the bound: twice the nominal time plus setup
    // (preloading, 10 s), and at least a minute for top speed.
    let nominal = match rate {
        Rate::Pps(n) => packets as f64 / n.max(1) as f64,
        Rate::Top => packets as f64 / 50_000.0,
    };
    let timeout = Duration::from_secs_f64(nominal * 2.0 + 10.0).max(Duration::from_secs(60));
    let out = run_bounded(
        tx.cmd("tcpreplay").args([
            "-K".to_string(),
            rate.arg(),
            format!("--loop={loops}"),
            format!("--limit={packets}"),
            "-i".into(),
            TX_IF.into(),
            pcap.to_str().context("pcap path")?.into(),
        ]),
        timeout,
    )
    .context("tcpreplay")?;
    Ok(parse_tcpreplay(&out))
}

/// `Actual: N packets (B bytes) sent in S seconds` and `Rated: ... X pps`.
pub(super) fn parse_tcpreplay(out: &str) -> Replayed {
    let mut r = Replayed::default();
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let after = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| words.get(i + 1))
                .and_then(|x| x.parse().ok())
        };
        let before = |w: &str| {
            words
                .iter()
                .position(|x| *x == w)
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| words[i].parse().ok())
        };
        match words.first() {
            Some(&"Actual:") => {
                r.packets = words.get(1).and_then(|w| w.parse().ok());
                r.secs = after("in");
            }
            Some(&"Rated:") => r.pps = before("pps"),
            _ => {}
        }
    }
    r
}

/// A copy of a classic little-endian pcap with every frame addressed to the
/// receiving veth end (so the frames are PACKET_HOST there, as on a real
/// resolver); returns the number of frames.
pub(super) fn retarget(src: &Path, dst: &Path) -> Result<u64> {
    let mut data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
    let mut pos = 24;
    let mut frames = 0;
    while pos + 16 <= data.len() {
        let caplen = u32::from_le_bytes(data[pos + 8..pos + 12].try_into()?) as usize;
        let frame = pos + 16;
        if frame + 12 <= data.len() && caplen >= 12 {
            data[frame..frame + 6].copy_from_slice(&RX_MAC);
            data[frame + 6..frame + 12].copy_from_slice(&TX_MAC);
        }
        frames += 1;
        pos = frame + caplen;
    }
    let tmp = dst.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, dst)?;
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpreplay_output_parses() {
        let text = "File Cache is enabled\nActual: 100000 packets (15061006 bytes) sent in 0.32 seconds\nRated: 47068768.7 Bps, 376.55 Mbps, 312500.00 pps\nFlows: 7255 flows\n";
        assert_eq!(
            parse_tcpreplay(text),
            Replayed {
                packets: Some(100000.0),
                secs: Some(0.32),
                pps: Some(312500.0)
            }
        );
        assert_eq!(parse_tcpreplay("garbage"), Replayed::default());
    }

    #[test]
    fn rates_render() {
        assert_eq!(Rate::Pps(200_000).to_string(), "200000 pps");
        assert_eq!(Rate::Top.value(), serde_json::json!("topspeed"));
        assert_eq!(Rate::Pps(5).value(), serde_json::json!(5));
        assert_eq!(Rate::Top.arg(), "--topspeed");
    }

    #[test]
    fn retargets_every_frame() {
        let dir = tempfile::tempdir().unwrap();
        let mut pcap = vec![0u8; 24];
        for len in [14u32, 60] {
            pcap.extend_from_slice(&[0; 8]);
            pcap.extend_from_slice(&len.to_le_bytes());
            pcap.extend_from_slice(&len.to_le_bytes());
            pcap.extend(std::iter::repeat_n(0xee, len as usize));
        }
        let (src, dst) = (dir.path().join("a.pcap"), dir.path().join("b.pcap"));
        std::fs::write(&src, &pcap).unwrap();
        assert_eq!(retarget(&src, &dst).unwrap(), 2);
        let out = std::fs::read(&dst).unwrap();
        assert_eq!(&out[40..46], &RX_MAC);
        assert_eq!(&out[46..52], &TX_MAC);
        assert_eq!(out[52], 0xee);
        assert_eq!(&out[54 + 16..54 + 22], &RX_MAC);
    }
}
