//! Response codes as the sensor names them.
//!
//! The type is `domain`'s [`OptRcode`]: the full 12-bit RCODE, with the
//! extended bits an OPT record carries. Two things are ours:
//!
//! * **Names for every assigned code.** `OptRcode` names the codes RFC 1035,
//!   RFC 2136 and EDNS define; the IANA registry also assigns DSOTYPENI (11)
//!   and the TSIG/TKEY errors 17–22, which `domain` names only as
//!   [`TsigRcode`]. Metrics label responses by [`label`], which knows them
//!   all and says `OTHER` for anything unassigned.
//! * **NODATA.** In the negative table a NOERROR response without answers is
//!   NODATA; [`negative_name`] and [`parse_negative`] print and read that
//!   table's codes (`NODATA`, `NXDOMAIN`, …, `RCODE<n>` when unassigned).

pub use domain::base::iana::OptRcode;
use domain::base::iana::TsigRcode;

/// The IANA mnemonic of an assigned RCODE, `None` if unassigned.
pub fn mnemonic(rcode: OptRcode) -> Option<&'static str> {
    match rcode.to_int() {
        11 => Some("DSOTYPENI"),
        // BADSIG shares 16 with BADVERS; a response's extended RCODE is
        // the EDNS one.
        17..=22 => TsigRcode::from_int(rcode.to_int()).to_mnemonic_str(),
        _ => rcode.to_mnemonic_str(),
    }
}

/// The label of an RCODE in metrics: its mnemonic, or `OTHER`.
pub fn label(rcode: OptRcode) -> &'static str {
    mnemonic(rcode).unwrap_or("OTHER")
}

/// The name of a negative-table RCODE: `NODATA` for NOERROR, the mnemonic
/// otherwise, `RCODE<n>` when unassigned.
pub fn negative_name(rcode: OptRcode) -> String {
    if rcode == OptRcode::NOERROR {
        return "NODATA".to_string();
    }
    match mnemonic(rcode) {
        Some(m) => m.to_string(),
        None => format!("RCODE{}", rcode.to_int()),
    }
}

/// Parses a negative-table RCODE as [`negative_name`] prints it, or as a
/// number (case-insensitive).
pub fn parse_negative(text: &str) -> Option<OptRcode> {
    let upper = text.trim().to_ascii_uppercase();
    if upper == "NODATA" {
        return Some(OptRcode::NOERROR);
    }
    let number = upper.strip_prefix("RCODE").unwrap_or(&upper);
    if let Ok(n) = number.parse::<u16>() {
        return (n < 0x1000).then(|| OptRcode::masked_from_int(n));
    }
    (1..0x1000)
        .map(OptRcode::masked_from_int)
        .find(|&r| mnemonic(r) == Some(upper.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_assigned_code_has_its_iana_name() {
        let names: Vec<(u16, &str)> = (0..30)
            .filter_map(|n| mnemonic(OptRcode::masked_from_int(n)).map(|m| (n, m)))
            .collect();
        assert_eq!(
            names,
            [
                (0, "NOERROR"),
                (1, "FORMERR"),
                (2, "SERVFAIL"),
                (3, "NXDOMAIN"),
                (4, "NOTIMP"),
                (5, "REFUSED"),
                (6, "YXDOMAIN"),
                (7, "YXRRSET"),
                (8, "NXRRSET"),
                (9, "NOTAUTH"),
                (10, "NOTZONE"),
                (11, "DSOTYPENI"),
                (16, "BADVERS"),
                (17, "BADKEY"),
                (18, "BADTIME"),
                (19, "BADMODE"),
                (20, "BADNAME"),
                (21, "BADALG"),
                (22, "BADTRUNC"),
                (23, "BADCOOKIE"),
            ]
        );
        assert_eq!(label(OptRcode::masked_from_int(12)), "OTHER");
    }

    #[test]
    fn negative_names_round_trip() {
        for n in [0u16, 1, 2, 3, 5, 11, 16, 23, 24, 3840] {
            let rcode = OptRcode::masked_from_int(n);
            assert_eq!(parse_negative(&negative_name(rcode)), Some(rcode), "{n}");
        }
        assert_eq!(negative_name(OptRcode::NOERROR), "NODATA");
        assert_eq!(negative_name(OptRcode::masked_from_int(24)), "RCODE24");
        assert_eq!(parse_negative("nxdomain"), Some(OptRcode::NXDOMAIN));
        assert_eq!(parse_negative("3"), Some(OptRcode::NXDOMAIN));
        assert_eq!(parse_negative("4096"), None);
        assert_eq!(parse_negative("bogus"), None);
    }
}
