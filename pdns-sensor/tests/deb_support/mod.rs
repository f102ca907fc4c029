//! Helpers for the Debian package test (`deb_package.rs`): reading the
//! installed unit, and running its `ExecStart=` in its sandbox without a
//! service manager.

pub(crate) mod sandbox;
pub(crate) mod unit;
