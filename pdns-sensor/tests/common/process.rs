//! `pdns-sensor serve` as a child process on a free loopback port, killed
//! when dropped; its stderr goes to a file the test can read.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub(crate) const SENSOR: &str = env!("CARGO_BIN_EXE_pdns-sensor");

pub(crate) struct ServeProcess {
    child: Child,
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Starts `serve --db DB --listen 127.0.0.1:0 ARGS` and waits (20 s at
    /// most) until it logs the port the kernel gave it and that port
    /// accepts connections. The server binds port 0 itself rather than a
    /// port the test found free a moment earlier: with browsers, ClickHouse
    /// and other servers starting beside it, such a port can be taken in
    /// between, and the test would then talk to someone else's server.
    pub(crate) fn start(db: &Path, args: &[&str]) -> ServeProcess {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr");
        let child = Command::new(SENSOR)
            .args(["serve", "--db"])
            .arg(db)
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut serve = ServeProcess {
            child,
            port: 0,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(port) = listening_port(&serve.stderr()) {
                serve.port = port;
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return serve;
                }
            }
            if let Some(status) = serve.child.try_wait().unwrap() {
                panic!("serve exited ({status}):\n{}", serve.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "serve did not start:\n{}",
                serve.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the server logged so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal to the server.
    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid, which is not yet reaped
        // (the child is only waited for on drop).
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "signalling serve");
    }

    /// Waits for the server to exit, `limit` at most.
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits until the log holds `text` (10 s at most).
    pub(crate) fn wait_for_log(&self, text: &str, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.stderr().matches(text).count() < count {
            assert!(
                Instant::now() < deadline,
                "serve never logged {text:?} {count} time(s):\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `serve` with arguments that must stop it at start-up (within
/// 20 s); returns its exit status and stderr.
pub(crate) fn serve_failure(db: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(SENSOR)
        .args(["serve", "--db"])
        .arg(db)
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("serve {args:?} kept running: it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// Runs a client command for at most a minute; fails the test (naming
/// `cargo xtask setup`) when it cannot start or hangs. Returns (success,
/// stdout, stderr).
pub(crate) fn client(cmd: &mut Command) -> (bool, String, String) {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start ({e}); run `cargo xtask setup`"));
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = r.read_to_string(&mut text);
            text
        })
    };
    let out = read(Box::new(child.stdout.take().unwrap()));
    let err = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} hung for a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.success(), out.join().unwrap(), err.join().unwrap())
}

/// Like [`client`], failing the test unless the command succeeds; returns
/// stdout.
pub(crate) fn client_ok(cmd: &mut Command) -> String {
    let (ok, out, err) = client(cmd);
    assert!(ok, "{cmd:?} failed:\n{err}\n{out}");
    out
}

/// The port in serve's "API listening on http(s)://127.0.0.1:PORT" line.
fn listening_port(stderr: &str) -> Option<u16> {
    let line = stderr.lines().find(|l| l.contains("API listening on "))?;
    let addr = line.rsplit("://").next()?;
    let port = addr.trim().rsplit(':').next()?;
    port.parse().ok()
}
