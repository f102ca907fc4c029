//! A systemd unit file's `[Service]` settings, read the way systemd reads
//! the simple subset a packaged unit uses: `Key=value` lines, comments,
//! repeated keys kept in order. What this reader cannot represent faithfully
//! (line continuations, quoting, `%` specifiers in the command line) is a
//! test failure, not a guess.

use std::path::Path;

/// The settings of the `[Service]` section, in file order.
pub(crate) struct Service {
    settings: Vec<(String, String)>,
}

impl Service {
    pub(crate) fn read(path: &Path) -> Service {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let mut section = String::new();
        let mut settings = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            assert!(
                !line.ends_with('\\'),
                "{}: line continuations are not supported here: {line}",
                path.display()
            );
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.to_string();
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not a setting: {line}", path.display()));
            if section == "Service" {
                settings.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
        Service { settings }
    }

    /// Every value given to `key`, in order.
    pub(crate) fn all(&self, key: &str) -> Vec<&str> {
        self.settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of `key` (the last one wins, as in systemd), if set.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.all(key).last().copied()
    }

    /// A boolean setting (`yes`/`true`/`1`/`on`), false when unset.
    pub(crate) fn yes(&self, key: &str) -> bool {
        matches!(self.get(key), Some("yes" | "true" | "1" | "on"))
    }

    /// Every key set, for checking that the sandbox knows them all.
    pub(crate) fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.settings.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    /// `ExecStart=` split into words (no quoting, no specifiers).
    pub(crate) fn exec_start(&self) -> Vec<String> {
        let line = self.get("ExecStart").expect("the unit has an ExecStart=");
        assert!(
            !line.contains(['"', '\'', '%', '$']),
            "ExecStart= uses quoting or specifiers this test does not expand: {line}"
        );
        line.split_whitespace().map(str::to_string).collect()
    }

    /// A space-separated list setting (all its assignments joined).
    pub(crate) fn list(&self, key: &str) -> Vec<String> {
        self.all(key)
            .iter()
            .flat_map(|v| v.split_whitespace())
            .map(str::to_string)
            .collect()
    }
}
