//! The soak's traffic: a paced sender of DNS exchanges whose set of names
//! keeps growing, written straight to the sending veth end from a thread of
//! this process that joined the tx namespace.
//!
//! Why not `tcpreplay` as in the live scenario: a pcap loops over the same
//! names, so after its first pass the store and the aggregator see no new
//! key, and a file holding ten minutes of ever-new names at 50 k packets/s
//! (30 M packets, several GB) would have to be preloaded into memory.
//! Here every exchange is built as it is sent, and what was sent is known
//! exactly from the exchange count alone:
//!
//! - exchange `k` (from 0) is a UDP query and its response, two frames;
//! - even `k` asks a **new** name, id `k / 2`; odd `k` repeats an earlier
//!   name, a hashed pick among ids `0..k / 2` (so half the exchanges are
//!   repeats, spread over everything seen so far);
//! - name id `n` is `h{n}.z{n / 64}.soak-{n / 4096}.net` with one A record,
//!   `100.64.0.0/10 + n`; so distinct names = distinct records =
//!   `ceil(exchanges / 2)`, and a registrable domain is new every 4 096
//!   names (newly observed domains keep coming too).
//!
//! Pacing: the sender sends what is due by the clock (`elapsed × pps`)
//! every 200 µs, so it neither bursts beyond a few dozen frames nor drifts;
//! what it achieved is reported, not assumed.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::r#gen::dns::{FLAGS_QUERY, FLAGS_RESPONSE, MsgBuilder, RData, Record, Section, rtype};
use crate::r#gen::packet::{Endpoint, Ip, udp_frame};
use crate::r#gen::rng::mix64;
use crate::scenario::live::veth::{RX_MAC, TX_MAC};

/// Frames per exchange (query and response).
pub const FRAMES_PER_EXCHANGE: u64 = 2;

/// The owner name of name id `n` (no trailing dot).
pub fn qname(n: u64) -> String {
    format!("h{n}.z{}.soak-{}.net", n / 64, n / 4096)
}

/// The one A record of name id `n`: 100.64.0.0/10 + n (wraps at 2^22).
pub fn address(n: u64) -> [u8; 4] {
    let v = (100u32 << 24) | (64 << 16) | (n as u32 & 0x3f_ffff);
    v.to_be_bytes()
}

/// The name id exchange `k` asks: new on even `k`, an earlier one on odd.
pub fn name_of(k: u64) -> u64 {
    if k.is_multiple_of(2) {
        k / 2
    } else {
        mix64(k) % (k / 2).max(1)
    }
}

/// Distinct names (and records) in the first `exchanges` exchanges.
pub fn names_in(exchanges: u64) -> u64 {
    exchanges.div_ceil(2)
}

/// The two frames of exchange `k`, appended to `out` (query first);
/// returns the response frame's offset.
pub fn exchange_frames(k: u64, out: &mut Vec<u8>) -> usize {
    let n = name_of(k);
    let name = qname(n);
    let id = mix64(k ^ 0x5eed) as u16;
    let c = k % 4096;
    let client = Endpoint {
        mac: TX_MAC,
        ip: Ip::V4([10, 1, (c >> 8) as u8, c as u8]),
        port: 1024 + (mix64(k) % 60_000) as u16,
    };
    let resolver = Endpoint {
        mac: TX_MAC,
        ip: Ip::V4([10, 255, 255, 1]),
        port: 53,
    };
    let mut q = MsgBuilder::new(id, FLAGS_QUERY);
    q.question(&name, rtype::A);
    let mut r = MsgBuilder::new(id, FLAGS_RESPONSE);
    r.question(&name, rtype::A);
    r.record(
        Section::Answer,
        &Record {
            owner: name,
            ttl: 300,
            data: RData::A(address(n)),
        },
    );
    // Both frames go to the receiving end's MAC (PACKET_HOST there).
    let (mut to_resolver, mut to_client) = (resolver, client);
    to_resolver.mac = RX_MAC;
    to_client.mac = RX_MAC;
    udp_frame(out, &client, &to_resolver, k as u16, &q.finish());
    let at = out.len();
    udp_frame(out, &resolver, &to_client, (k as u16) ^ 0x8000, &r.finish());
    at
}

/// What the sender did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sent {
    pub exchanges: u64,
    pub frames: u64,
    /// Sends that failed (ENOBUFS etc.) and were retried.
    pub retries: u64,
    pub secs: f64,
}

impl Sent {
    pub fn names(&self) -> u64 {
        names_in(self.exchanges)
    }

    pub fn pps(&self) -> f64 {
        self.frames as f64 / self.secs.max(1e-9)
    }
}

/// A running sender thread.
pub struct Sender {
    stop: Arc<AtomicBool>,
    /// Exchanges sent so far (for the sampler).
    pub progress: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<Sent>>>,
}

impl Sender {
    /// Starts sending `pps` frames per second for `secs` seconds on `iface`
    /// inside network namespace `netns` (a name under /run/netns).
    pub fn start(netns: &str, iface: &str, pps: u64, secs: f64) -> Result<Sender> {
        let file = std::fs::File::open(format!("/run/netns/{netns}"))
            .with_context(|| format!("opening network namespace {netns}"))?;
        let iface = std::ffi::CString::new(iface)?;
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), progress.clone());
        let thread = std::thread::Builder::new()
            .name("soak-send".into())
            .spawn(move || {
                // SAFETY: setns on a valid namespace fd; this thread only.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    bail!("setns: {}", std::io::Error::last_os_error());
                }
                let sock = packet_socket(&iface)?;
                send_loop(&sock, pps, secs, &s, &p)
            })?;
        Ok(Sender {
            stop,
            progress,
            thread: Some(thread),
        })
    }

    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Waits for the end of the run (or stops it now with `abort`).
    pub fn finish(mut self, abort: bool) -> Result<Sent> {
        if abort {
            self.stop.store(true, Ordering::Relaxed);
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => bail!("the sender thread panicked"),
            None => bail!("already finished"),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An AF_PACKET socket bound to `iface` for sending only (protocol 0: it
/// receives nothing).
fn packet_socket(iface: &std::ffi::CStr) -> Result<OwnedFd> {
    // SAFETY: plain syscalls with valid arguments; the fd is owned at once.
    unsafe {
        let index = libc::if_nametoindex(iface.as_ptr());
        if index == 0 {
            bail!(
                "no interface {iface:?}: {}",
                std::io::Error::last_os_error()
            );
        }
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            bail!("AF_PACKET socket: {}", std::io::Error::last_os_error());
        }
        let sock = OwnedFd::from_raw_fd(fd);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = index as i32;
        let r = libc::bind(
            fd,
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as u32,
        );
        if r != 0 {
            bail!("binding to {iface:?}: {}", std::io::Error::last_os_error());
        }
        Ok(sock)
    }
}

fn send_frame(sock: &OwnedFd, frame: &[u8], retries: &mut u64, stop: &AtomicBool) -> Result<()> {
    loop {
        // SAFETY: `frame` is valid for its length; the socket is open.
        let r = unsafe { libc::send(sock.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if r == frame.len() as isize {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR) if !stop.load(Ordering::Relaxed) => {
                *retries += 1;
                std::thread::sleep(Duration::from_micros(50));
            }
            _ => bail!("sending a frame: {e}"),
        }
    }
}

fn send_loop(
    sock: &OwnedFd,
    pps: u64,
    secs: f64,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> Result<Sent> {
    let exchanges_per_sec = pps as f64 / FRAMES_PER_EXCHANGE as f64;
    let total = (exchanges_per_sec * secs).round() as u64;
    let start = Instant::now();
    let mut sent = Sent::default();
    let mut buf = Vec::with_capacity(512);
    while sent.exchanges < total && !stop.load(Ordering::Relaxed) {
        let due = ((start.elapsed().as_secs_f64() * exchanges_per_sec) as u64).min(total);
        while sent.exchanges < due {
            buf.clear();
            let at = exchange_frames(sent.exchanges, &mut buf);
            send_frame(sock, &buf[..at], &mut sent.retries, stop)?;
            send_frame(sock, &buf[at..], &mut sent.retries, stop)?;
            sent.exchanges += 1;
            sent.frames += FRAMES_PER_EXCHANGE;
        }
        progress.store(sent.exchanges, Ordering::Relaxed);
        std::thread::sleep(Duration::from_micros(200));
    }
    sent.secs = start.elapsed().as_secs_f64();
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_grow_and_repeat() {
        assert_eq!(name_of(0), 0);
        assert_eq!(name_of(2), 1);
        assert_eq!(name_of(1), 0);
        for k in [3u64, 5, 99, 1_000_001] {
            assert!(name_of(k) < k / 2, "a repeat is an earlier name");
        }
        assert_eq!(names_in(0), 0);
        assert_eq!(names_in(1), 1);
        assert_eq!(names_in(4), 2);
        assert_eq!(names_in(5), 3);
        assert_eq!(qname(4097), "h4097.z64.soak-1.net");
        assert_eq!(address(1), [100, 64, 0, 1]);
        assert_eq!(address(0x3f_ffff), [100, 127, 255, 255]);
    }

    #[test]
    fn frames_are_a_query_and_its_answer() {
        let mut buf = Vec::new();
        let at = exchange_frames(6, &mut buf);
        let (q, r) = (&buf[..at], &buf[at..]);
        assert_eq!(&q[..6], &RX_MAC);
        assert_eq!(&r[..6], &RX_MAC);
        // Ethernet + IPv4 + UDP, then the DNS header: QR clear, then set.
        assert_eq!(q[14 + 20 + 8 + 2] & 0x80, 0);
        assert_eq!(r[14 + 20 + 8 + 2] & 0x80, 0x80);
        let name = b"\x02h3\x02z0\x06soak-0\x03net\x00";
        assert!(r.windows(name.len()).any(|w| w == name));
        assert!(r.ends_with(&[100, 64, 0, 3]));
    }
}
