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

use std::fmt::Write as _;
use std::str::FromStr;

use domain::base::name::{Name, ToLabelIter};

/// Most labels a wire-format name can hold (255 bytes, 2 bytes a label).
const MAX_LABELS: usize = 128;

/// Appends the reversed encoding of `name` to `out`.
///
/// Works for any name `domain` can iterate (parsed, compressed or not).
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
pub fn push_labels_reversed<'a>(
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
pub fn encoded_labels(encoded: &[u8]) -> impl Iterator<Item = &[u8]> {
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
pub fn encode_str(name: &str) -> Result<Vec<u8>, NameError> {
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
pub fn to_presentation(encoded: &[u8], out: &mut String) {
    let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let mut n = 0;
    let mut pos = 0;
    while let Some(&len) = encoded.get(pos) {
        if len == 0 || n == MAX_LABELS {
            break;
        }
        let end = (pos + 1 + len as usize).min(encoded.len());
        labels[n] = &encoded[pos + 1..end];
        n += 1;
        pos = end;
    }
    if n == 0 {
        out.push('.');
        return;
    }
    for label in labels[..n].iter().rev() {
        for &b in label.iter() {
            match b {
                b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                    out.push('\\');
                    out.push(b as char);
                }
                0x21..=0x7e => out.push(b as char),
                _ => {
                    let _ = write!(out, "\\{b:03}");
                }
            }
        }
        out.push('.');
    }
}

/// Convenience wrapper around [`to_presentation`].
pub fn presentation(encoded: &[u8]) -> String {
    let mut s = String::with_capacity(encoded.len() + 1);
    to_presentation(encoded, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_is_reversed_lowercase_and_terminated() {
        assert_eq!(
            encode_str("wWw.ExAmple.COM").unwrap(),
            b"\x03com\x07example\x03www\x00".to_vec()
        );
        assert_eq!(
            encode_str("www.example.com.").unwrap(),
            encode_str("WWW.example.com").unwrap()
        );
        assert_eq!(encode_str(".").unwrap(), vec![0]);
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
        let labels: Vec<&[u8]> = encoded_labels(&long).collect();
        assert_eq!(labels.len(), 127);
        assert_eq!(labels[126], [126]);
    }

    #[test]
    fn encoded_labels_stop_at_root_or_cut_at_the_end() {
        let labels: Vec<&[u8]> = encoded_labels(b"\x02ab\x00\x01z").collect();
        assert_eq!(labels, [&b"ab"[..]]);
        let labels: Vec<&[u8]> = encoded_labels(b"\x01a\x05bc").collect();
        assert_eq!(labels, [&b"a"[..], b"bc"]);
        assert_eq!(encoded_labels(b"").count(), 0);
    }

    #[test]
    fn subtree_prefix_matches_children_only_by_next_byte() {
        let parent = encode_str("example.com").unwrap();
        let child = encode_str("a.b.example.com").unwrap();
        let sibling = encode_str("example.community").unwrap();
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
        let mut key = encode_str("Mail.Example.org").unwrap();
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
    }

    #[test]
    fn bad_names_are_errors() {
        assert!(encode_str("").is_err());
        assert!(encode_str("a..b").is_err());
        assert!(encode_str(&"x".repeat(64)).is_err());
    }
}
