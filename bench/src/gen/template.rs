//! Pre-encoded responses, built once per name and patched per exchange.
//!
//! Encoding a message costs far more than copying one, so each (name,
//! variant) response is encoded on first use and kept for the most popular
//! names (bounded, so memory stays constant for any name count). A query is
//! the template's header + question with query flags; both are then patched
//! for ID, EDNS and 0x20 case.

use super::dns::{FLAGS_RESPONSE, MsgBuilder, RCODE_NXDOMAIN, Record, Section};
use super::names::{Answer, Catalog};

/// Names with index below this have their templates cached.
pub const CACHE_NAMES: u64 = 1 << 18;

/// A response message (ARCOUNT 0, no OPT) plus what the manifest needs.
#[derive(Clone, Debug)]
pub struct Template {
    pub bytes: Box<[u8]>,
    /// Offset just past the question section.
    pub qend: u16,
    pub qtype: u16,
    pub acct: Accounting,
}

/// What a response contributes to the manifest's distinct-record counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Type and number of answer records owned by this name.
    pub own_type: u16,
    pub own_count: u16,
    /// Shared CDN target whose A records follow, if any.
    pub target: Option<u32>,
    pub target_count: u16,
}

impl Template {
    pub fn from_answer(a: &Answer) -> Self {
        let mut b = MsgBuilder::new(0, FLAGS_RESPONSE);
        b.question(&a.qname, a.qtype);
        let qend = b.len() as u16;
        for r in &a.records {
            b.record(Section::Answer, r);
        }
        Template {
            bytes: b.finish().into_boxed_slice(),
            qend,
            qtype: a.qtype,
            acct: Accounting {
                own_type: a.records.first().map_or(0, |r| r.data.rtype()),
                own_count: a.own_records as u16,
                target: a.shared_target.map(|t| t as u32),
                target_count: (a.records.len() - a.own_records) as u16,
            },
        }
    }

    /// NXDOMAIN response for `qname` with `soa` in the authority section.
    pub fn nxdomain(qname: &str, qtype: u16, soa: &Record) -> Self {
        let mut b = MsgBuilder::new(0, FLAGS_RESPONSE | RCODE_NXDOMAIN);
        b.question(qname, qtype);
        let qend = b.len() as u16;
        b.record(Section::Authority, soa);
        Template {
            bytes: b.finish().into_boxed_slice(),
            qend,
            qtype,
            acct: Accounting::default(),
        }
    }
}

/// Lazily filled templates for popular names, large names and torture zones.
pub struct Templates {
    catalog: Catalog,
    names: Vec<Option<Template>>,
    large: Vec<Option<Template>>,
}

impl Templates {
    pub fn new(catalog: Catalog) -> Self {
        let cached = catalog.names().min(CACHE_NAMES) as usize;
        Templates {
            catalog,
            names: vec![None; cached * 2],
            large: vec![None; super::names::LARGE_NAMES as usize],
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Template for name `n`, variant `v`; `scratch` holds it when uncached.
    pub fn name<'a>(
        &'a mut self,
        n: u64,
        v: u64,
        scratch: &'a mut Option<Template>,
    ) -> &'a Template {
        let slot = (n * 2 + v) as usize;
        if slot < self.names.len() {
            let cat = &self.catalog;
            self.names[slot].get_or_insert_with(|| Template::from_answer(&cat.answer(n, v)))
        } else {
            scratch.insert(Template::from_answer(&self.catalog.answer(n, v)))
        }
    }

    pub fn large(&mut self, i: u64) -> &Template {
        let cat = &self.catalog;
        self.large[i as usize].get_or_insert_with(|| Template::from_answer(&cat.large_answer(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_templates_are_large() {
        let mut t = Templates::new(Catalog::new(1, 100));
        for i in 0..super::super::names::LARGE_NAMES {
            assert!(t.large(i).bytes.len() >= 3000);
        }
    }
}
