//! A real browser for the web page's tests: Debian's Chromium, headless,
//! driven through ChromeDriver's WebDriver interface (fantoccini). Both
//! are installed by `cargo xtask setup`; a missing one fails the test.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

pub(crate) struct Browser {
    pub client: Client,
    /// Held for its `Drop`: kills chromedriver and its Chromium.
    _driver: Driver,
    log: PathBuf,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session
    /// of `width`×`height`.
    ///
    /// The port comes from [`crate::common::free_port`], below the
    /// ephemeral range, but another process can still hold it — on a
    /// machine running seven browsers at once, another Chromium's DevTools
    /// port, say. A session request sent there fails with a dropped
    /// connection (CI saw exactly that once, with an ephemeral port). So
    /// the driver only counts as up when its *own* log says it listens on
    /// that port with no bind failure, and a session that still cannot be
    /// made is tried again with a new driver on a new port, three times
    /// before the test fails.
    pub(crate) async fn start(width: u32, height: u32) -> Browser {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let profile = tempfile::tempdir().unwrap();
            let (driver, port, log) = Driver::spawn(profile.path());
            match Self::session(port, profile.path(), width, height).await {
                Ok(client) => {
                    let browser = Browser {
                        client,
                        _driver: driver,
                        log,
                        _profile: profile,
                    };
                    browser.client.set_window_size(width, height).await.unwrap();
                    return browser;
                }
                Err(e) => {
                    failures.push(format!(
                        "port {port}: {e}\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    ));
                    drop(driver);
                }
            }
        }
        panic!("no WebDriver session:\n{}", failures.join("\n---\n"));
    }

    /// Asks the chromedriver on `port` for a headless Chromium session.
    async fn session(
        port: u16,
        profile: &std::path::Path,
        width: u32,
        height: u32,
    ) -> Result<Client, fantoccini::error::NewSessionError> {
        let data_dir = profile.join("profile");
        // The flags keep Chromium off the network (this machine's is
        // closed) and out of the sandbox (the tests run as root).
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-quic".to_string(),
            "--no-first-run".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--hide-scrollbars".to_string(),
            format!("--user-data-dir={}", data_dir.display()),
            format!("--window-size={width},{height}"),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
    }

    /// Opens `url` and waits until the page has finished its search.
    pub(crate) async fn open(&self, url: &str) {
        self.client.goto(url).await.unwrap();
        self.wait_ready().await;
    }

    /// Waits (20 s at most) until the page says it is done: the body's
    /// `data-ready` is `yes` (searched) or `error` (said why not), or the
    /// key box is shown.
    pub(crate) async fn wait_ready(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self
                .run(
                    "return document.readyState === 'complete' \
                     ? (document.body.dataset.ready || null) : null",
                )
                .await;
            if let Value::String(s) = state {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the page never finished: {}",
                self.run("return document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the URL changes away from `from`, then for the page.
    pub(crate) async fn wait_navigated(&self, from: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.client.current_url().await.unwrap().as_str() == from {
            assert!(Instant::now() < deadline, "no navigation from {from}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.wait_ready().await;
    }

    /// Runs a script and returns its value.
    pub(crate) async fn run(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// The text of every cell of a table's body, row by row; a name cell
    /// gives its first link's text (the name, without the pivot arrow).
    pub(crate) async fn table(&self, id: &str) -> Vec<Vec<String>> {
        let script = format!(
            "return [...document.getElementById('{id}').tBodies[0].rows].map(tr => \
               [...tr.cells].map(td => td.classList.contains('name') \
                 ? (td.querySelector('a') ? td.querySelector('a').textContent : '') \
                 : td.textContent))"
        );
        serde_json::from_value(self.run(&script).await).unwrap()
    }

    /// The text of an element.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Whether an element is shown (present and not `hidden`).
    pub(crate) async fn shown(&self, id: &str) -> bool {
        self.run(&format!(
            "const e = document.getElementById('{id}'); return !!e && !e.hidden && \
             getComputedStyle(e).display !== 'none'"
        ))
        .await
            == json!(true)
    }

    /// The page as a PNG.
    pub(crate) async fn screenshot(&self) -> Vec<u8> {
        self.client.screenshot().await.unwrap()
    }

    /// What chromedriver logged (for failure messages).
    pub(crate) fn driver_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// A chromedriver process of this test's own, killed with its process
/// group when dropped (until a session hands it to a [`Browser`]).
struct Driver {
    child: Child,
}

impl Driver {
    /// Spawns chromedriver on a free port and waits (20 s at
    /// most) until its own log says it is listening there; a driver that
    /// lost the port to another process is killed and the next port tried.
    fn spawn(dir: &std::path::Path) -> (Driver, u16, PathBuf) {
        let mut lost = Vec::new();
        for attempt in 0..5 {
            let log = dir.join(format!("chromedriver-{attempt}.log"));
            let port = crate::common::free_port();
            // A process group of its own: dropping it kills chromedriver
            // and every Chromium process it started, even when the test
            // panicked before closing its session. Killed, Chromium leaves
            // its singleton socket's directory behind in the temporary
            // directory, so that is the test's own, removed with it.
            let child = Command::new("chromedriver")
                .process_group(0)
                .env("TMPDIR", dir)
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("chromedriver could not start ({e}): run `cargo xtask setup`")
                });
            let mut driver = Driver { child };
            let listening = format!("started successfully on port {port}");
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                if text.contains("bind() failed") || text.contains("failed with error") {
                    lost.push(format!("port {port}: {text}"));
                    break;
                }
                if text.contains(&listening)
                    && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                {
                    return (driver, port, log);
                }
                if let Ok(Some(status)) = driver.child.try_wait() {
                    lost.push(format!("port {port}: exited {status}: {text}"));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not listen on {port}: {text}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("chromedriver found no free port:\n{}", lost.join("\n"));
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group the child leads (spawned
        // with process_group(0); its pid is the group id, not yet reaped
        // since wait() comes after).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}
