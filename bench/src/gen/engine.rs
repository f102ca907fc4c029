//! The generation loop: decides what each exchange asks, patches the
//! template into a query and a response, and hands them to the emitter.
//!
//! Every random draw for an exchange happens before anything is written and
//! independently of `--packets`, so a shorter file is a prefix of a longer
//! one with the same seed (apart from the last exchange, which is shrunk to
//! land on the exact packet count).

use std::io::Write;

use anyhow::Result;

use super::Config;
use super::clients::Clients;
use super::dns::{FLAGS_QUERY, opt_record, rtype};
use super::exchange::{Emitter, Split, TcpParams, tcp_packets};
use super::manifest::{Summary, Tracker};
use super::names::{Catalog, LARGE_NAMES, VICTIMS, base36_label};
use super::packet;
use super::pcap::PcapWriter;
use super::rng::{Rng, mix, mix64};
use super::template::{Accounting, Template, Templates};
use super::zipf::Zipf;

const EDNS_SHARE: f64 = 0.9;
const DO_SHARE: f64 = 0.3;
const CASE_SHARE: f64 = 0.2;
const AAAA_SHARE: f64 = 0.35;
const SPLIT_SHARE: f64 = 0.1;
const EDNS_SIZE: u16 = 1232;
const EDNS_SIZE_LARGE: u16 = 4096;

/// What one exchange asks for.
#[derive(Clone, Copy, Debug)]
enum Ask {
    Name { n: u64, v: u64 },
    Large(u64),
    Nx { n: u64, aaaa: bool, zone: u64 },
    Torture { victim: u64 },
}

/// A fully decided exchange, with payloads in the engine's buffers.
#[derive(Clone, Copy, Debug)]
struct Plan {
    ask: Ask,
    acct: Accounting,
    client: u64,
    tcp: Option<TcpParams>,
    nxdomain: bool,
    packets: u64,
}

pub(super) struct Engine<'c, W: Write> {
    cfg: &'c Config,
    rng: Rng,
    zipf: Zipf,
    clients: Clients,
    templates: Templates,
    torture: Vec<Template>,
    torture_seq: u64,
    has_v4: bool,
    tracker: Tracker,
    out: Emitter<W>,
    query: Vec<u8>,
    response: Vec<u8>,
    scratch: Option<Template>,
    summary: Summary,
}

impl<'c, W: Write> Engine<'c, W> {
    pub(super) fn new(cfg: &'c Config, sink: W) -> Result<Self> {
        let catalog = Catalog::new(cfg.seed, cfg.names);
        let torture = (0..VICTIMS)
            .map(|v| {
                let qname = format!("{}.victim-{v}.com", base36_label(0));
                Template::nxdomain(&qname, rtype::A, &catalog.soa(catalog.zones() + v))
            })
            .collect();
        let clients = Clients::new(cfg.seed, cfg.clients, cfg.ipv6_share);
        Ok(Engine {
            cfg,
            has_v4: clients.v4_from(0).is_some(),
            rng: Rng::new(cfg.seed),
            zipf: Zipf::new(cfg.names, cfg.zipf),
            clients,
            tracker: Tracker::new(&catalog),
            templates: Templates::new(catalog),
            torture,
            torture_seq: 0,
            out: Emitter::new(
                PcapWriter::new(sink)?,
                cfg.start_time * 1_000_000,
                mix(cfg.seed, 200, 0) as u16,
            ),
            query: Vec::with_capacity(600),
            response: Vec::with_capacity(8192),
            scratch: None,
            summary: Summary::default(),
        })
    }

    pub(super) fn run(mut self, progress: &mut dyn FnMut(u64)) -> Result<(W, Summary)> {
        let mut next_report = 1 << 16;
        while self.out.w.packets() < self.cfg.packets {
            self.step()?;
            if self.out.w.packets() >= next_report {
                progress(self.out.w.packets());
                next_report += 1 << 16;
            }
        }
        progress(self.out.w.packets());
        let (sink, bytes) = self.out.finish()?;
        self.summary.packets = self.cfg.packets;
        self.summary.bytes = bytes;
        self.summary.counts = self.tracker.counts();
        Ok((sink, self.summary))
    }

    fn step(&mut self) -> Result<()> {
        let remaining = self.cfg.packets - self.out.w.packets();
        let mut plan = self.plan(false);
        if plan.packets > remaining {
            if remaining >= 2 {
                plan = self.plan(true);
            } else {
                // Last slot: a query whose response was lost.
                let c = self.clients.endpoint(plan.client);
                let r = Clients::resolver_for(&c);
                self.out.udp(&mut self.rng, &c, &r, &self.query)?;
                self.summary.queries += 1;
                return Ok(());
            }
        }
        self.account(&plan);
        let c = self.clients.endpoint(plan.client);
        let r = Clients::resolver_for(&c);
        let rng = &mut self.rng;
        self.summary.queries += 1;
        self.summary.responses += 1;
        self.summary.nxdomain_responses += plan.nxdomain as u64;
        if let Some(tcp) = plan.tcp {
            self.out
                .tcp(rng, &c, &r, &self.query, &self.response, tcp)?;
            self.summary.tcp_exchanges += 1;
        } else {
            self.out.udp(rng, &c, &r, &self.query)?;
            if 8 + self.response.len() + 20 > packet::MTU {
                self.out.udp_fragmented(rng, &r, &c, &self.response)?;
                self.summary.fragmented_responses += 1;
            } else {
                self.out.udp(rng, &r, &c, &self.response)?;
            }
        }
        Ok(())
    }

    fn account(&mut self, plan: &Plan) {
        match plan.ask {
            Ask::Name { n, v } => self.tracker.name(n, v, &plan.acct),
            Ask::Large(i) => self.tracker.large(i, &plan.acct),
            Ask::Nx { n, aaaa, zone } => self.tracker.nx(n, aaaa, zone),
            Ask::Torture { victim } => self
                .tracker
                .torture(victim, self.templates.catalog().zones()),
        }
    }

    /// Draws what to ask; `small` forbids large responses and water torture
    /// is unaffected (its exchanges are always small).
    fn ask(&mut self, small: bool) -> Ask {
        let rng = &mut self.rng;
        if self.cfg.water_torture {
            return Ask::Torture {
                victim: rng.below(VICTIMS),
            };
        }
        let u = rng.unit();
        // Large responses need an IPv4 client (they are IPv4-fragmented);
        // when that is impossible the exchange becomes an ordinary one.
        if u < self.cfg.large_share && !small && self.has_v4 {
            Ask::Large(rng.below(LARGE_NAMES))
        } else if u >= self.cfg.large_share && u < self.cfg.large_share + self.cfg.nxdomain {
            let n = self.zipf.sample(rng);
            let zone = self.templates.catalog().zone(n);
            Ask::Nx {
                n,
                aaaa: rng.chance(AAAA_SHARE),
                zone,
            }
        } else {
            let n = self.zipf.sample(rng);
            let v = if self.templates.catalog().variants(n) == 2 {
                rng.chance(AAAA_SHARE) as u64
            } else {
                0
            };
            Ask::Name { n, v }
        }
    }

    /// Decides one exchange and fills `self.query` / `self.response`.
    /// `small` forces a plain two-packet UDP exchange.
    fn plan(&mut self, small: bool) -> Plan {
        let ask = self.ask(small);
        let large = matches!(ask, Ask::Large(_));
        let rng = &mut self.rng;
        let mut client = rng.below(self.clients.count());
        if large {
            client = self.clients.v4_from(client).expect("checked in ask");
        }
        let tcp_draw = rng.chance(self.cfg.tcp_share);
        let edns = large || rng.chance(EDNS_SHARE);
        let dnssec_ok = rng.chance(DO_SHARE);
        let case_bits = if rng.chance(CASE_SHARE) {
            rng.next_u64()
        } else {
            0
        };
        let id = rng.next_u64() as u16;
        let tcp = (tcp_draw && !large && !small).then(|| {
            let isn = rng.next_u64();
            let split = if rng.chance(SPLIT_SHARE) {
                if rng.chance(0.5) {
                    Split::At(2)
                } else {
                    Split::At(3 + rng.below(60) as usize)
                }
            } else {
                Split::None
            };
            TcpParams {
                isn_client: isn as u32,
                isn_server: (isn >> 32) as u32,
                split,
            }
        });

        let mut nx_tmpl = None;
        let t: &Template = match ask {
            Ask::Name { n, v } => self.templates.name(n, v, &mut self.scratch),
            Ask::Large(i) => self.templates.large(i),
            Ask::Nx { n, aaaa, zone } => {
                let cat = self.templates.catalog();
                let (qname, _) = cat.nx_qname(n);
                let qtype = if aaaa { rtype::AAAA } else { rtype::A };
                nx_tmpl.insert(Template::nxdomain(&qname, qtype, &cat.soa(zone)))
            }
            Ask::Torture { victim } => &self.torture[victim as usize],
        };
        let qend = t.qend as usize;
        let nxdomain = t.bytes[3] & 0x0F == 3;
        let acct = t.acct;
        self.response.clear();
        self.response.extend_from_slice(&t.bytes);
        if let Ask::Torture { .. } = ask {
            // Unique per query: a bijection of the sequence number.
            let label = base36_label(mix64(self.torture_seq ^ self.cfg.seed.rotate_left(32)));
            self.torture_seq += 1;
            self.response[13..26].copy_from_slice(label.as_bytes());
        }
        self.response[..2].copy_from_slice(&id.to_be_bytes());
        if case_bits != 0 {
            mix_case(&mut self.response[12..qend - 4], case_bits);
        }
        self.query.clear();
        self.query.extend_from_slice(&self.response[..qend]);
        self.query[2..4].copy_from_slice(&FLAGS_QUERY.to_be_bytes());
        self.query[6..12].fill(0);
        if edns {
            let size = if large { EDNS_SIZE_LARGE } else { EDNS_SIZE };
            let opt = opt_record(size, dnssec_ok);
            self.query[11] = 1;
            self.query.extend_from_slice(&opt);
            self.response[11] = 1;
            self.response.extend_from_slice(&opt);
        }

        let packets = match tcp {
            Some(p) => tcp_packets(p.split),
            None if large => 1 + packet::fragment_count(8 + self.response.len()) as u64,
            None => 2,
        };
        Plan {
            ask,
            acct,
            client,
            tcp,
            nxdomain,
            packets,
        }
    }
}

/// 0x20 mixing: upper-cases each letter of a wire name whose bit is set.
fn mix_case(name: &mut [u8], bits: u64) {
    for (i, b) in name
        .iter_mut()
        .filter(|b| b.is_ascii_lowercase())
        .enumerate()
    {
        if bits.rotate_right(i as u32) & 1 == 1 {
            *b = b.to_ascii_uppercase();
        }
    }
}
