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
    let mut labels: [&[u8]; MAX_LABELS] = [&[]; MAX_LABELS];
    let mut n = 0;
    for label in name.iter_labels() {
        if label.is_root() {
            break;
        }
        if n == MAX_LABELS {
            break; // impossible for a valid name; `domain` checks length
        }
        labels[n] = label.as_slice();
        n += 1;
    }
    for label in labels[..n].iter().rev() {
        out.push(label.len() as u8);
        out.extend(label.iter().map(u8::to_ascii_lowercase));
    }
    out.push(0);
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
