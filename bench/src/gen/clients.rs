//! The client population and the resolver's addresses.
//!
//! Each client is one address/port pair derived from its index by hashing,
//! so any number of clients costs no memory and the IPv4/IPv6 split is a
//! fixed per-client property, as it is for real stub resolvers.

use super::packet::{Endpoint, Ip};
use super::rng::{mix, pick};

const T_FAMILY: u64 = 100;
const T_PORT: u64 = 101;

pub const RESOLVER_V4: [u8; 4] = [10, 255, 255, 1];
pub const RESOLVER_V6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x53];
const RESOLVER_MAC: [u8; 6] = [0x02, 0x53, 0x53, 0x53, 0x53, 0x01];

/// Client endpoints for one seed.
#[derive(Clone, Debug)]
pub struct Clients {
    seed: u64,
    count: u64,
    ipv6_share: f64,
    first_v4: Option<u64>,
}

impl Clients {
    pub fn new(seed: u64, count: u64, ipv6_share: f64) -> Self {
        assert!(
            (1..(1 << 24) - 512).contains(&count),
            "clients must be in 1..16776704"
        );
        let mut c = Clients {
            seed,
            count,
            ipv6_share,
            first_v4: None,
        };
        c.first_v4 = (0..count).find(|&i| !c.is_v6(i));
        c
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn is_v6(&self, i: u64) -> bool {
        (pick(mix(self.seed, T_FAMILY, i), 1 << 53) as f64 / (1u64 << 53) as f64) < self.ipv6_share
    }

    /// `i` if it is an IPv4 client, else the next IPv4 client (wrapping);
    /// `None` if there are no IPv4 clients at all.
    pub fn v4_from(&self, i: u64) -> Option<u64> {
        self.first_v4?;
        (0..self.count)
            .map(|k| (i + k) % self.count)
            .find(|&j| !self.is_v6(j))
    }

    pub fn endpoint(&self, i: u64) -> Endpoint {
        let port = 1024 + pick(mix(self.seed, T_PORT, i), 64_511) as u16;
        let a = 0x0A00_0100u32 + i as u32;
        let mac = [
            0x02,
            0x00,
            (i >> 24) as u8,
            (i >> 16) as u8,
            (i >> 8) as u8,
            i as u8,
        ];
        let ip = if self.is_v6(i) {
            let mut v6 = [0u8; 16];
            v6[0] = 0xfd;
            v6[1] = 0x00;
            v6[8..].copy_from_slice(&mix(self.seed, T_FAMILY + 1, i).to_be_bytes());
            v6[12..].copy_from_slice(&(i as u32).to_be_bytes());
            Ip::V6(v6)
        } else {
            Ip::V4(a.to_be_bytes())
        };
        Endpoint { mac, ip, port }
    }

    /// The resolver endpoint matching the client's family.
    pub fn resolver_for(client: &Endpoint) -> Endpoint {
        let ip = match client.ip {
            Ip::V4(_) => Ip::V4(RESOLVER_V4),
            Ip::V6(_) => Ip::V6(RESOLVER_V6),
        };
        Endpoint {
            mac: RESOLVER_MAC,
            ip,
            port: 53,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_share_and_uniqueness() {
        let c = Clients::new(1, 10_000, 0.2);
        let v6 = (0..10_000).filter(|&i| c.is_v6(i)).count();
        assert!((1700..2300).contains(&v6), "{v6}");
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000 {
            let e = c.endpoint(i);
            assert!(seen.insert((e.ip, e.port)));
            if let Ip::V4(a) = e.ip {
                assert_eq!(a[0], 10);
                assert_ne!(a, RESOLVER_V4);
            }
        }
    }

    #[test]
    fn all_v6_has_no_v4() {
        let c = Clients::new(1, 50, 1.0);
        assert_eq!(c.v4_from(3), None);
    }
}
