//! Ground truth about what a generated file contains.
//!
//! The sensor's store is checked against these numbers, so they are counted
//! from what was actually emitted (a name drawn for a query whose response
//! never made it into the file does not count). Bitsets over name indices
//! keep this exact and constant-size for any packet count.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Config;
use super::dns::rtype;
use super::names::{Catalog, LARGE_NAMES, VICTIMS};
use super::template::Accounting;

/// Fixed-size bitset; `insert` reports whether the bit was new.
#[derive(Clone, Debug)]
pub struct BitSet(Vec<u64>);

impl BitSet {
    pub fn new(bits: u64) -> Self {
        BitSet(vec![0; bits.div_ceil(64) as usize])
    }

    #[inline]
    pub fn insert(&mut self, i: u64) -> bool {
        let (w, b) = ((i / 64) as usize, 1u64 << (i % 64));
        let new = self.0[w] & b == 0;
        self.0[w] |= b;
        new
    }

    pub fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|w| w.count_ones() as u64).sum()
    }
}

/// Counts distinct answer records and NXDOMAIN pairs as responses are written.
pub struct Tracker {
    names: BitSet,
    targets: BitSet,
    large: BitSet,
    nx: BitSet,
    soa: BitSet,
    name_count: u64,
    answer_records: u64,
    by_type: BTreeMap<u16, u64>,
    nx_pairs: u64,
    torture_queries: u64,
}

impl Tracker {
    pub fn new(cat: &Catalog) -> Self {
        Tracker {
            names: BitSet::new(cat.names() * 2),
            targets: BitSet::new(cat.targets()),
            large: BitSet::new(LARGE_NAMES),
            nx: BitSet::new(cat.names() * 2),
            soa: BitSet::new(cat.zones() + VICTIMS),
            name_count: cat.names(),
            answer_records: 0,
            by_type: BTreeMap::new(),
            nx_pairs: 0,
            torture_queries: 0,
        }
    }

    fn add(&mut self, t: u16, n: u64) {
        if n > 0 {
            self.answer_records += n;
            *self.by_type.entry(t).or_default() += n;
        }
    }

    fn add_template(&mut self, t: &Accounting) {
        self.add(t.own_type, t.own_count as u64);
        if let Some(target) = t.target
            && self.targets.insert(target as u64)
        {
            self.add(rtype::A, t.target_count as u64);
        }
    }

    /// A positive response for name `n`, variant `v` was written.
    pub fn name(&mut self, n: u64, v: u64, t: &Accounting) {
        if self.names.insert(n * 2 + v) {
            self.add_template(t);
        }
    }

    pub fn large(&mut self, i: u64, t: &Accounting) {
        if self.large.insert(i) {
            self.add_template(t);
        }
    }

    /// An NXDOMAIN for nx-pool name `n` (`aaaa`: qtype AAAA, else A) in zone `zone`.
    pub fn nx(&mut self, n: u64, aaaa: bool, zone: u64) {
        if self.nx.insert(n * 2 + aaaa as u64) {
            self.nx_pairs += 1;
        }
        self.soa.insert(zone);
    }

    /// A water-torture NXDOMAIN (unique qname) in victim zone `victim`.
    pub fn torture(&mut self, victim: u64, zones: u64) {
        self.torture_queries += 1;
        self.nx_pairs += 1;
        self.soa.insert(zones + victim);
    }

    fn distinct_pairs(set: &BitSet, n: u64) -> u64 {
        (0..n)
            .filter(|&i| set.get(2 * i) || set.get(2 * i + 1))
            .count() as u64
    }

    pub fn counts(&self) -> Counts {
        let answered = Self::distinct_pairs(&self.names, self.name_count);
        let nx = Self::distinct_pairs(&self.nx, self.name_count);
        Counts {
            answer_records: self.answer_records,
            answer_records_by_type: self
                .by_type
                .iter()
                .map(|(t, n)| (rtype::name(*t).to_string(), *n))
                .collect(),
            nxdomain_pairs: self.nx_pairs,
            authority_soa_records: self.soa.count(),
            distinct_answered_qnames: answered + self.large.count(),
            distinct_nxdomain_qnames: nx + self.torture_queries,
        }
    }
}

/// Distinct-content figures of one generated file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Distinct (owner, type, rdata) in answer sections; names lowercased.
    pub answer_records: u64,
    pub answer_records_by_type: BTreeMap<String, u64>,
    /// Distinct (qname, qtype) answered NXDOMAIN; qnames lowercased.
    pub nxdomain_pairs: u64,
    /// Distinct SOA records seen in NXDOMAIN authority sections.
    pub authority_soa_records: u64,
    pub distinct_answered_qnames: u64,
    pub distinct_nxdomain_qnames: u64,
}

/// Totals of one generated file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Summary {
    pub packets: u64,
    pub queries: u64,
    pub responses: u64,
    pub nxdomain_responses: u64,
    pub tcp_exchanges: u64,
    pub fragmented_responses: u64,
    pub bytes: u64,
    #[serde(flatten)]
    pub counts: Counts,
}

impl Summary {
    pub fn distinct_names(&self) -> u64 {
        self.counts.distinct_answered_qnames + self.counts.distinct_nxdomain_qnames
    }

    /// The one-line human summary printed by `bench gen`.
    pub fn line(&self) -> String {
        format!(
            "packets={} queries={} responses={} distinct_names={} bytes={} answer_records={} nxdomain_pairs={}",
            self.packets,
            self.queries,
            self.responses,
            self.distinct_names(),
            self.bytes,
            self.counts.answer_records,
            self.counts.nxdomain_pairs
        )
    }
}

/// The `--manifest` file.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest<'a> {
    pub format: &'static str,
    pub version: u32,
    pub file: String,
    pub params: &'a Config,
    #[serde(flatten)]
    pub summary: &'a Summary,
}

impl<'a> Manifest<'a> {
    pub fn new(file: String, params: &'a Config, summary: &'a Summary) -> Self {
        Manifest {
            format: "pdns-bench-manifest",
            version: 1,
            file,
            params,
            summary,
        }
    }
}

/// A manifest read back from disk.
#[derive(Clone, Debug, Deserialize)]
pub struct ManifestFile {
    pub format: String,
    pub version: u32,
    pub params: Config,
    #[serde(flatten)]
    pub summary: Summary,
}
