//! The hashes the fanout program (`pdns_fanout`, see
//! [`FANOUT_PROGRAM_NAME`](crate::FANOUT_PROGRAM_NAME)) picks a ring with.
//!
//! They live here, not in the eBPF program, so that the host can run them:
//! the program cannot be unit-tested, and the live tests predict which ring
//! a packet reaches. Both sides call these very functions, so a test that
//! predicts a ring checks the program's dispatch, not a copy of it.
//!
//! Everything here must pass the kernel's verifier when inlined into the
//! program: no recursion, loops bounded by constants, slices read through
//! `get` (bounds the verifier can follow), no allocation.

/// The hash of the DNS question name in `bytes`, the same whatever the case
/// of its letters; `None` when the message has no question or its name does
/// not end within `bytes`.
///
/// `bytes` is a DNS message from its question count on: the four counts (8
/// bytes), then the question's name as sent. The program copies the
/// longest of a few fixed windows the packet holds (the verifier wants a
/// constant size), so the hash does not depend on `N`: only on the name.
///
/// The name is read 8 bytes at a time, each word with bit 5 of every byte
/// set (`A` and `a` meet, as DNS 0x20 randomises the case per query;
/// other bytes may meet too, which only merges two names' rings). Its last
/// word is the 8 bytes ending with it, or, for a name under 8 bytes, the
/// word at its start cut to its length. A label over 63 bytes (a
/// compression pointer among them: a question's name is never compressed
/// in practice) gives `None`.
#[inline(always)]
pub fn question_name_hash<const N: usize>(bytes: &[u8; N]) -> Option<u32> {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const NAME: usize = 8;
    if bytes[0] == 0 && bytes[1] == 0 {
        return None;
    }
    let mut end = NAME;
    let mut ended = false;
    for _ in 0..N.saturating_sub(NAME) / 2 {
        let label = usize::from(*bytes.get(end)?);
        end += 1;
        if label == 0 {
            ended = true;
            break;
        }
        if label > 63 {
            return None;
        }
        end += label;
    }
    if !ended || end > N {
        return None;
    }
    let len = end - NAME;
    let word = |at: usize| -> Option<u64> {
        let w: [u8; 8] = bytes.get(NAME + at..NAME + at + 8)?.try_into().ok()?;
        Some(u64::from_le_bytes(w))
    };
    let mut hash = len as u64;
    let mut at = 0;
    for _ in 0..N.saturating_sub(NAME) / 8 {
        if at + 8 > len {
            break;
        }
        hash = (hash ^ (word(at)? | FOLD)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        hash = hash.rotate_left(23);
        at += 8;
    }
    if at < len {
        let last = if len >= 8 {
            word(len - 8)?
        } else {
            word(0)? & ((1u64 << (8 * len)) - 1)
        };
        hash ^= last | FOLD;
    }
    Some(mix32((hash ^ (hash >> 32)) as u32))
}

/// A symmetric hash of two addresses (IPv4 addresses as big-endian numbers,
/// or IPv6 addresses folded to 32 bits each): the smaller and the larger
/// are mixed, so both directions of a flow hash alike.
#[inline(always)]
pub fn address_pair_hash(a: u32, b: u32) -> u32 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    mix32(lo.wrapping_mul(0x9e37_79b1).rotate_left(13) ^ hi)
}

/// MurmurHash3's finaliser: every input bit moves every output bit, so the
/// kernel's modulo by the number of rings sees well-spread low bits.
#[inline(always)]
pub fn mix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::vec::Vec;

    use super::*;

    /// The message from its question count on, as the program copies it:
    /// one question, no other records, `name` (wire form), type A class IN,
    /// then zeros to fill the window.
    fn window<const N: usize>(name: &[u8]) -> [u8; N] {
        let mut bytes = [0u8; N];
        let mut message = Vec::from([0, 1, 0, 0, 0, 0, 0, 0]);
        message.extend_from_slice(name);
        message.extend_from_slice(&[0, 1, 0, 1]);
        let n = message.len().min(N);
        bytes[..n].copy_from_slice(&message[..n]);
        bytes
    }

    fn hash(name: &str) -> Option<u32> {
        question_name_hash(&window::<72>(&wire(name)))
    }

    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    fn hash_in_every_window(name: &[u8]) -> [Option<u32>; 4] {
        [
            question_name_hash(&window::<24>(name)),
            question_name_hash(&window::<40>(name)),
            question_name_hash(&window::<56>(name)),
            question_name_hash(&window::<72>(name)),
        ]
    }

    #[test]
    fn the_window_does_not_change_the_hash() {
        for name in [".", "a.", "example.com.", "www.example.com.", "ab.cd.ef"] {
            let hashes = hash_in_every_window(&wire(name));
            let some: Vec<_> = hashes.iter().flatten().collect();
            assert!(!some.is_empty(), "{name}");
            assert!(some.iter().all(|h| *h == some[0]), "{name}: {hashes:?}");
        }
        // A name of 40 bytes fits only the two larger windows.
        let long = wire("abcdefghij.abcdefghij.abcdefghij.abcde.");
        assert_eq!(long.len(), 40);
        let hashes = hash_in_every_window(&long);
        assert_eq!(hashes[..2], [None, None]);
        assert!(hashes[2].is_some() && hashes[2] == hashes[3]);
    }

    #[test]
    fn case_does_not_change_the_hash_but_letters_do() {
        let lower = hash("www.example.com");
        let mixed = hash("wWw.ExAmPlE.CoM");
        let other = hash("www.example.org");
        assert!(lower.is_some());
        assert_eq!(lower, mixed);
        assert_ne!(lower, other);
        // Every byte of a name over 8 bytes counts, the last word included.
        assert_ne!(hash("abcdefghijklm.example"), hash("abcdefghijklm.examplf"));
        assert_ne!(hash("abcdefghijklm.example"), hash("bbcdefghijklm.example"));
    }

    #[test]
    fn unreadable_questions_give_none() {
        let name = wire("www.example.com");
        // No question.
        let mut bytes = window::<72>(&name);
        bytes[1] = 0;
        assert_eq!(question_name_hash(&bytes), None);
        // A compression pointer where the name starts.
        assert_eq!(question_name_hash(&window::<72>(&[0xc0, 0x0c])), None);
        // A name of 65 bytes: longer than the largest window holds.
        let long = wire(&["a".repeat(31), "b".repeat(31)].join("."));
        assert_eq!(long.len(), 65);
        assert_eq!(hash_in_every_window(&long), [None; 4]);
        // A label running past the window.
        let mut bytes = [0u8; 24];
        bytes[1] = 1;
        bytes[8] = 30;
        assert_eq!(question_name_hash(&bytes), None);
        // Windows too small for any name.
        assert_eq!(question_name_hash(&[0, 1, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(question_name_hash(&[0u8; 2]), None);
    }

    #[test]
    fn any_bytes_in_any_window_are_taken_without_panicking() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut bytes = [0u8; 72];
            for b in &mut bytes {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state % 70) as u8;
            }
            let _ = question_name_hash(&bytes);
            let _ = question_name_hash(<&[u8; 24]>::try_from(&bytes[..24]).unwrap());
        }
    }

    #[test]
    fn address_pairs_hash_symmetrically_and_apart() {
        let (a, b, c) = (0xc000_0201, 0xc633_6401, 0xc633_6402);
        assert_eq!(address_pair_hash(a, b), address_pair_hash(b, a));
        assert_ne!(address_pair_hash(a, b), address_pair_hash(a, c));
    }

    #[test]
    fn the_finaliser_spreads_consecutive_inputs_over_rings() {
        for rings in [2u32, 3, 4, 8] {
            let mut per_ring = [0u32; 8];
            for i in 0..8_000u32 {
                per_ring[(mix32(i) % rings) as usize] += 1;
            }
            let fair = 8_000 / rings;
            for &n in &per_ring[..rings as usize] {
                assert!(
                    n > fair * 9 / 10 && n < fair * 11 / 10,
                    "{rings}: {per_ring:?}"
                );
            }
        }
    }
}
