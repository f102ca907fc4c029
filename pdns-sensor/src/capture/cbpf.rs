//! The classic BPF fallback filter, for kernels (or privileges) that cannot
//! load the eBPF program.
//!
//! It keeps what the eBPF filter keeps, as far as classic BPF can express
//! it: Ethernet with up to two in-band VLAN tags (0x8100, 0x88a8, 0x9100),
//! IPv4 with any IHL and IPv6, UDP or TCP with a watched source or
//! destination port, and non-first fragments (IPv4 fragment offset, or an
//! IPv6 fragment header right after the fixed header). Classic BPF has no
//! loops, so IPv6 is followed through at most one extension header
//! (hop-by-hop, routing or destination options) or one fragment header;
//! longer chains are dropped. Everything else is dropped.
//!
//! Tunnels: classic BPF cannot follow a variable-length chain of headers
//! (Geneve options, GRE flags, VLAN tags and IPv4 options inside, all with
//! one index register), so tunnel traffic is kept whole, not looked into:
//! UDP to a VXLAN or Geneve destination port and, unless `--no-tunnels`,
//! GRE (IP protocol 47, ERSPAN included), wherever UDP and TCP are looked
//! at (IPv4, IPv6 directly or after one extension or fragment header). It
//! never rejects tunnelled DNS; the userspace decoder opens the tunnels and
//! counts what it drops. On a mirror session carrying mostly non-DNS
//! traffic that costs ring space the eBPF filter would save, which is why
//! the fallback says so when it is taken.
//!
//! Interface: the capture sockets are bound to every device of the network
//! namespace (see `super::filter` and `pdns_common::IFINDEX_MAP`), so the
//! program's first check is the device the packet came through
//! (`SKF_AD_IFINDEX`): another device's packet is dropped before anything
//! else is looked at. Classic BPF has no maps; when the interface's index
//! changes, the ring thread attaches a new program.
//!
//! The program is generated for the port set (one `jeq` per port and
//! direction) by a small assembler with labels (`Asm`), which checks that
//! every conditional jump fits the 8-bit offsets classic BPF allows.

use std::collections::HashMap;
use std::io;

use super::filter::Tunnels;
use super::socket::PacketSocket;

/// Keep the whole packet.
const ACCEPT: u32 = u32::MAX;

// Classic BPF opcodes (linux/filter.h).
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const LD_H_IND: u16 = 0x48;
const LDX_IMM: u16 = 0x01;
const LDX_B_MSH: u16 = 0xb1;
const ALU_ADD_K: u16 = 0x04;
const ALU_LSH_K: u16 = 0x64;
const TAX: u16 = 0x07;
const JA: u16 = 0x05;
const JEQ_K: u16 = 0x15;
const JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

/// `SKF_AD_OFF + SKF_AD_IFINDEX` (linux/filter.h): a load from this offset
/// reads the index of the device the packet came through.
const AD_IFINDEX: u32 = (-0x1000i32) as u32 + 8;

type Label = usize;

enum Item {
    Stmt(u16, u32),
    Jump {
        code: u16,
        k: u32,
        jt: Label,
        jf: Label,
    },
    Ja(Label),
    Mark(Label),
}

/// A classic BPF assembler with forward labels.
#[derive(Default)]
struct Asm {
    items: Vec<Item>,
    labels: usize,
}

impl Asm {
    fn label(&mut self) -> Label {
        self.labels += 1;
        self.labels
    }
    fn mark(&mut self, l: Label) {
        self.items.push(Item::Mark(l));
    }
    fn stmt(&mut self, code: u16, k: u32) {
        self.items.push(Item::Stmt(code, k));
    }
    fn jump(&mut self, code: u16, k: u32, jt: Label, jf: Label) {
        self.items.push(Item::Jump { code, k, jt, jf });
    }
    fn ja(&mut self, l: Label) {
        self.items.push(Item::Ja(l));
    }
    fn assemble(self) -> Result<Vec<libc::sock_filter>, String> {
        let mut at = HashMap::new();
        let mut pc = 0usize;
        for item in &self.items {
            match item {
                Item::Mark(l) => {
                    at.insert(*l, pc);
                }
                _ => pc += 1,
            }
        }
        let rel = |from: usize, to: Label| -> Result<usize, String> {
            let target = *at.get(&to).ok_or("undefined label")?;
            target
                .checked_sub(from + 1)
                .ok_or_else(|| "backward jump".to_string())
        };
        let mut out = Vec::with_capacity(pc);
        for item in &self.items {
            let pc = out.len();
            let ins = match *item {
                Item::Mark(_) => continue,
                Item::Stmt(code, k) => libc::sock_filter {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                },
                Item::Ja(l) => libc::sock_filter {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: rel(pc, l)? as u32,
                },
                Item::Jump { code, k, jt, jf } => {
                    let (t, f) = (rel(pc, jt)?, rel(pc, jf)?);
                    if t > 255 || f > 255 {
                        return Err(format!("jump too far at {pc}: {t}/{f}"));
                    }
                    libc::sock_filter {
                        code,
                        jt: t as u8,
                        jf: f as u8,
                        k,
                    }
                }
            };
            out.push(ins);
        }
        if out.len() > 4096 {
            return Err(format!("program too long ({} instructions)", out.len()));
        }
        Ok(out)
    }

    /// Accepts if the 16-bit word loaded by `load_src` or `load_dst` is a
    /// watched port, else rejects. Self-contained: all jumps are local.
    fn ports(&mut self, ports: &[u16], load: [(u16, u32); 2]) {
        let accept = self.label();
        let reject = self.label();
        for (i, (code, k)) in load.into_iter().enumerate() {
            self.stmt(code, k);
            for (j, &p) in ports.iter().enumerate() {
                if i == 1 && j + 1 == ports.len() {
                    self.jump(JEQ_K, p as u32, accept, reject);
                } else {
                    let next = self.label();
                    self.jump(JEQ_K, p as u32, accept, next);
                    self.mark(next);
                }
            }
        }
        self.mark(reject);
        self.stmt(RET_K, 0);
        self.mark(accept);
        self.stmt(RET_K, ACCEPT);
    }

    /// Accepts if A is `value`; falls through otherwise (A unchanged).
    fn accept_if(&mut self, value: u32) {
        let (yes, no) = (self.label(), self.label());
        self.jump(JEQ_K, value, yes, no);
        self.mark(yes);
        self.stmt(RET_K, ACCEPT);
        self.mark(no);
    }

    /// Accepts GRE (A is the IP protocol) when tunnels are looked into.
    fn accept_gre(&mut self, t: &Tunnel) {
        if t.gre {
            self.accept_if(IPPROTO_GRE);
        }
    }

    /// Accepts UDP to a tunnel port: reloads the protocol with `proto`; if
    /// UDP, loads the destination port with `dport` and accepts if it is a
    /// VXLAN or Geneve port. Falls through otherwise; X is preserved.
    fn accept_udp_tunnel(&mut self, t: &Tunnel, proto: (u16, u32), dport: (u16, u32)) {
        if t.udp_ports.is_empty() {
            return;
        }
        let (check, skip, accept) = (self.label(), self.label(), self.label());
        self.stmt(proto.0, proto.1);
        self.jump(JEQ_K, 17, check, skip);
        self.mark(check);
        self.stmt(dport.0, dport.1);
        for (j, &p) in t.udp_ports.iter().enumerate() {
            if j + 1 == t.udp_ports.len() {
                self.jump(JEQ_K, p as u32, accept, skip);
            } else {
                let next = self.label();
                self.jump(JEQ_K, p as u32, accept, next);
                self.mark(next);
            }
        }
        self.mark(accept);
        self.stmt(RET_K, ACCEPT);
        self.mark(skip);
    }

    /// Jumps to `yes` if A is UDP or TCP, else falls through to `no`.
    fn udp_or_tcp(&mut self, yes: Label, no: Label) {
        let next = self.label();
        self.jump(JEQ_K, 17, yes, next);
        self.mark(next);
        self.jump(JEQ_K, 6, yes, no);
    }

    /// The IPv4/IPv6 part for an Ethernet payload starting at `l3`; the
    /// EtherType is at `l3 - 2`.
    fn network(&mut self, ports: &[u16], t: &Tunnel, l3: u32) {
        let v4 = self.label();
        let v6 = self.label();
        let reject = self.label();
        let not_v4 = self.label();
        self.stmt(LD_H_ABS, l3 - 2);
        self.jump(JEQ_K, 0x0800, v4, not_v4);
        self.mark(not_v4);
        self.jump(JEQ_K, 0x86dd, v6, reject);
        self.mark(reject);
        self.stmt(RET_K, 0);

        // IPv4
        self.mark(v4);
        let v4_l4 = self.label();
        let v4_reject = self.label();
        self.stmt(LD_B_ABS, l3 + 9);
        self.accept_gre(t);
        self.udp_or_tcp(v4_l4, v4_reject);
        self.mark(v4_reject);
        self.stmt(RET_K, 0);
        self.mark(v4_l4);
        let frag = self.label();
        let whole = self.label();
        self.stmt(LD_H_ABS, l3 + 6);
        self.jump(JSET_K, 0x1fff, frag, whole);
        self.mark(frag);
        self.stmt(RET_K, ACCEPT);
        self.mark(whole);
        self.stmt(LDX_B_MSH, l3);
        self.accept_udp_tunnel(t, (LD_B_ABS, l3 + 9), (LD_H_IND, l3 + 2));
        self.ports(ports, [(LD_H_IND, l3), (LD_H_IND, l3 + 2)]);

        // IPv6
        self.mark(v6);
        let direct = self.label();
        let fragment = self.label();
        let ext = self.label();
        let v6_reject = self.label();
        let (n1, n2, n3, n4) = (self.label(), self.label(), self.label(), self.label());
        self.stmt(LD_B_ABS, l3 + 6);
        self.accept_gre(t);
        self.jump(JEQ_K, 17, direct, n1);
        self.mark(n1);
        self.jump(JEQ_K, 6, direct, n2);
        self.mark(n2);
        self.jump(JEQ_K, 44, fragment, n3);
        self.mark(n3);
        self.jump(JEQ_K, 0, ext, n4);
        self.mark(n4);
        let n5 = self.label();
        self.jump(JEQ_K, 43, ext, n5);
        self.mark(n5);
        self.jump(JEQ_K, 60, ext, v6_reject);
        self.mark(v6_reject);
        self.stmt(RET_K, 0);

        self.mark(direct);
        self.stmt(LDX_IMM, 0);
        self.accept_udp_tunnel(t, (LD_B_ABS, l3 + 6), (LD_H_IND, l3 + 42));
        self.ports(ports, [(LD_H_IND, l3 + 40), (LD_H_IND, l3 + 42)]);

        self.mark(fragment);
        let later = self.label();
        let first = self.label();
        let frag_l4 = self.label();
        let frag_reject = self.label();
        self.stmt(LD_H_ABS, l3 + 42);
        self.jump(JSET_K, 0xfff8, later, first);
        self.mark(later);
        self.stmt(RET_K, ACCEPT);
        self.mark(first);
        self.stmt(LD_B_ABS, l3 + 40);
        self.accept_gre(t);
        self.udp_or_tcp(frag_l4, frag_reject);
        self.mark(frag_reject);
        self.stmt(RET_K, 0);
        self.mark(frag_l4);
        self.stmt(LDX_IMM, 0);
        self.accept_udp_tunnel(t, (LD_B_ABS, l3 + 40), (LD_H_IND, l3 + 50));
        self.ports(ports, [(LD_H_IND, l3 + 48), (LD_H_IND, l3 + 50)]);

        self.mark(ext);
        let ext_l4 = self.label();
        let ext_reject = self.label();
        self.stmt(LD_B_ABS, l3 + 41);
        self.stmt(ALU_ADD_K, 1);
        self.stmt(ALU_LSH_K, 3);
        self.stmt(TAX, 0);
        self.stmt(LD_B_ABS, l3 + 40);
        self.accept_gre(t);
        self.udp_or_tcp(ext_l4, ext_reject);
        self.mark(ext_reject);
        self.stmt(RET_K, 0);
        self.mark(ext_l4);
        self.accept_udp_tunnel(t, (LD_B_ABS, l3 + 40), (LD_H_IND, l3 + 42));
        self.ports(ports, [(LD_H_IND, l3 + 40), (LD_H_IND, l3 + 42)]);
    }
}

/// Jumps to `yes` if A is a VLAN TPID, else to `no`.
fn is_vlan(a: &mut Asm, yes: Label, no: Label) {
    let (n1, n2) = (a.label(), a.label());
    a.jump(JEQ_K, 0x8100, yes, n1);
    a.mark(n1);
    a.jump(JEQ_K, 0x88a8, yes, n2);
    a.mark(n2);
    a.jump(JEQ_K, 0x9100, yes, no);
}

/// What the classic filter keeps whole as tunnel traffic.
struct Tunnel {
    /// VXLAN and Geneve destination ports.
    udp_ports: Vec<u16>,
    gre: bool,
}

const IPPROTO_GRE: u32 = 47;

/// The DNS filter for `ports` (1 to 16 ports), keeping the traffic of
/// `tunnels` whole; with `Some(index)`, only for packets of that device.
pub(super) fn dns_filter(
    ports: &[u16],
    tunnels: &Tunnels,
    ifindex: Option<u32>,
) -> Result<Vec<libc::sock_filter>, String> {
    if ports.is_empty() {
        return Err("no ports".into());
    }
    let t = Tunnel {
        udp_ports: tunnels
            .udp_ports()
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|(p, _)| p)
            .collect(),
        gre: tunnels.gre,
    };
    let mut a = Asm::default();
    let blocks = [a.label(), a.label(), a.label()];
    let (tag1, tag2, to0, to1, to2, reject) = (
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
        a.label(),
    );
    if let Some(index) = ifindex {
        let (ours, other) = (a.label(), a.label());
        a.stmt(LD_W_ABS, AD_IFINDEX);
        a.jump(JEQ_K, index, ours, other);
        a.mark(other);
        a.stmt(RET_K, 0);
        a.mark(ours);
    }
    // Dispatch on the number of in-band tags; far jumps go through `ja`.
    a.stmt(LD_H_ABS, 12);
    is_vlan(&mut a, tag1, to0);
    a.mark(to0);
    a.ja(blocks[0]);
    a.mark(tag1);
    a.stmt(LD_H_ABS, 16);
    is_vlan(&mut a, tag2, to1);
    a.mark(to1);
    a.ja(blocks[1]);
    a.mark(tag2);
    a.stmt(LD_H_ABS, 20);
    is_vlan(&mut a, reject, to2);
    a.mark(to2);
    a.ja(blocks[2]);
    a.mark(reject);
    a.stmt(RET_K, 0);
    for (tags, block) in blocks.into_iter().enumerate() {
        a.mark(block);
        a.network(ports, &t, 14 + 4 * tags as u32);
    }
    a.assemble()
}

/// A program that drops everything (used while sockets are being set up
/// and when capture stops).
pub(super) fn drop_all() -> Vec<libc::sock_filter> {
    vec![libc::sock_filter {
        code: RET_K,
        jt: 0,
        jf: 0,
        k: 0,
    }]
}

/// Attaches a classic program with `SO_ATTACH_FILTER` (replacing any
/// filter the socket had).
pub(super) fn attach(socket: &PacketSocket, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // The kernel copies the program during the call; `program` outlives it.
    socket.setsockopt(libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

#[cfg(test)]
/// Runs a classic program on a packet (the subset [`dns_filter`] emits),
/// for tests: returns the filter's verdict.
pub(super) fn run(program: &[libc::sock_filter], packet: &[u8]) -> u32 {
    run_on(program, packet, 1)
}

#[cfg(test)]
/// [`run`] for a packet that came through device `ifindex`.
pub(super) fn run_on(program: &[libc::sock_filter], packet: &[u8], ifindex: u32) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |off: usize, n: usize| -> Option<u32> {
        let b = packet.get(off..off + n)?;
        Some(b.iter().fold(0u32, |v, &b| (v << 8) | b as u32))
    };
    while let Some(ins) = program.get(pc) {
        pc += 1;
        let k = ins.k;
        match ins.code {
            LD_W_ABS if k == AD_IFINDEX => a = ifindex,
            LD_H_ABS | LD_B_ABS | LD_H_IND => {
                let n = if ins.code == LD_B_ABS { 1 } else { 2 };
                let off = if ins.code == LD_H_IND { x + k } else { k };
                match load(off as usize, n) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            LDX_IMM => x = k,
            LDX_B_MSH => match load(k as usize, 1) {
                Some(v) => x = (v & 0xf) * 4,
                None => return 0,
            },
            ALU_ADD_K => a = a.wrapping_add(k),
            ALU_LSH_K => a <<= k,
            TAX => x = a,
            JA => pc += k as usize,
            JEQ_K | JSET_K => {
                let hit = if ins.code == JEQ_K {
                    a == k
                } else {
                    a & k != 0
                };
                pc += if hit { ins.jt } else { ins.jf } as usize;
            }
            RET_K => return k,
            other => panic!("opcode {other:#x} not emitted by dns_filter"),
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(tags: &[u16], ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut p = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for &t in tags {
            p.extend_from_slice(&t.to_be_bytes());
            p.extend_from_slice(&[0, 100]);
        }
        p.extend_from_slice(&ethertype.to_be_bytes());
        p.extend_from_slice(l3);
        p
    }

    fn ipv4(proto: u8, ihl: u8, frag: u16, sport: u16, dport: u16) -> Vec<u8> {
        let mut h = vec![0u8; ihl as usize * 4];
        h[0] = 0x40 | ihl;
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[9] = proto;
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    fn ipv6(chain: &[(u8, Vec<u8>)], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut h = vec![0u8; 40];
        h[0] = 0x60;
        h[6] = chain.first().map_or(proto, |c| c.0);
        for (i, (_, body)) in chain.iter().enumerate() {
            let next = chain.get(i + 1).map_or(proto, |c| c.0);
            let mut b = body.clone();
            b[0] = next;
            h.extend_from_slice(&b);
        }
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    #[test]
    fn keeps_dns_and_drops_the_rest() {
        let prog = dns_filter(&[53], &Tunnels::none(), None).unwrap();
        let keep = |p: &[u8]| run(&prog, p) != 0;
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100]] {
            assert!(keep(&eth(tags, 0x0800, &ipv4(17, 5, 0, 40000, 53))));
            assert!(keep(&eth(tags, 0x0800, &ipv4(6, 5, 0, 53, 40000))));
            assert!(
                keep(&eth(tags, 0x0800, &ipv4(17, 7, 0, 53, 1))),
                "IPv4 options"
            );
            assert!(
                keep(&eth(tags, 0x0800, &ipv4(17, 5, 0x0010, 1, 2))),
                "non-first fragment"
            );
            assert!(
                !keep(&eth(tags, 0x0800, &ipv4(17, 5, 0x2000, 1, 2))),
                "first fragment, other ports"
            );
            assert!(!keep(&eth(tags, 0x0800, &ipv4(17, 5, 0, 5353, 5353))));
            assert!(!keep(&eth(tags, 0x0800, &ipv4(1, 5, 0, 53, 53))), "ICMP");
            assert!(!keep(&eth(tags, 0x0806, &[0; 28])), "ARP");
            assert!(keep(&eth(tags, 0x86dd, &ipv6(&[], 17, 1234, 53))));
            assert!(keep(&eth(tags, 0x86dd, &ipv6(&[], 6, 53, 1234))));
            assert!(!keep(&eth(tags, 0x86dd, &ipv6(&[], 17, 1234, 443))));
            let hbh = (0u8, vec![0u8; 8]);
            assert!(keep(&eth(
                tags,
                0x86dd,
                &ipv6(std::slice::from_ref(&hbh), 17, 1234, 53)
            )));
            assert!(!keep(&eth(tags, 0x86dd, &ipv6(&[hbh], 17, 1234, 80))));
            let first = (44u8, vec![0u8, 0, 0, 1, 0, 0, 0, 1]);
            assert!(keep(&eth(
                tags,
                0x86dd,
                &ipv6(std::slice::from_ref(&first), 17, 53, 9)
            )));
            assert!(!keep(&eth(tags, 0x86dd, &ipv6(&[first], 17, 8, 9))));
            let later = (44u8, vec![0u8, 0, 0x05, 0x00, 0, 0, 0, 1]);
            assert!(keep(&eth(tags, 0x86dd, &ipv6(&[later], 17, 8, 9))));
        }
        assert!(!keep(&eth(
            &[0x8100, 0x8100, 0x8100],
            0x0800,
            &ipv4(17, 5, 0, 53, 53)
        )));
        assert!(!keep(&[0u8; 10]), "runt");
        assert_eq!(
            run(&drop_all(), &eth(&[], 0x0800, &ipv4(17, 5, 0, 53, 53))),
            0
        );
    }

    #[test]
    fn tunnel_traffic_is_kept_whole() {
        let tunnels = Tunnels {
            vxlan_ports: vec![4789, 8472],
            geneve_ports: vec![6081],
            gre: true,
        };
        let prog = dns_filter(&[53], &tunnels, None).unwrap();
        let none = dns_filter(&[53], &Tunnels::none(), None).unwrap();
        let keep = |p: &[u8]| run(&prog, p) != 0;
        let keep_none = |p: &[u8]| run(&none, p) != 0;
        let hbh = (0u8, vec![0u8; 8]);
        let first = (44u8, vec![0u8, 0, 0, 1, 0, 0, 0, 1]);
        for tags in [&[][..], &[0x8100], &[0x88a8, 0x8100]] {
            for dport in [4789, 8472, 6081] {
                // Whatever is inside (here: nothing that parses).
                let v4 = eth(tags, 0x0800, &ipv4(17, 5, 0, 50000, dport));
                let v4_options = eth(tags, 0x0800, &ipv4(17, 7, 0, 50000, dport));
                let v6 = eth(tags, 0x86dd, &ipv6(&[], 17, 50000, dport));
                let v6_ext = eth(
                    tags,
                    0x86dd,
                    &ipv6(std::slice::from_ref(&hbh), 17, 50000, dport),
                );
                let v6_frag = eth(
                    tags,
                    0x86dd,
                    &ipv6(std::slice::from_ref(&first), 17, 50000, dport),
                );
                for p in [&v4, &v4_options, &v6, &v6_ext, &v6_frag] {
                    assert!(keep(p), "UDP to {dport} behind {tags:?}");
                    assert!(!keep_none(p), "--no-tunnels, UDP to {dport}");
                }
                // Only UDP, and only the destination port.
                assert!(!keep(&eth(tags, 0x0800, &ipv4(6, 5, 0, 50000, dport))));
                assert!(!keep(&eth(tags, 0x0800, &ipv4(17, 5, 0, dport, 50000))));
                assert!(!keep(&eth(tags, 0x86dd, &ipv6(&[], 6, 50000, dport))));
            }
            for gre in [
                eth(tags, 0x0800, &ipv4(47, 5, 0, 0x2000, 0x6558)),
                eth(tags, 0x0800, &ipv4(47, 6, 0x2000, 0, 0x88be)),
                eth(tags, 0x86dd, &ipv6(&[], 47, 0, 0x0800)),
                eth(
                    tags,
                    0x86dd,
                    &ipv6(std::slice::from_ref(&hbh), 47, 0, 0x22eb),
                ),
                eth(
                    tags,
                    0x86dd,
                    &ipv6(std::slice::from_ref(&first), 47, 0, 0x86dd),
                ),
            ] {
                assert!(keep(&gre), "GRE behind {tags:?}");
                assert!(!keep_none(&gre), "--no-tunnels, GRE");
            }
            // DNS and the rest as before.
            assert!(keep(&eth(tags, 0x0800, &ipv4(17, 5, 0, 40000, 53))));
            assert!(!keep(&eth(tags, 0x0800, &ipv4(17, 5, 0, 40000, 4790))));
            assert!(!keep(&eth(tags, 0x0800, &ipv4(1, 5, 0, 0, 0))));
        }
    }

    #[test]
    fn several_ports_fit_the_jump_offsets() {
        let ports: Vec<u16> = (0..pdns_common::MAX_PORTS as u16)
            .map(|i| 5300 + i)
            .collect();
        let prog = dns_filter(&ports, &Tunnels::default(), None).unwrap();
        let keep = |p: &[u8]| run(&prog, p) != 0;
        for &p in &ports {
            assert!(keep(&eth(&[0x8100], 0x0800, &ipv4(17, 5, 0, 1, p))));
            assert!(keep(&eth(&[], 0x86dd, &ipv6(&[], 6, p, 1))));
        }
        assert!(!keep(&eth(&[], 0x0800, &ipv4(17, 5, 0, 53, 53))));
    }

    #[test]
    fn only_the_wanted_interface() {
        let prog = dns_filter(&[53], &Tunnels::default(), Some(17)).unwrap();
        let dns = eth(&[0x8100], 0x0800, &ipv4(17, 5, 0, 40000, 53));
        assert_ne!(run_on(&prog, &dns, 17), 0);
        assert_eq!(run_on(&prog, &dns, 16), 0, "another device");
        assert_eq!(
            run_on(&prog, &eth(&[], 0x0800, &ipv4(17, 5, 0, 5353, 5353)), 17),
            0
        );
        // The rest of the program is the same, with every jump in range.
        let any = dns_filter(&[53], &Tunnels::default(), None).unwrap();
        assert_eq!(prog.len(), any.len() + 3);
    }
}
