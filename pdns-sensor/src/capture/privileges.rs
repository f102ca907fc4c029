//! Dropping root after setup, as `tcpdump -Z` does.
//!
//! Capture needs root (CAP_NET_RAW for the sockets, CAP_BPF for the filter),
//! but only to set up: once the rings are mapped, the filter attached and
//! the database open, nothing needs privileges. Running on as an ordinary
//! user limits what a bug in the packet decoders could do. The switch is
//! `setgroups` (only the user's primary group), `setgid`, `setuid`; a
//! setuid away from root clears every capability (no `SECBIT_KEEP_CAPS`),
//! which is checked afterwards rather than trusted. glibc applies these
//! calls to every thread of the process (RocksDB's background threads
//! included).

use std::ffi::{CStr, CString};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The user to become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// Looks a user up in the password database.
    pub fn lookup(name: &str) -> Result<User> {
        let c = CString::new(name).context("user name contains a NUL byte")?;
        // SAFETY: passwd is plain old data; all-zero is a valid value.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        // SAFETY: every pointer is valid for the call; `buf` has the length
        // given, and `pwd`'s string fields point into it afterwards.
        let rc = unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc != 0 {
            bail!(
                "looking up user {name:?}: {}",
                std::io::Error::from_raw_os_error(rc)
            );
        }
        if result.is_null() {
            bail!("no user named {name:?}");
        }
        // SAFETY: on success `pw_name` is a NUL-terminated string in `buf`.
        let found = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        Ok(User {
            name: found,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        })
    }
}

/// Gives `path` and everything below it to `user`, so that the database
/// stays writable after the switch.
pub fn chown_tree(path: &Path, user: &User) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in
            std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))?
        {
            chown_tree(&entry?.path(), user)?;
        }
    }
    Ok(())
}

/// Becomes `user` for good: supplementary groups, group, user, in that
/// order (after setuid we could no longer change groups).
pub fn drop_to(user: &User) -> Result<()> {
    let groups = [user.gid as libc::gid_t];
    // SAFETY: `groups` holds one valid gid for the call.
    if unsafe { libc::setgroups(1, groups.as_ptr()) } != 0 {
        bail!("setgroups: {}", std::io::Error::last_os_error());
    }
    // SAFETY: plain syscalls (glibc broadcasts them to every thread).
    if unsafe { libc::setgid(user.gid) } != 0 {
        bail!("setgid({}): {}", user.gid, std::io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::setuid(user.uid) } != 0 {
        bail!("setuid({}): {}", user.uid, std::io::Error::last_os_error());
    }
    // Check rather than trust: no way back to root, no capability left.
    // SAFETY: plain syscalls.
    let (uid, euid, gid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid()) };
    if uid != user.uid || euid != user.uid || gid != user.gid {
        bail!("privilege drop did not take: uid {uid} euid {euid} gid {gid}");
    }
    // SAFETY: plain syscall; it must fail now.
    if user.uid != 0 && unsafe { libc::setuid(0) } == 0 {
        bail!("privilege drop did not take: setuid(0) still works");
    }
    let caps = effective_capabilities()?;
    if user.uid != 0 && caps != 0 {
        bail!("privilege drop left capabilities {caps:#x}");
    }
    Ok(())
}

/// `CapEff` of this process, from `/proc/self/status`.
pub fn effective_capabilities() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .context("no CapEff in /proc/self/status")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_exist() {
        assert_eq!(User::lookup("root").unwrap().uid, 0);
        assert!(User::lookup("nobody").unwrap().uid > 0);
        assert!(User::lookup("no-such-user-pdns").is_err());
    }
}
