//! A tunnelled copy of a workload: every frame wrapped in VXLAN over IPv4,
//! as a mirror session (AWS VPC Traffic Mirroring, a vSwitch's VXLAN
//! mirror) delivers it to a sensor. Outer Ethernet + IPv4 (fixed tap →
//! sensor pair, header checksum filled) + UDP to 4789 (checksum 0, source
//! port a hash of the inner flow, as Linux and AWS choose it) + VXLAN
//! (I flag, `vni`) + the original Ethernet frame. Same timestamps, same
//! order, one outer frame per inner frame.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};

use super::packet::{fold, sum16};
use super::pcap::PcapWriter;

pub const VXLAN_PORT: u16 = 4789;
/// Bytes added in front of every frame.
pub const OVERHEAD: usize = 14 + 20 + 8 + 8;
const TAP: [u8; 4] = [10, 0, 0, 1];
const SENSOR: [u8; 4] = [10, 0, 0, 2];

/// Appends `frame` wrapped in VXLAN `vni` to `out`; `ip_id` is the outer
/// IPv4 identification.
pub fn vxlan_frame(out: &mut Vec<u8>, frame: &[u8], vni: u32, ip_id: u16) {
    let udp_len = 8 + 8 + frame.len();
    let total = 20 + udp_len;
    assert!(total <= 65535, "frame too large for VXLAN over IPv4");
    out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
    let ip = out.len();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&(total as u16).to_be_bytes());
    out.extend_from_slice(&ip_id.to_be_bytes());
    out.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    out.extend_from_slice(&TAP);
    out.extend_from_slice(&SENSOR);
    let c = fold(sum16(0, &out[ip..ip + 20]));
    out[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
    out.extend_from_slice(&source_port(frame).to_be_bytes());
    out.extend_from_slice(&VXLAN_PORT.to_be_bytes());
    out.extend_from_slice(&(udp_len as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0x08, 0, 0, 0]);
    out.extend_from_slice(&(vni << 8).to_be_bytes());
    out.extend_from_slice(frame);
}

/// 49152..65535 from the inner addresses, protocol and (unfragmented)
/// ports, FNV-1a.
fn source_port(frame: &[u8]) -> u16 {
    let key: &[u8] = match frame.get(12..14) {
        // IPv4: protocol, addresses, then ports unless fragmented.
        Some([0x08, 0x00]) if frame.len() >= 34 => {
            let ihl = (frame[14] & 0x0f) as usize * 4;
            let fragmented = u16::from_be_bytes([frame[20], frame[21]]) & 0x3fff != 0;
            let end = if fragmented { 34 } else { 14 + ihl + 4 };
            frame.get(23..end).unwrap_or(&frame[23..34])
        }
        // IPv6: next header .. addresses .. ports.
        Some([0x86, 0xdd]) if frame.len() >= 58 => frame.get(20..58).unwrap_or(&frame[20..54]),
        _ => frame.get(..12).unwrap_or(frame),
    };
    let h = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    49152 + (h % 16384) as u16
}

/// Writes a VXLAN-tunnelled copy of the Ethernet capture `input` to
/// `output`; returns the frames written.
pub fn vxlan_pcap(input: &Path, output: &Path, vni: u32) -> Result<u64> {
    let file = File::create(output).with_context(|| format!("creating {}", output.display()))?;
    let mut w = PcapWriter::new(BufWriter::new(file))?;
    let mut ip_id = 0u16;
    let mut failed = None;
    pdns_sensor::source::pcap::read_file(input, |frame| {
        if failed.is_some() {
            return;
        }
        ip_id = ip_id.wrapping_add(1);
        w.begin(frame.ts.secs * 1_000_000 + u64::from(frame.ts.nanos / 1000));
        vxlan_frame(&mut w.buf, frame.data, vni, ip_id);
        if let Err(e) = w.end() {
            failed = Some(e);
        }
    })?;
    if let Some(e) = failed {
        return Err(e.into());
    }
    let packets = w.packets();
    w.finish()?;
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_lengths() {
        let mut inner = vec![0u8; 14 + 20 + 8];
        inner[12] = 0x08;
        inner[14] = 0x45;
        inner[23] = 17;
        let mut out = Vec::new();
        vxlan_frame(&mut out, &inner, 0x00ab_cdef, 7);
        assert_eq!(out.len(), inner.len() + OVERHEAD);
        assert_eq!(&out[12..14], &[0x08, 0x00]);
        let total = u16::from_be_bytes([out[16], out[17]]) as usize;
        assert_eq!(total, out.len() - 14);
        assert_eq!(fold(sum16(0, &out[14..34])), 0, "IPv4 header checksum");
        let sport = u16::from_be_bytes([out[34], out[35]]);
        assert!(sport >= 49152);
        assert_eq!(u16::from_be_bytes([out[36], out[37]]), VXLAN_PORT);
        assert_eq!(u16::from_be_bytes([out[38], out[39]]) as usize, total - 20);
        assert_eq!(&out[42..50], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        assert_eq!(&out[50..], &inner[..]);
    }

    #[test]
    fn the_sensor_opens_every_frame_and_finds_the_same_messages() {
        use pdns_sensor::decode::{DecodeConfig, Decoder, Encap};
        let dir = tempfile::tempdir().unwrap();
        let (plain, vxlan) = (dir.path().join("w.pcap"), dir.path().join("v.pcap"));
        let cfg = crate::r#gen::Config {
            packets: 5_000,
            tcp_share: 0.2,
            large_share: 0.1,
            ..Default::default()
        };
        crate::r#gen::generate_file(&cfg, &plain, None, &mut |_| {}).unwrap();
        let frames = vxlan_pcap(&plain, &vxlan, 7).unwrap();
        assert_eq!(frames, 5_000);
        let decode = |path: &Path| {
            let mut d = Decoder::new(&DecodeConfig::default());
            let mut messages = Vec::new();
            pdns_sensor::source::pcap::read_file(path, |f| {
                d.decode(f, &mut |m| messages.push(m.data.to_vec()))
            })
            .unwrap();
            d.finish(&mut |m| messages.push(m.data.to_vec()));
            (messages, d.stats.decapsulated[Encap::Vxlan as usize])
        };
        let (want, none) = decode(&plain);
        let (got, opened) = decode(&vxlan);
        assert_eq!(none, 0);
        assert_eq!(opened, 5_000);
        assert!(want.len() > 1_000, "{} messages", want.len());
        assert!(got == want, "{} vs {} messages", got.len(), want.len());
    }
}
