//! LOC rdata (RFC 1876) as BIND prints it: degrees, minutes and seconds
//! with milliseconds, hemisphere letters, altitude in metres with two
//! decimals, then size and precisions (`0.NNm` below one metre).
//!
//! Only version 0 has a text form; BIND prints any other version in the
//! generic form, and so do we.

use std::fmt::Write as _;

use super::wire::{Malformed, Reader, Result};

/// A size or precision byte: mantissa (high nibble) × 10^exponent cm.
fn size(out: &mut String, byte: u8) -> Result<()> {
    let (mantissa, exponent) = (u64::from(byte >> 4), u32::from(byte & 15));
    if mantissa > 9 || exponent > 9 {
        return Err(Malformed);
    }
    if exponent > 1 {
        let _ = write!(out, "{}m", mantissa * 10u64.pow(exponent - 2));
    } else {
        let _ = write!(out, "0.{:02}m", mantissa * 10u64.pow(exponent));
    }
    Ok(())
}

/// A latitude or longitude in thousandths of an arc second from 2^31.
fn angle(out: &mut String, raw: u32, positive: char, negative: char, max: u32) -> Result<()> {
    let (value, hemisphere) = if raw >= 0x8000_0000 {
        (raw - 0x8000_0000, positive)
    } else {
        (0x8000_0000 - raw, negative)
    };
    let degrees = value / 3_600_000;
    if degrees > max {
        return Err(Malformed);
    }
    let _ = write!(
        out,
        "{degrees} {} {}.{:03} {hemisphere}",
        value / 60_000 % 60,
        value / 1000 % 60,
        value % 1000
    );
    Ok(())
}

pub(super) fn write(r: &mut Reader<'_>, out: &mut String) -> Result<Option<()>> {
    if r.u8()? != 0 {
        return Ok(None);
    }
    let (sz, hp, vp) = (r.u8()?, r.u8()?, r.u8()?);
    let latitude = r.u32()?;
    let longitude = r.u32()?;
    let altitude = r.u32()?;
    angle(out, latitude, 'N', 'S', 90)?;
    out.push(' ');
    angle(out, longitude, 'E', 'W', 180)?;
    // Centimetres above a base 100 000 m below the WGS 84 spheroid.
    let (below, metres) = if altitude < 10_000_000 {
        ("-", 10_000_000 - altitude)
    } else {
        ("", altitude - 10_000_000)
    };
    let _ = write!(out, " {below}{}.{:02}m ", metres / 100, metres % 100);
    size(out, sz)?;
    out.push(' ');
    size(out, hp)?;
    out.push(' ');
    size(out, vp)?;
    Ok(Some(()))
}
