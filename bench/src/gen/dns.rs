//! Minimal DNS wire encoder with name compression.
//!
//! The generator encodes each name's response once and patches copies, so
//! the encoder only needs to be correct, not fast. It is hand-written rather
//! than built on `domain`'s `MessageBuilder` so that the exact bytes (and thus
//! the reproducibility promise) do not move with a dependency upgrade; the
//! tests parse everything it produces with `domain` instead.

/// Record types the generator emits.
pub mod rtype {
    pub const A: u16 = 1;
    pub const NS: u16 = 2;
    pub const CNAME: u16 = 5;
    pub const SOA: u16 = 6;
    pub const PTR: u16 = 12;
    pub const MX: u16 = 15;
    pub const TXT: u16 = 16;
    pub const AAAA: u16 = 28;
    pub const OPT: u16 = 41;
    pub const HTTPS: u16 = 65;

    /// Mnemonic for reports.
    pub fn name(t: u16) -> &'static str {
        match t {
            A => "A",
            NS => "NS",
            CNAME => "CNAME",
            SOA => "SOA",
            PTR => "PTR",
            MX => "MX",
            TXT => "TXT",
            AAAA => "AAAA",
            OPT => "OPT",
            HTTPS => "HTTPS",
            _ => "OTHER",
        }
    }
}

/// Header flags: standard query with RD.
pub const FLAGS_QUERY: u16 = 0x0100;
/// Header flags: response, RD+RA, NOERROR.
pub const FLAGS_RESPONSE: u16 = 0x8180;
/// RCODE for NXDOMAIN.
pub const RCODE_NXDOMAIN: u16 = 3;

/// Record data in presentation-independent form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RData {
    A([u8; 4]),
    Aaaa([u8; 16]),
    Cname(String),
    Ns(String),
    Ptr(String),
    Mx(u16, String),
    Txt(Vec<Vec<u8>>),
    Soa {
        mname: String,
        rname: String,
        serial: u32,
        times: [u32; 4],
    },
    /// HTTPS with target name and `alpn` plus `ipv4hint` parameters.
    Https {
        priority: u16,
        target: String,
        alpn: Vec<&'static str>,
        ipv4hint: Vec<[u8; 4]>,
    },
}

impl RData {
    pub fn rtype(&self) -> u16 {
        match self {
            RData::A(_) => rtype::A,
            RData::Aaaa(_) => rtype::AAAA,
            RData::Cname(_) => rtype::CNAME,
            RData::Ns(_) => rtype::NS,
            RData::Ptr(_) => rtype::PTR,
            RData::Mx(..) => rtype::MX,
            RData::Txt(_) => rtype::TXT,
            RData::Soa { .. } => rtype::SOA,
            RData::Https { .. } => rtype::HTTPS,
        }
    }
}

/// A resource record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub owner: String,
    pub ttl: u32,
    pub data: RData,
}

/// Converts a dotted lowercase name (no trailing dot; "" or "." is the root)
/// to uncompressed wire format.
pub fn wire_name(dotted: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(dotted.len() + 2);
    for label in dotted.split('.').filter(|l| !l.is_empty()) {
        debug_assert!(label.len() < 64, "label too long: {label}");
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    out
}

/// Message sections, in the order they must be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

/// Builds one DNS message; remembers written name suffixes for compression.
pub struct MsgBuilder {
    buf: Vec<u8>,
    /// (uncompressed wire suffix, offset) of every compressible name suffix written so far.
    suffixes: Vec<(Vec<u8>, u16)>,
    counts: [u16; 4],
    section: Section,
}

impl MsgBuilder {
    pub fn new(id: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        buf.extend_from_slice(&[0; 8]);
        MsgBuilder {
            buf,
            suffixes: Vec::new(),
            counts: [0; 4],
            section: Section::Answer,
        }
    }

    /// Writes the question; call once, before any record.
    pub fn question(&mut self, qname: &str, qtype: u16) {
        debug_assert_eq!(self.counts, [0; 4]);
        self.name(&wire_name(qname), true);
        self.u16(qtype);
        self.u16(1);
        self.counts[0] = 1;
    }

    /// Offset just past the question (valid right after `question`).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends a record to `section` (sections must not go backwards).
    pub fn record(&mut self, section: Section, rec: &Record) {
        assert!(section >= self.section, "sections out of order");
        self.section = section;
        self.name(&wire_name(&rec.owner), true);
        self.u16(rec.data.rtype());
        self.u16(1);
        self.buf.extend_from_slice(&rec.ttl.to_be_bytes());
        let len_at = self.buf.len();
        self.u16(0);
        match &rec.data {
            RData::A(a) => self.buf.extend_from_slice(a),
            RData::Aaaa(a) => self.buf.extend_from_slice(a),
            RData::Cname(n) | RData::Ns(n) | RData::Ptr(n) => self.name(&wire_name(n), true),
            RData::Mx(pref, n) => {
                self.u16(*pref);
                self.name(&wire_name(n), true);
            }
            RData::Txt(strings) => {
                for s in strings {
                    assert!(s.len() < 256);
                    self.buf.push(s.len() as u8);
                    self.buf.extend_from_slice(s);
                }
            }
            RData::Soa {
                mname,
                rname,
                serial,
                times,
            } => {
                self.name(&wire_name(mname), true);
                self.name(&wire_name(rname), true);
                self.buf.extend_from_slice(&serial.to_be_bytes());
                for t in times {
                    self.buf.extend_from_slice(&t.to_be_bytes());
                }
            }
            RData::Https {
                priority,
                target,
                alpn,
                ipv4hint,
            } => {
                self.u16(*priority);
                // RFC 9460: the target name is never compressed.
                self.name(&wire_name(target), false);
                if !alpn.is_empty() {
                    self.u16(1);
                    let len: usize = alpn.iter().map(|a| a.len() + 1).sum();
                    self.u16(len as u16);
                    for a in alpn {
                        self.buf.push(a.len() as u8);
                        self.buf.extend_from_slice(a.as_bytes());
                    }
                }
                if !ipv4hint.is_empty() {
                    self.u16(4);
                    self.u16(4 * ipv4hint.len() as u16);
                    for a in ipv4hint {
                        self.buf.extend_from_slice(a);
                    }
                }
            }
        }
        let rdlen = (self.buf.len() - len_at - 2) as u16;
        self.buf[len_at..len_at + 2].copy_from_slice(&rdlen.to_be_bytes());
        self.counts[1 + section as usize] += 1;
    }

    /// Finishes the message, filling in the section counts.
    pub fn finish(mut self) -> Vec<u8> {
        for (i, c) in self.counts.iter().enumerate() {
            self.buf[4 + 2 * i..6 + 2 * i].copy_from_slice(&c.to_be_bytes());
        }
        self.buf
    }

    fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    /// Writes a wire-format name, replacing the longest already-written
    /// suffix with a pointer when `compress`; remembers new suffixes.
    fn name(&mut self, wire: &[u8], compress: bool) {
        let mut pos = 0;
        while wire[pos] != 0 {
            let suffix = &wire[pos..];
            if compress && let Some(&(_, off)) = self.suffixes.iter().find(|(s, _)| s == suffix) {
                self.u16(0xC000 | off);
                return;
            }
            let here = self.buf.len();
            if here < 0x3FFF {
                self.suffixes.push((suffix.to_vec(), here as u16));
            }
            let len = wire[pos] as usize;
            self.buf.extend_from_slice(&wire[pos..pos + 1 + len]);
            pos += 1 + len;
        }
        self.buf.push(0);
    }
}

/// Wire bytes of an OPT pseudo-record (root owner, no options).
pub fn opt_record(udp_size: u16, dnssec_ok: bool) -> [u8; 11] {
    let s = udp_size.to_be_bytes();
    let flags = if dnssec_ok { 0x80 } else { 0 };
    [0, 0, 41, s[0], s[1], 0, 0, flags, 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names() {
        assert_eq!(wire_name(""), vec![0]);
        assert_eq!(wire_name("."), vec![0]);
        assert_eq!(wire_name("a.bc"), vec![1, b'a', 2, b'b', b'c', 0]);
    }

    #[test]
    fn owner_compresses_to_question() {
        let mut b = MsgBuilder::new(1, FLAGS_RESPONSE);
        b.question("www.example.com", rtype::A);
        let qend = b.len();
        b.record(
            Section::Answer,
            &Record {
                owner: "www.example.com".into(),
                ttl: 60,
                data: RData::A([1, 2, 3, 4]),
            },
        );
        let m = b.finish();
        assert_eq!(&m[qend..qend + 2], &[0xC0, 12]);
        assert_eq!(&m[6..8], &[0, 1]);
    }
}
