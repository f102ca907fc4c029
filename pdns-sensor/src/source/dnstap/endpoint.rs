//! Where dnstap senders connect: `unix:PATH` or `tcp:ADDR:PORT`, and the
//! listening sockets the sensor owns.
//!
//! The collector creates the socket and the DNS server connects to it (and
//! reconnects after a restart of either). A Unix socket is made with the
//! mode and group asked for, so that a resolver running as its own user
//! may connect (`--dnstap-socket-mode 0660 --dnstap-socket-group unbound`).
//! A socket file left behind by a killed sensor is replaced — but only
//! after checking that nothing listens on it any more, and never if the
//! path is something other than a socket. The file is removed again when
//! the listener is dropped, if it is still ours.

use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::{Context, Result, bail};

/// A place to listen for dnstap senders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl FromStr for Endpoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Endpoint, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path (unix:/run/pdns-sensor/dnstap.sock)".into());
            }
            Ok(Endpoint::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            addr.parse().map(Endpoint::Tcp).map_err(|_| {
                format!("{addr:?} is not an address and port (tcp:127.0.0.1:6000, tcp:[::1]:6000)")
            })
        } else {
            Err(format!(
                "{s:?}: expected unix:PATH or tcp:ADDRESS:PORT (unix:/run/pdns-sensor/dnstap.sock, \
                 tcp:127.0.0.1:6000)"
            ))
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// Ownership of a Unix socket file.
#[derive(Clone, Copy, Debug, Default)]
pub struct SocketPermissions {
    /// Mode of the socket file (connecting needs write permission).
    pub mode: u32,
    /// Group given the socket file.
    pub gid: Option<u32>,
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
        /// The socket file's inode, to remove it only while it is ours.
        inode: u64,
    },
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `endpoint` (see the module docs for Unix socket files).
    pub fn bind(endpoint: &Endpoint, permissions: SocketPermissions) -> Result<Listener> {
        let listener = match endpoint {
            Endpoint::Tcp(addr) => Listener::Tcp(
                TcpListener::bind(addr)
                    .with_context(|| format!("listening for dnstap on {endpoint}"))?,
            ),
            Endpoint::Unix(path) => bind_unix(path, permissions)?,
        };
        listener.set_nonblocking()?;
        Ok(listener)
    }

    fn set_nonblocking(&self) -> Result<()> {
        match self {
            Listener::Unix { listener, .. } => listener.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
        .context("making the dnstap listener non-blocking")
    }

    /// Where it listens (the TCP port actually bound, for port 0).
    pub fn endpoint(&self) -> Endpoint {
        match self {
            Listener::Unix { path, .. } => Endpoint::Unix(path.clone()),
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => Endpoint::Tcp(a),
                Err(_) => Endpoint::Tcp(SocketAddr::from(([0, 0, 0, 0], 0))),
            },
        }
    }

    pub(super) fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Listener::Unix { listener, .. } => listener.as_raw_fd(),
            Listener::Tcp(l) => l.as_raw_fd(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { path, inode, .. } = self
            && std::fs::symlink_metadata(&*path).is_ok_and(|m| m.ino() == *inode)
        {
            let _ = std::fs::remove_file(&*path);
        }
    }
}

fn bind_unix(path: &Path, permissions: SocketPermissions) -> Result<Listener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating {} for the dnstap socket", dir.display()))?;
    }
    remove_stale(path)?;
    let listener = UnixListener::bind(path)
        .with_context(|| format!("listening for dnstap on unix:{}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(permissions.mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    if let Some(gid) = permissions.gid {
        std::os::unix::fs::chown(path, None, Some(gid))
            .with_context(|| format!("giving {} to group {gid}", path.display()))?;
    }
    let inode = std::fs::symlink_metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .ino();
    Ok(Listener::Unix {
        listener,
        path: path.to_path_buf(),
        inode,
    })
}

/// Removes a socket file nobody listens on; refuses to touch anything else.
fn remove_stale(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "{} exists and is not a socket: not replacing it (choose another --dnstap path)",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => bail!(
            "another process listens on {} (a second sensor?)",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!("replacing the stale dnstap socket {}", path.display());
            std::fs::remove_file(path)
                .with_context(|| format!("removing the stale socket {}", path.display()))
        }
        Err(e) => {
            Err(e).with_context(|| format!("checking the existing socket {}", path.display()))
        }
    }
}

/// Parses an octal mode as given to `--dnstap-socket-mode` (`0660`, `660`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0o").unwrap_or(s);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(format!("{s:?} is not an octal file mode (0660)")),
    }
}

/// A group by name or number.
pub fn lookup_group(group: &str) -> Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group).context("a group name with a NUL byte")?;
    let mut grp: libc::group = // SAFETY: a plain C struct; all-zero is a valid value to be filled in.
        unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 << 10];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call: `name` is NUL-terminated,
    // `grp` and `result` are live locals, `buf` is writable for its length.
    let rc = unsafe {
        libc::getgrnam_r(
            name.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        bail!("no group named {group:?} (for --dnstap-socket-group)");
    }
    Ok(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "unix:/run/x.sock".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/run/x.sock".into()))
        );
        assert_eq!(
            "tcp:[::1]:6000".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("[::1]:6000".parse().unwrap()))
        );
        for bad in [
            "/run/x.sock",
            "unix:",
            "tcp:localhost",
            "tcp:1.2.3.4",
            "udp:1.2.3.4:5",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
        assert_eq!(parse_mode("0660"), Ok(0o660));
        assert_eq!(parse_mode("666"), Ok(0o666));
        assert!(parse_mode("0999").is_err());
        assert!(parse_mode("7777").is_err());
    }

    #[test]
    fn stale_socket_replaced_live_one_and_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dnstap.sock");
        let perms = SocketPermissions {
            mode: 0o660,
            gid: None,
        };
        let first = Listener::bind(&Endpoint::Unix(path.clone()), perms).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // Someone listens: refused.
        let err = Listener::bind(&Endpoint::Unix(path.clone()), perms).unwrap_err();
        assert!(
            format!("{err:#}").contains("another process listens"),
            "{err:#}"
        );
        drop(first);
        // Left behind by a killed process (the file stays, nobody listens).
        drop(UnixListener::bind(&path).unwrap());
        let second = Listener::bind(&Endpoint::Unix(path.clone()), perms).unwrap();
        drop(second);
        assert!(!path.exists(), "the socket file is removed on drop");
        // A regular file is never replaced.
        std::fs::write(&path, b"data").unwrap();
        let err = Listener::bind(&Endpoint::Unix(path.clone()), perms).unwrap_err();
        assert!(format!("{err:#}").contains("is not a socket"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
    }
}
