//! Packet sequences of one DNS exchange: UDP, fragmented UDP, or a full TCP
//! connection.
//!
//! Kept apart from the choice of *what* is asked so that the wire-level
//! choreography (handshake, framing, segment splits, fragment order,
//! timestamps, IP IDs) can be read and tested on its own.

use std::io::{self, Write};

use super::packet::{self, Endpoint, Segment, tcp};
use super::pcap::PcapWriter;
use super::rng::Rng;

/// How a TCP response is cut into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    None,
    /// Two segments, the first holding this many bytes of the framed response.
    At(usize),
}

/// TCP connection parameters.
#[derive(Clone, Copy, Debug)]
pub struct TcpParams {
    pub isn_client: u32,
    pub isn_server: u32,
    pub split: Split,
}

/// Packets a TCP exchange occupies.
pub fn tcp_packets(split: Split) -> u64 {
    9 + (split != Split::None) as u64
}

/// Writes packets with advancing timestamps and IP IDs.
pub struct Emitter<W: Write> {
    pub w: PcapWriter<W>,
    ts_us: u64,
    ip_id: u16,
    scratch: Vec<u8>,
}

impl<W: Write> Emitter<W> {
    pub fn new(w: PcapWriter<W>, start_us: u64, ip_id: u16) -> Self {
        Emitter {
            w,
            ts_us: start_us,
            ip_id,
            scratch: Vec::with_capacity(70_000),
        }
    }

    /// Next timestamp: 3–7 µs after the previous packet (5 µs on average).
    fn begin(&mut self, rng: &mut Rng) -> u16 {
        self.ts_us += 3 + rng.below(5);
        self.w.begin(self.ts_us);
        self.ip_id = self.ip_id.wrapping_add(1);
        self.ip_id
    }

    /// One UDP datagram in one frame.
    pub fn udp(
        &mut self,
        rng: &mut Rng,
        src: &Endpoint,
        dst: &Endpoint,
        payload: &[u8],
    ) -> io::Result<()> {
        let id = self.begin(rng);
        packet::udp_frame(&mut self.w.buf, src, dst, id, payload);
        self.w.end()
    }

    /// One UDP/IPv4 datagram split into MTU-sized fragments, in order.
    /// Returns the number of fragments written.
    pub fn udp_fragmented(
        &mut self,
        rng: &mut Rng,
        src: &Endpoint,
        dst: &Endpoint,
        payload: &[u8],
    ) -> io::Result<u64> {
        self.scratch.clear();
        packet::udp_datagram(&mut self.scratch, src, dst, payload);
        let n = packet::fragment_count(self.scratch.len());
        self.ip_id = self.ip_id.wrapping_add(1);
        let id = self.ip_id;
        for i in 0..n {
            self.begin(rng);
            packet::ipv4_fragment_frame(&mut self.w.buf, src, dst, id, &self.scratch, i);
            self.w.end()?;
        }
        Ok(n as u64)
    }

    fn seg(
        &mut self,
        rng: &mut Rng,
        src: &Endpoint,
        dst: &Endpoint,
        seg: Segment,
        data: &[u8],
    ) -> io::Result<()> {
        let id = self.begin(rng);
        packet::tcp_frame(&mut self.w.buf, src, dst, id, seg, data);
        self.w.end()
    }

    /// A whole TCP connection: handshake, framed query, framed response
    /// (optionally in two segments), client ACK and FIN/ACK teardown.
    pub fn tcp(
        &mut self,
        rng: &mut Rng,
        client: &Endpoint,
        server: &Endpoint,
        query: &[u8],
        response: &[u8],
        p: TcpParams,
    ) -> io::Result<()> {
        let (c0, s0) = (p.isn_client, p.isn_server);
        let seg = |seq: u32, ack: u32, flags: u8| Segment {
            seq,
            ack,
            flags,
            mss: None,
        };
        let syn = Segment {
            mss: Some(1460),
            ..seg(c0, 0, tcp::SYN)
        };
        self.seg(rng, client, server, syn, &[])?;
        let synack = Segment {
            mss: Some(1460),
            ..seg(s0, c0.wrapping_add(1), tcp::SYN | tcp::ACK)
        };
        self.seg(rng, server, client, synack, &[])?;
        let (c1, s1) = (c0.wrapping_add(1), s0.wrapping_add(1));
        self.seg(rng, client, server, seg(c1, s1, tcp::ACK), &[])?;

        let mut framed = Vec::with_capacity(query.len().max(response.len()) + 2);
        framed.extend_from_slice(&(query.len() as u16).to_be_bytes());
        framed.extend_from_slice(query);
        self.seg(
            rng,
            client,
            server,
            seg(c1, s1, tcp::PSH | tcp::ACK),
            &framed,
        )?;
        let c2 = c1.wrapping_add(framed.len() as u32);

        framed.clear();
        framed.extend_from_slice(&(response.len() as u16).to_be_bytes());
        framed.extend_from_slice(response);
        match p.split {
            Split::None => self.seg(
                rng,
                server,
                client,
                seg(s1, c2, tcp::PSH | tcp::ACK),
                &framed,
            )?,
            Split::At(k) => {
                let k = k.clamp(1, framed.len() - 1);
                self.seg(rng, server, client, seg(s1, c2, tcp::ACK), &framed[..k])?;
                let s_mid = s1.wrapping_add(k as u32);
                self.seg(
                    rng,
                    server,
                    client,
                    seg(s_mid, c2, tcp::PSH | tcp::ACK),
                    &framed[k..],
                )?;
            }
        }
        let s2 = s1.wrapping_add(framed.len() as u32);
        self.seg(rng, client, server, seg(c2, s2, tcp::ACK), &[])?;
        self.seg(rng, client, server, seg(c2, s2, tcp::FIN | tcp::ACK), &[])?;
        let c3 = c2.wrapping_add(1);
        self.seg(rng, server, client, seg(s2, c3, tcp::FIN | tcp::ACK), &[])?;
        self.seg(
            rng,
            client,
            server,
            seg(c3, s2.wrapping_add(1), tcp::ACK),
            &[],
        )
    }

    pub fn finish(self) -> io::Result<(W, u64)> {
        self.w.finish()
    }
}
