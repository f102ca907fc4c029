//! The synthetic namespace: which names exist and what each one answers.
//!
//! Every attribute is a pure function of `(seed, index)`, so a name's records
//! are fixed per seed whatever order names are drawn in, templates can be
//! rebuilt on demand instead of kept for a million names, and the manifest
//! can count distinct records without storing them. Owner names are unique
//! per index (or per shared CDN target), which is what makes that counting
//! exact.

use super::dns::{RData, Record, rtype};
use super::rng::{mix, pick};

const WORDS: [&str; 16] = [
    "www", "api", "cdn", "img", "static", "mail", "m", "login", "app", "assets", "news", "shop",
    "video", "auth", "edge", "ws",
];
const TTLS: [u32; 6] = [60, 300, 300, 600, 3600, 86400];
/// Names whose responses are large (fragmented over UDP).
pub const LARGE_NAMES: u64 = 16;
/// Zones that receive the water-torture attack.
pub const VICTIMS: u64 = 4;

// Hash tags, one per independent attribute.
const T_KIND: u64 = 1;
const T_ZONE: u64 = 2;
const T_WORD: u64 = 3;
const T_TTL: u64 = 4;
const T_COUNT: u64 = 5;
const T_ADDR: u64 = 6;
const T_TARGET: u64 = 7;
const T_HOPS: u64 = 8;
const T_TXT: u64 = 9;
const T_SUB: u64 = 10;

/// What a name is, which decides its query type(s) and answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    A,
    /// Dual-stack web name: queried for A (variant 0) and AAAA (variant 1).
    Web,
    Aaaa,
    /// CNAME chain (1–2 hops) ending at a shared CDN target with A records.
    Cname,
    Mx,
    Txt,
    Ns,
    Ptr,
    Https,
}

/// Cumulative weights (out of 100) for `Kind`.
const KIND_WEIGHTS: [(u64, Kind); 9] = [
    (30, Kind::A),
    (50, Kind::Web),
    (55, Kind::Aaaa),
    (75, Kind::Cname),
    (80, Kind::Mx),
    (85, Kind::Txt),
    (89, Kind::Ns),
    (95, Kind::Ptr),
    (100, Kind::Https),
];

/// One possible answer for a name: the query type and the answer section.
#[derive(Clone, Debug)]
pub struct Answer {
    pub qname: String,
    pub qtype: u16,
    pub records: Vec<Record>,
    /// Records owned by a shared CDN target (counted once per target).
    pub shared_target: Option<u64>,
    /// How many leading `records` belong to this name alone.
    pub own_records: usize,
}

/// The namespace for one seed and size.
#[derive(Clone, Debug)]
pub struct Catalog {
    seed: u64,
    names: u64,
    zones: u64,
    targets: u64,
}

impl Catalog {
    pub fn new(seed: u64, names: u64) -> Self {
        assert!(
            (1..(1 << 24)).contains(&names),
            "names must be in 1..16777216"
        );
        Catalog {
            seed,
            names,
            zones: (names / 16).max(1),
            targets: (names / 20).max(1),
        }
    }

    pub fn names(&self) -> u64 {
        self.names
    }

    /// Number of shared CDN targets.
    pub fn targets(&self) -> u64 {
        self.targets
    }

    /// Number of zones (for SOA bookkeeping).
    pub fn zones(&self) -> u64 {
        self.zones
    }

    fn h(&self, tag: u64, n: u64) -> u64 {
        mix(self.seed, tag, n)
    }

    pub fn kind(&self, n: u64) -> Kind {
        let r = pick(self.h(T_KIND, n), 100);
        KIND_WEIGHTS.iter().find(|(w, _)| r < *w).unwrap().1
    }

    /// How many query types the name is asked for.
    pub fn variants(&self, n: u64) -> u64 {
        if self.kind(n) == Kind::Web { 2 } else { 1 }
    }

    pub fn zone(&self, n: u64) -> u64 {
        pick(self.h(T_ZONE, n), self.zones)
    }

    fn zone_name(&self, k: u64) -> String {
        format!("example-{k}.com")
    }

    /// The query name of name `n` (lowercase, no trailing dot).
    pub fn qname(&self, n: u64) -> String {
        if self.kind(n) == Kind::Ptr {
            format!("{}.{}.{}.10.in-addr.arpa", n & 255, (n >> 8) & 255, n >> 16)
        } else {
            let word = WORDS[pick(self.h(T_WORD, n), WORDS.len() as u64) as usize];
            let sub = pick(self.h(T_SUB, n), 64);
            format!("{word}{n}.d{sub}.{}", self.zone_name(self.zone(n)))
        }
    }

    fn ttl(&self, n: u64) -> u32 {
        TTLS[pick(self.h(T_TTL, n), TTLS.len() as u64) as usize]
    }

    /// Between 1 and `max` items, skewed towards 1.
    fn count(&self, tag: u64, n: u64, max: u64) -> u64 {
        let r = pick(self.h(T_COUNT ^ (tag << 8), n), 100);
        match max {
            1 => 1,
            2 => 1 + (r >= 70) as u64,
            _ => (if r < 50 {
                1
            } else if r < 75 {
                2
            } else if r < 90 {
                3
            } else {
                4
            })
            .min(max),
        }
    }

    /// `count` distinct public-looking IPv4 addresses for (tag, n).
    fn v4s(&self, tag: u64, n: u64, count: u64) -> Vec<[u8; 4]> {
        let h = self.h(T_ADDR ^ (tag << 8), n);
        let first = [23u8, 34, 52, 93, 104, 142, 151, 185, 199, 203][pick(h, 10) as usize];
        let b = (h >> 8) as u8;
        let c = (h >> 16) as u8;
        let d = ((h >> 24) as u8) % 200 + 1;
        (0..count).map(|i| [first, b, c, d + i as u8]).collect()
    }

    fn v6s(&self, n: u64, count: u64) -> Vec<[u8; 16]> {
        let h = self.h(T_ADDR ^ (99 << 8), n);
        (0..count)
            .map(|i| {
                let mut a = [0u8; 16];
                a[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
                a[4..12].copy_from_slice(&h.to_be_bytes());
                a[15] = 1 + i as u8;
                a
            })
            .collect()
    }

    /// Answer for name `n`, variant `v` (0 unless `variants(n) == 2`).
    pub fn answer(&self, n: u64, v: u64) -> Answer {
        let qname = self.qname(n);
        let ttl = self.ttl(n);
        let zone = self.zone_name(self.zone(n));
        let rec = |data| Record {
            owner: qname.clone(),
            ttl,
            data,
        };
        let mut shared_target = None;
        let (qtype, records) = match (self.kind(n), v) {
            (Kind::A, _) | (Kind::Web, 0) => (
                rtype::A,
                self.v4s(0, n, self.count(1, n, 4))
                    .into_iter()
                    .map(|a| rec(RData::A(a)))
                    .collect(),
            ),
            (Kind::Aaaa, _) | (Kind::Web, _) => (
                rtype::AAAA,
                self.v6s(n, self.count(2, n, 2))
                    .into_iter()
                    .map(|a| rec(RData::Aaaa(a)))
                    .collect(),
            ),
            (Kind::Cname, _) => {
                let t = pick(self.h(T_TARGET, n), self.targets);
                shared_target = Some(t);
                let target = self.target_name(t);
                let mut recs = Vec::new();
                if pick(self.h(T_HOPS, n), 10) < 3 {
                    let mid = format!("{qname}.edgekey.net");
                    recs.push(rec(RData::Cname(mid.clone())));
                    recs.push(Record {
                        owner: mid,
                        ttl: 300,
                        data: RData::Cname(target),
                    });
                } else {
                    recs.push(rec(RData::Cname(target)));
                }
                (rtype::A, recs)
            }
            (Kind::Mx, _) => (
                rtype::MX,
                (0..self.count(3, n, 2))
                    .map(|i| {
                        rec(RData::Mx(
                            10 * (i as u16 + 1),
                            format!("mx{}.{zone}", i + 1),
                        ))
                    })
                    .collect(),
            ),
            (Kind::Txt, _) => {
                let h = self.h(T_TXT, n);
                let s = if h & 1 == 0 {
                    format!("v=spf1 include:_spf.{zone} ~all")
                } else {
                    format!("site-verification={h:016x}{:016x}", h.rotate_left(17))
                };
                (rtype::TXT, vec![rec(RData::Txt(vec![s.into_bytes()]))])
            }
            (Kind::Ns, _) => (
                rtype::NS,
                (0..self.count(4, n, 4) + 1)
                    .map(|i| rec(RData::Ns(format!("ns{}.{zone}", i + 1))))
                    .collect(),
            ),
            (Kind::Ptr, _) => (
                rtype::PTR,
                vec![rec(RData::Ptr(format!("host-{n}.{zone}")))],
            ),
            (Kind::Https, _) => (
                rtype::HTTPS,
                vec![rec(RData::Https {
                    priority: 1,
                    target: ".".into(),
                    alpn: vec!["h2", "h3"],
                    ipv4hint: self.v4s(5, n, self.count(5, n, 2)),
                })],
            ),
        };
        let own_records = records.len();
        let mut records = records;
        if let Some(t) = shared_target {
            records.extend(self.target_records(t));
        }
        Answer {
            qname,
            qtype,
            records,
            shared_target,
            own_records,
        }
    }

    fn target_name(&self, t: u64) -> String {
        format!("e{t}.a.cdn-{}.net", t % 8)
    }

    /// A records of shared CDN target `t`.
    pub fn target_records(&self, t: u64) -> Vec<Record> {
        let owner = self.target_name(t);
        self.v4s(7, t ^ (1 << 40), self.count(6, t ^ (1 << 40), 2))
            .into_iter()
            .map(|a| Record {
                owner: owner.clone(),
                ttl: 20,
                data: RData::A(a),
            })
            .collect()
    }

    /// Answer for large name `i` (< `LARGE_NAMES`): ≥ 3000 bytes on the wire.
    pub fn large_answer(&self, i: u64) -> Answer {
        let qname = format!("big{i}.bulk-data.com");
        let (qtype, records) = if i.is_multiple_of(2) {
            let strings = (0..13)
                .map(|j| format!("{i:02}-{j:02}-{}", "k".repeat(240)).into_bytes())
                .collect();
            (
                rtype::TXT,
                vec![Record {
                    owner: qname.clone(),
                    ttl: 300,
                    data: RData::Txt(strings),
                }],
            )
        } else {
            let recs = (0..200u32)
                .map(|j| Record {
                    owner: qname.clone(),
                    ttl: 60,
                    data: RData::A([198, 18 + (i as u8 & 1), (j >> 8) as u8 + i as u8, j as u8]),
                })
                .collect();
            (rtype::A, recs)
        };
        let own_records = records.len();
        Answer {
            qname,
            qtype,
            records,
            shared_target: None,
            own_records,
        }
    }

    /// Non-existent name for pool index `n`, in an existing zone.
    pub fn nx_qname(&self, n: u64) -> (String, u64) {
        let word = WORDS[pick(self.h(T_WORD, n), WORDS.len() as u64) as usize];
        let zone = self.zone(n);
        (format!("{word}-{n}-nx.{}", self.zone_name(zone)), zone)
    }

    /// SOA record (for authority sections) of zone `k`, or of victim zone
    /// `k - zones()` when `k ≥ zones()`.
    pub fn soa(&self, k: u64) -> Record {
        let zone = if k < self.zones {
            self.zone_name(k)
        } else {
            format!("victim-{}.com", k - self.zones)
        };
        Record {
            owner: zone.clone(),
            ttl: 300,
            data: RData::Soa {
                mname: format!("ns1.{zone}"),
                rname: format!("hostmaster.{zone}"),
                serial: 2023110100 + (k % 97) as u32,
                times: [7200, 900, 1_209_600, 300],
            },
        }
    }
}

/// Base-36 label of fixed width 13, unique per `x` (13 digits cover `u64`).
pub fn base36_label(mut x: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = [b'0'; 13];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(x % 36) as usize];
        x /= 36;
    }
    String::from_utf8(out.to_vec()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn qnames_unique_and_lowercase() {
        let c = Catalog::new(1, 5000);
        let mut seen = HashSet::new();
        for n in 0..5000 {
            let q = c.qname(n);
            assert_eq!(q, q.to_ascii_lowercase());
            assert!(seen.insert(q));
        }
    }

    #[test]
    fn every_kind_appears() {
        let c = Catalog::new(3, 2000);
        let kinds: HashSet<_> = (0..2000).map(|n| format!("{:?}", c.kind(n))).collect();
        assert_eq!(kinds.len(), 9);
    }

    #[test]
    fn records_distinct_within_name() {
        let c = Catalog::new(5, 3000);
        for n in 0..3000 {
            for v in 0..c.variants(n) {
                let a = c.answer(n, v);
                let set: HashSet<_> = a.records.iter().map(|r| format!("{r:?}")).collect();
                assert_eq!(set.len(), a.records.len());
            }
        }
    }

    #[test]
    fn base36_is_fixed_width() {
        assert_eq!(base36_label(0), "0000000000000");
        assert_eq!(base36_label(u64::MAX).len(), 13);
    }
}
