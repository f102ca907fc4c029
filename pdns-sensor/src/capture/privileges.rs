//! Dropping privileges after setup, as `tcpdump -Z` does.
//!
//! Capture needs privileges (CAP_NET_RAW for the sockets, CAP_BPF for the
//! filter), but only to set up: once the rings are mapped and the filter
//! attached, nothing needs them. Running on without them limits what a bug
//! in the packet decoders could do. Two starts lead there:
//!
//! * **As root** (`pdns-sensor run --user USER`): `setgroups` (only the
//!   user's primary group), `setgid`, `setuid`; a setuid away from root
//!   clears every capability (no `SECBIT_KEEP_CAPS`). glibc applies these
//!   calls to every thread of the process.
//! * **As the user already, holding only the capabilities capture needs**
//!   (the systemd unit: `User=` with `AmbientCapabilities=`): there is no
//!   user to switch, and no right to; the sensor clears its capability sets
//!   (ambient, inheritable, permitted, effective). That call acts on the
//!   calling thread only, which is why `run` drops before it starts any
//!   other thread (the database, whose RocksDB threads would keep
//!   whatever the process held then, is opened after the drop).
//!
//! Either way the result is checked rather than trusted, on every thread
//! of the process: no capability left, no way back to root.
//!
//! **No way back through `execve` either.** Empty capability sets are not
//! the end of it: a setuid-root or file-capability program run later would
//! hand privileges back. So, before any thread exists (both settings are
//! per thread and inherited by the threads started afterwards),
//! [`lock_exec_privileges`] sets `PR_SET_NO_NEW_PRIVS` — no `execve` will
//! grant anything — and empties the capability bounding set, which needs
//! CAP_SETPCAP: root has it; a service started with only the capture
//! capabilities does not, and keeps the bounding set its service manager
//! gave it (the unit's `CapabilityBoundingSet=`), which no-new-privs makes
//! harmless. Neither touches the capabilities setup still needs: the
//! bounding set limits only what an `execve` may grant. [`drop_to`]
//! checks both on every thread.

use std::ffi::{CStr, CString};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// The user to become.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl User {
    /// Looks a user up in the password database.
    pub(crate) fn lookup(name: &str) -> Result<User> {
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
pub(crate) fn chown_tree(path: &Path, user: &User) -> Result<()> {
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

/// Fails early, before anything is set up, when `drop_to(user)` could not
/// succeed: switching to another user needs CAP_SETUID, CAP_SETGID and
/// (to give it the database) CAP_CHOWN, which root has.
pub(crate) fn check_can_become(user: &User) -> Result<()> {
    const CAP_CHOWN: u32 = 0;
    const CAP_SETGID: u32 = 6;
    const CAP_SETUID: u32 = 7;
    // SAFETY: plain syscall.
    let euid = unsafe { libc::geteuid() };
    if euid == user.uid {
        return Ok(());
    }
    let caps = effective_capabilities()?;
    let missing: Vec<&str> = [
        (CAP_SETUID, "CAP_SETUID"),
        (CAP_SETGID, "CAP_SETGID"),
        (CAP_CHOWN, "CAP_CHOWN"),
    ]
    .into_iter()
    .filter(|(bit, _)| caps & (1 << bit) == 0)
    .map(|(_, name)| name)
    .collect();
    if !missing.is_empty() {
        bail!(
            "--user {}: running as uid {euid}, and switching to uid {} needs root \
             (this process lacks {})",
            user.name,
            user.uid,
            missing.join(", ")
        );
    }
    Ok(())
}

/// Before any thread is started, when privileges will be dropped: no
/// `execve` may grant privileges from now on (`PR_SET_NO_NEW_PRIVS`), and
/// the capability bounding set is emptied when this process may do so
/// (CAP_SETPCAP). Returns whether the bounding set was emptied.
pub(crate) fn lock_exec_privileges() -> Result<bool> {
    // SAFETY: plain prctl(2) with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        bail!("PR_SET_NO_NEW_PRIVS: {}", std::io::Error::last_os_error());
    }
    const CAP_SETPCAP: u32 = 8;
    if effective_capabilities()? & (1 << CAP_SETPCAP) == 0 {
        return Ok(false);
    }
    caps::clear(None, caps::CapSet::Bounding).context("emptying the capability bounding set")?;
    Ok(true)
}

/// Becomes `user` for good, with no capability left on any thread. As
/// root: supplementary groups, group, user, in that order (after setuid we
/// could no longer change groups). Already running as `user` (with
/// capabilities from a service manager): only the capabilities go.
/// Checks every thread holds no capability and has no_new_privs set (see
/// [`lock_exec_privileges`], called before), and, if `bounding_emptied`,
/// an empty bounding set.
pub(crate) fn drop_to(user: &User, bounding_emptied: bool) -> Result<()> {
    // SAFETY: plain syscalls.
    let (uid, euid, gid) = unsafe { (libc::getuid(), libc::geteuid(), libc::getgid()) };
    if user.uid != 0 && uid == user.uid && euid == user.uid {
        if gid != user.gid {
            bail!(
                "already running as {} but with group {gid}, not its group {}; \
                 changing the group needs root",
                user.name,
                user.gid
            );
        }
        clear_capabilities()?;
    } else {
        switch_user(user)?;
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
    if user.uid != 0 {
        for thread in thread_capabilities()? {
            if thread.caps != 0 {
                bail!(
                    "privilege drop left capabilities {:#x} on thread {}",
                    thread.caps,
                    thread.tid
                );
            }
            if bounding_emptied && thread.bounding != 0 {
                bail!(
                    "thread {} kept capability bounding set {:#x}",
                    thread.tid,
                    thread.bounding
                );
            }
            if !thread.no_new_privs {
                bail!(
                    "thread {} may still gain privileges through execve (no_new_privs unset)",
                    thread.tid
                );
            }
        }
    }
    Ok(())
}

/// root → `user`: groups first, then the user (which clears the
/// capabilities of every thread).
fn switch_user(user: &User) -> Result<()> {
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
    Ok(())
}

/// Clears every capability set of the calling thread: ambient first (an
/// ambient capability must stay permitted and inheritable), then
/// inheritable, effective and permitted. The bounding set stays (lowering
/// it needs CAP_SETPCAP); with nothing permitted, and `execve` granting
/// nothing to a non-root user without file capabilities, nothing in it can
/// come back.
fn clear_capabilities() -> Result<()> {
    use caps::CapSet;
    for set in [
        CapSet::Ambient,
        CapSet::Inheritable,
        CapSet::Effective,
        CapSet::Permitted,
    ] {
        caps::clear(None, set).with_context(|| format!("clearing the {set:?} capabilities"))?;
    }
    Ok(())
}

/// For a helper thread started before the privilege drop that needs no
/// capability: in a process not running as root, the thread clears its
/// own (the drop clears only the dropping thread's). A root process's
/// threads keep theirs: `--user`'s setuid clears them on every thread, and
/// a thread unable to follow that setuid would make glibc abort.
pub(crate) fn release_thread_capabilities() {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0
        && let Err(e) = clear_capabilities()
    {
        tracing::warn!("{e:#}");
    }
}

/// What one thread may do, from its `status` file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ThreadPrivileges {
    pub tid: u32,
    /// The union of its permitted, effective and ambient capabilities.
    pub caps: u64,
    /// Its capability bounding set.
    pub bounding: u64,
    /// Whether `execve` is barred from granting privileges.
    pub no_new_privs: bool,
}

/// Every thread of this process, from `/proc/self/task/*/status`.
pub(crate) fn thread_capabilities() -> Result<Vec<ThreadPrivileges>> {
    let mut threads = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").context("listing /proc/self/task")? {
        let entry = entry.context("listing /proc/self/task")?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let status = match std::fs::read_to_string(entry.path().join("status")) {
            Ok(s) => s,
            // A thread that ended since the listing holds nothing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).context("reading a thread's status"),
        };
        let field = |name: &str| {
            capability_field(&status, name)
                .with_context(|| format!("no {name} in /proc/self/task/{tid}/status"))
        };
        threads.push(ThreadPrivileges {
            tid,
            caps: field("CapPrm:")? | field("CapEff:")? | field("CapAmb:")?,
            bounding: field("CapBnd:")?,
            no_new_privs: field("NoNewPrivs:")? == 1,
        });
    }
    Ok(threads)
}

/// A hexadecimal capability set from a `status` file.
fn capability_field(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

/// `CapEff` of this process, from `/proc/self/status`.
pub(crate) fn effective_capabilities() -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    capability_field(&status, "CapEff:").context("no CapEff in /proc/self/status")
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

    #[test]
    fn capability_fields_of_a_status_file() {
        let status = "Name:\tpdns-sensor\nCapInh:\t0000000000000000\n\
                      CapPrm:\t000000c000002000\nCapEff:\t0000008000002000\n";
        assert_eq!(capability_field(status, "CapPrm:"), Some(0xc0_0000_2000));
        assert_eq!(capability_field(status, "CapEff:"), Some(0x80_0000_2000));
        assert_eq!(capability_field(status, "CapAmb:"), None);
    }

    #[test]
    fn every_thread_is_listed() {
        let started = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                started.wait();
                started.wait();
            });
            started.wait();
            assert!(thread_capabilities().unwrap().len() >= 2);
            started.wait();
        });
    }
}
