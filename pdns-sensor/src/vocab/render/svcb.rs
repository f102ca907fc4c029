//! SVCB and HTTPS rdata (RFC 9460) as dig prints it: priority, target, then
//! each parameter as `key=value` in wire order, with BIND's value forms —
//! `alpn="h2,h3"` (always quoted, commas inside an id escaped), numbers,
//! address lists, base64 `ech`, key lists for `mandatory`, and
//! `keyNNNNN="…"` for keys outside the first registry set (BIND 9.18 prints
//! `dohpath` that way too). A parameter with an empty value is its key alone.
//!
//! Parameters that cannot be what their key says (a port of three bytes,
//! an address list of the wrong length, keys out of order) make the rdata
//! malformed, as BIND refuses it on the wire.

use std::fmt::Write as _;

use super::text::{self, Quoting};
use super::wire::{Malformed, Reader, Result};

/// How the value of a key is written.
#[derive(Clone, Copy)]
enum Encoding {
    KeyList,
    Alpn,
    Empty,
    Port,
    Ipv4s,
    Base64,
    Ipv6s,
    Text,
}

/// The key's name and encoding: the registry's first seven keys by name,
/// every other one as `keyN` with a text value.
fn key(out: &mut String, code: u16) -> Encoding {
    let (name, encoding) = match code {
        0 => ("mandatory", Encoding::KeyList),
        1 => ("alpn", Encoding::Alpn),
        2 => ("no-default-alpn", Encoding::Empty),
        3 => ("port", Encoding::Port),
        4 => ("ipv4hint", Encoding::Ipv4s),
        5 => ("ech", Encoding::Base64),
        6 => ("ipv6hint", Encoding::Ipv6s),
        _ => {
            let _ = write!(out, "key{code}");
            return Encoding::Text;
        }
    };
    out.push_str(name);
    encoding
}

pub(super) fn write(r: &mut Reader<'_>, out: &mut String) -> Result<()> {
    let _ = write!(out, "{} ", r.u16()?);
    text::name(out, r.name()?);
    let mut previous: Option<u16> = None;
    while !r.is_empty() {
        let code = r.u16()?;
        if previous.is_some_and(|p| p >= code) {
            return Err(Malformed);
        }
        previous = Some(code);
        let len = usize::from(r.u16()?);
        let value = r.take(len)?;
        out.push(' ');
        let encoding = key(out, code);
        if value.is_empty() {
            if matches!(
                encoding,
                Encoding::KeyList
                    | Encoding::Alpn
                    | Encoding::Port
                    | Encoding::Ipv4s
                    | Encoding::Ipv6s
            ) {
                return Err(Malformed);
            }
            continue;
        }
        out.push('=');
        match encoding {
            Encoding::Text => text::multi_text(out, value),
            Encoding::Port => {
                let port: [u8; 2] = value.try_into().map_err(|_| Malformed)?;
                let _ = write!(out, "{}", u16::from_be_bytes(port));
            }
            Encoding::Ipv4s => {
                if value.len() % 4 != 0 {
                    return Err(Malformed);
                }
                for (i, a) in value.chunks(4).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    text::ipv4(out, a);
                }
            }
            Encoding::Ipv6s => {
                if value.len() % 16 != 0 {
                    return Err(Malformed);
                }
                for (i, a) in value.chunks(16).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    text::ipv6(out, a.try_into().map_err(|_| Malformed)?);
                }
            }
            Encoding::Base64 => text::base64(out, value),
            Encoding::Alpn => {
                let mut ids = Reader::new(value);
                out.push('"');
                while !ids.is_empty() {
                    let id = ids.char_string()?;
                    if id.is_empty() {
                        return Err(Malformed);
                    }
                    text::char_string(out, id, Quoting::AlpnElement);
                    if !ids.is_empty() {
                        out.push(',');
                    }
                }
                out.push('"');
            }
            Encoding::Empty => return Err(Malformed),
            Encoding::KeyList => {
                if value.len() % 2 != 0 {
                    return Err(Malformed);
                }
                for (i, k) in value.chunks(2).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    key(out, u16::from_be_bytes([k[0], k[1]]));
                }
            }
        }
    }
    Ok(())
}
