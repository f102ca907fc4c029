//! Domain names as the store keeps them: lowercase, labels reversed.
//!
//! `www.Example.COM.` is encoded as `\x03com\x07example\x03www\x00`: each
//! label is its length byte followed by its ASCII-lowercased bytes, the
//! labels run from the root down, and a zero byte (the root label) ends the
//! name. Two properties follow that the query side relies on:
//!
//! * every name below `example.com` starts with the encoding of
//!   `example.com` *without* its final zero byte, so `*.example.com` is one
//!   prefix scan;
//! * the final zero byte makes the encoding self-delimiting, so a key can
//!   carry more fields after a name.
//!
//! Lowercasing here is what makes 0x20 case randomisation (`wWw.ExAmPlE.cOm`)
//! land on the same records. Label bytes other than ASCII letters are kept
//! as they are, so binary labels survive untouched.
//!
//! Every conversion into and out of this encoding lives here, whatever the
//! name came from: a parsed DNS message ([`encode`]), an uncompressed wire
//! name inside rdata ([`encode_wire`]), presentation format typed by a user
//! ([`encode_presentation`]), a dotted name as Zeek logs it
//! ([`encode_dotted`]); and out again to presentation format
//! ([`presentation`]) or to the *forward* label order the `names` column
//! family sorts by ([`forward`]).

use std::fmt::Write as _;
use std::str::FromStr;

use domain::base::name::{Name, ToLabelIter};

/// Most labels a wire-format name can hold (255 bytes, 2 bytes a label).
const MAX_LABELS: usize = 128;

/// Appends the reversed encoding of `name` to `out`.
///
/// Works for any name `domain` can iterate (parsed, compressed or not).
#[inline]
pub fn encode<N: ToLabelIter + ?Sized>(name: &N, out: &mut Vec<u8>) {
    let labels = name
        .iter_labels()
        .take_while(|label| !label.is_root())
        // Never more for a valid name; `domain` checks the length.
        .take(MAX_LABELS)
        .map(|label| label.as_slice());
    push_labels_reversed(labels, true, out);
}

/// Appends `labels` in reverse order, each length-prefixed (and lowercased
/// if asked), then the root byte.
///
/// Labels are not collected first: each goes in back to front with its
/// length after it, and the whole run is reversed once at the end. (An
/// array for 128 labels, initialised per name, was a tenth of decoding.)
#[inline]
fn push_labels_reversed<'a>(
    labels: impl IntoIterator<Item = &'a [u8]>,
    lowercase: bool,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    for label in labels {
        if lowercase {
            out.extend(label.iter().rev().map(u8::to_ascii_lowercase));
        } else {
            out.extend(label.iter().rev());
        }
        out.push(label.len() as u8);
    }
    out[start..].reverse();
    out.push(0);
}

/// The labels of an encoded name (either order), up to its root byte or
/// the end of `encoded`; a label running past the end is cut there.
pub fn labels(encoded: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let len = *encoded.get(pos)?;
        if len == 0 {
            return None;
        }
        let end = (pos + 1 + len as usize).min(encoded.len());
        let label = &encoded[pos + 1..end];
        pos = end;
        Some(label)
    })
    .take(MAX_LABELS)
}

/// Encodes a name given in presentation format (`www.example.com`, with or
/// without the trailing dot; `\DDD` and `\X` escapes allowed).
pub fn encode_presentation(name: &str) -> Result<Vec<u8>, NameError> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(NameError(name.to_string()));
    }
    let parsed = if trimmed == "." {
        Name::root_vec()
    } else {
        Name::<Vec<u8>>::from_str(trimmed).map_err(|_| NameError(name.to_string()))?
    };
    let mut out = Vec::with_capacity(parsed.len() + 1);
    encode(&parsed, &mut out);
    Ok(out)
}

/// The encoding of a name without its terminating root byte: the key prefix
/// shared by everything at or below that name.
pub fn subtree_prefix(encoded: &[u8]) -> &[u8] {
    &encoded[..encoded.len().saturating_sub(1)]
}

/// A name that is not valid presentation format.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a valid domain name: {0:?}")]
pub struct NameError(pub String);

/// Splits an encoded name off the front of `data`.
///
/// Returns the encoded name (including its root byte) and the rest, or
/// `None` if `data` does not start with a complete encoded name.
pub fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut pos = 0;
    loop {
        let len = *data.get(pos)? as usize;
        pos += 1;
        if len == 0 {
            return Some(data.split_at(pos));
        }
        if len > 63 {
            return None;
        }
        pos += len;
    }
}

/// Renders an encoded name in presentation format with a trailing dot, the
/// way `dig` prints it (`\DDD` for bytes outside printable ASCII, `\.` and
/// `\\` escaped).
pub fn write_presentation(encoded: &[u8], out: &mut String) {
    // Label starts, so the labels can be written last to first; offsets
    // rather than slices keep the array a quarter the size to clear.
    let mut starts = [0u16; MAX_LABELS];
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = encoded.get(pos) {
        if len == 0 || n == MAX_LABELS || pos > usize::from(u16::MAX) {
            break;
        }
        starts[n] = pos as u16;
        n += 1;
        pos = (pos + 1 + len as usize).min(encoded.len());
    }
    if n == 0 {
        out.push('.');
        return;
    }
    out.reserve(pos + 1);
    for &start in starts[..n].iter().rev() {
        let start = usize::from(start);
        let end = (start + 1 + usize::from(encoded[start])).min(encoded.len());
        let label = &encoded[start + 1..end];
        let plain = label
            .iter()
            .all(|&b| matches!(b, 0x21..=0x7e) && !needs_escape(b));
        if plain {
            // SAFETY: every byte of `label` is printable ASCII (checked
            // just above), so it is valid UTF-8; validating it again cost
            // a third of this function.
            out.push_str(unsafe { std::str::from_utf8_unchecked(label) });
        } else {
            for &b in label {
                if needs_escape(b) {
                    out.push('\\');
                    out.push(b as char);
                } else if matches!(b, 0x21..=0x7e) {
                    out.push(b as char);
                } else {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('.');
    }
}

/// [`write_presentation`] for a *forward* encoding (a `names` key), as
/// bytes: the same text, without reversing the labels first (Flex search
/// renders every name of the store this way).
pub fn write_presentation_forward(forward_name: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let mut pos = 0;
    // A plain loop (no label iterator): this runs once per stored name.
    while let Some(&len) = forward_name.get(pos) {
        if len == 0 {
            break;
        }
        let end = (pos + 1 + usize::from(len)).min(forward_name.len());
        let label = &forward_name[pos + 1..end];
        if label.iter().all(|&b| PLAIN[usize::from(b)]) {
            out.extend_from_slice(label);
        } else {
            for &b in label {
                if needs_escape(b) {
                    out.extend_from_slice(&[b'\\', b]);
                } else if matches!(b, 0x21..=0x7e) {
                    out.push(b);
                } else {
                    let _ = write!(ByteWriter(out), "\\{b:03}");
                }
            }
        }
        out.push(b'.');
        pos = end;
    }
    if out.len() == start {
        out.push(b'.');
    }
}

/// Bytes written as they are in presentation format (a table: checking
/// two conditions per byte was most of [`write_presentation_forward`]).
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = !needs_escape(b as u8);
        b += 1;
    }
    t
};

/// `fmt::Write` into a byte vector.
struct ByteWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for ByteWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Characters escaped with a backslash in presentation format.
const fn needs_escape(b: u8) -> bool {
    matches!(b, b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$')
}

/// Convenience wrapper around [`write_presentation`].
pub fn presentation(encoded: &[u8]) -> String {
    let mut s = String::with_capacity(encoded.len() + 1);
    write_presentation(encoded, &mut s);
    s
}

/// The number of labels of an encoded name (the root has none).
pub fn label_count(encoded: &[u8]) -> usize {
    labels(encoded).count()
}

/// Appends the *forward* encoding of a reversed name: the same
/// length-prefixed lowercase labels, in the order they are written
/// (`\x03www\x07example\x03com\x00`), so every name starting with
/// `www.example` shares a prefix. The `names` column family is keyed by it.
pub fn forward(reversed: &[u8], out: &mut Vec<u8>) {
    push_labels_reversed(labels(reversed), false, out);
}

/// The reversed encoding of a forward one (the inverse of [`forward`]; the
/// same transformation, as it only reverses the label order).
pub fn from_forward(forward_name: &[u8], out: &mut Vec<u8>) {
    forward(forward_name, out)
}

/// Appends the reversed encoding of the uncompressed wire-format name at
/// the start of `wire` (a name inside canonical rdata). Returns false, and
/// appends nothing, if `wire` does not start with a valid uncompressed
/// name.
#[inline]
pub fn encode_wire(wire: &[u8], out: &mut Vec<u8>) -> bool {
    let mut count = 0;
    let mut pos = 0;
    loop {
        let Some(&len) = wire.get(pos) else {
            return false;
        };
        if len == 0 {
            break;
        }
        if len > 63 || count == MAX_LABELS || pos + 1 + len as usize > wire.len() {
            return false;
        }
        count += 1;
        pos += 1 + len as usize;
    }
    push_labels_reversed(labels(&wire[..pos]), true, out);
    true
}

/// Longest name in wire form.
const MAX_WIRE_NAME: usize = 255;

/// A dotted name as Zeek logs it (raw label bytes, escapes already
/// decoded, no trailing dot; one is tolerated), checked: `None` if a label
/// is empty or longer than 63 bytes, or the name longer than 255 bytes in
/// wire form. Returns the name without a trailing dot; empty is the root.
fn checked_dotted(name: &[u8]) -> Option<&[u8]> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() {
        return Some(name);
    }
    let mut wire_len = 1;
    for label in name.split(is_dot) {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        wire_len += 1 + label.len();
    }
    (wire_len <= MAX_WIRE_NAME).then_some(name)
}

fn is_dot(b: &u8) -> bool {
    *b == b'.'
}

/// Appends a raw dotted name (see `checked_dotted`: no escapes, labels
/// split at every dot) in the reversed encoding: the same bytes
/// [`encode`] gives for the wire name. Returns false, appending nothing,
/// if it is not a valid name.
pub fn encode_dotted(name: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(name) = checked_dotted(name) else {
        return false;
    };
    if !name.is_empty() {
        for label in name.rsplit(is_dot) {
            out.push(label.len() as u8);
            out.extend(label.iter().map(u8::to_ascii_lowercase));
        }
    }
    out.push(0);
    true
}

/// Appends a raw dotted name in canonical wire form (lowercase,
/// uncompressed), as names inside rdata are stored. The root is refused
/// (returns false) as well as invalid names.
pub fn wire_from_dotted(name: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(name) = checked_dotted(name) else {
        return false;
    };
    if name.is_empty() {
        return false;
    }
    for label in name.split(is_dot) {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_reversed_lowercase_and_terminated() {
        assert_eq!(
            encode_presentation("wWw.ExAmple.COM").unwrap(),
            b"\x03com\x07example\x03www\x00".to_vec()
        );
        assert_eq!(
            encode_presentation("www.example.com.").unwrap(),
            encode_presentation("WWW.example.com").unwrap()
        );
        assert_eq!(encode_presentation(".").unwrap(), vec![0]);
    }

    #[test]
    fn labels_reverse_after_what_the_buffer_holds() {
        let mut out = b"keep".to_vec();
        push_labels_reversed([&b"Www"[..], b"Ex", b"c"], true, &mut out);
        assert_eq!(out, b"keep\x01c\x02ex\x03www\x00".to_vec());
        out.clear();
        push_labels_reversed([&b"A"[..]], false, &mut out);
        assert_eq!(out, b"\x01A\x00".to_vec());
        out.clear();
        push_labels_reversed(std::iter::empty(), true, &mut out);
        assert_eq!(out, vec![0]);
        // 127 labels, the most a name can have, all kept in order.
        let long: Vec<u8> = (0..127u8).flat_map(|i| [1, i]).chain([0]).collect();
        let found: Vec<&[u8]> = labels(&long).collect();
        assert_eq!(found.len(), 127);
        assert_eq!(found[126], [126]);
    }

    #[test]
    fn encoded_labels_stop_at_root_or_cut_at_the_end() {
        let found: Vec<&[u8]> = labels(b"\x02ab\x00\x01z").collect();
        assert_eq!(found, [&b"ab"[..]]);
        let found: Vec<&[u8]> = labels(b"\x01a\x05bc").collect();
        assert_eq!(found, [&b"a"[..], b"bc"]);
        assert_eq!(labels(b"").count(), 0);
    }

    #[test]
    fn subtree_prefix_matches_children_only_by_next_byte() {
        let parent = encode_presentation("example.com").unwrap();
        let child = encode_presentation("a.b.example.com").unwrap();
        let sibling = encode_presentation("example.community").unwrap();
        let prefix = subtree_prefix(&parent);
        assert!(child.starts_with(prefix));
        assert!(!sibling.starts_with(prefix));
        // The parent itself continues with the root byte, children with a
        // non-zero label length.
        assert_eq!(parent[prefix.len()], 0);
        assert_ne!(child[prefix.len()], 0);
    }

    #[test]
    fn split_and_render_round_trip() {
        let mut key = encode_presentation("Mail.Example.org").unwrap();
        key.extend_from_slice(&[0, 1, 9, 9]);
        let (name, rest) = split(&key).unwrap();
        assert_eq!(rest, &[0, 1, 9, 9]);
        assert_eq!(presentation(name), "mail.example.org.");
        assert_eq!(presentation(&[0]), ".");
        assert_eq!(split(&[3, b'c', b'o']), None);
        assert_eq!(split(&[64]), None);
    }

    #[test]
    fn odd_bytes_are_escaped() {
        let encoded = [4, b'a', b'.', 0xff, b' ', 0];
        assert_eq!(presentation(&encoded), "a\\.\\255\\032.");
        // The forward renderer gives the same text.
        for reversed in [
            encode_presentation("www.Example.com").unwrap(),
            vec![4, b'a', b'.', 0xff, b' ', 2, b'x', b'@', 0],
            vec![0],
        ] {
            let mut fwd = Vec::new();
            forward(&reversed, &mut fwd);
            let mut text = Vec::new();
            write_presentation_forward(&fwd, &mut text);
            assert_eq!(String::from_utf8(text).unwrap(), presentation(&reversed));
        }
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(encode_presentation("").is_err());
        assert!(encode_presentation("a..b").is_err());
        assert!(encode_presentation(&"x".repeat(64)).is_err());
    }

    #[test]
    fn forward_names_reverse_back() {
        let o = encode_presentation("www.Example.com").unwrap();
        let mut f = Vec::new();
        forward(&o, &mut f);
        assert_eq!(f, b"\x03www\x07example\x03com\x00".to_vec());
        let mut back = Vec::new();
        from_forward(&f, &mut back);
        assert_eq!(back, o);
    }

    #[test]
    fn wire_names_encode_like_parsed_ones() {
        let mut out = Vec::new();
        assert!(encode_wire(b"\x04Mail\x07example\x00\x01\x02", &mut out));
        assert_eq!(out, encode_presentation("mail.example").unwrap());
        for bad in [&b"\x04ab"[..], b"\x40", b""] {
            let mut out = b"x".to_vec();
            assert!(!encode_wire(bad, &mut out));
            assert_eq!(out, b"x");
        }
    }

    #[test]
    fn dotted_names_encode_like_wire_ones() {
        let mut reversed = Vec::new();
        assert!(encode_dotted(b"WWW.example.com.", &mut reversed));
        assert_eq!(reversed, encode_presentation("www.example.com").unwrap());
        let mut wire = Vec::new();
        assert!(wire_from_dotted(b"Mail.Example", &mut wire));
        assert_eq!(wire, b"\x04mail\x07example\x00".to_vec());
        let mut out = Vec::new();
        assert!(encode_dotted(b"", &mut out));
        assert_eq!(out, vec![0]);
        assert!(!wire_from_dotted(b"", &mut out));
        assert!(!encode_dotted(b"a..b", &mut out));
        assert!(!encode_dotted(&[b'x'; 64], &mut out));
        assert_eq!(label_count(&encode_presentation("a.b.c").unwrap()), 3);
    }
}
