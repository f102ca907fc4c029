//! Benchmark results as data: one [`Entry`] per (scenario, system, workload)
//! measurement, collected into a [`Report`] that is written as JSON (for
//! tools and later comparisons) and as a Markdown table (for people).
//!
//! The entry shape is shared by every scenario and by peer systems, so new
//! scenarios only add entries; nothing here knows about ingest specifically.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::sysinfo::Machine;
use crate::table::Table;

/// The system name of the sensor under test.
pub const SENSOR: &str = "pdns-sensor";

/// One measurement.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub scenario: String,
    pub system: String,
    /// Parameters that identify the workload (including `label`).
    pub workload: BTreeMap<String, Value>,
    /// Measured numbers; absent when the system did not report them.
    pub figures: BTreeMap<String, f64>,
    /// Figures relative to a reference (e.g. the raw-read baseline).
    pub ratios: BTreeMap<String, f64>,
    /// Problems worth knowing when reading the figures (failures, missing keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Entry {
    pub fn new(scenario: &str, system: &str) -> Self {
        Entry {
            scenario: scenario.into(),
            system: system.into(),
            ..Entry::default()
        }
    }

    /// The workload's `label`, or "" when it has none.
    pub fn label(&self) -> &str {
        self.workload
            .get("label")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Identity of the entry within a report.
    pub fn key(&self) -> (String, String, String) {
        let workload = serde_json::to_string(&self.workload).unwrap_or_default();
        (self.scenario.clone(), self.system.clone(), workload)
    }

    pub fn set_workload(&mut self, k: &str, v: impl Into<Value>) {
        self.workload.insert(k.into(), v.into());
    }

    /// Records `v` under `k` when present (and finite).
    pub fn set_figure(&mut self, k: &str, v: Option<f64>) {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            self.figures.insert(k.into(), v);
        }
    }

    pub fn figure(&self, k: &str) -> Option<f64> {
        self.figures.get(k).copied()
    }

    pub fn failed(&self) -> bool {
        self.notes.iter().any(|n| n.starts_with("failed"))
    }
}

/// `a / b` when both are present and finite and `b` is positive: the one
/// way figures become rates and ratios, so a missing or zero measurement
/// gives a missing figure rather than an infinity.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// All entries of one `bench run`.
#[derive(Clone, Debug)]
pub struct Report {
    pub machine: Machine,
    pub entries: Vec<Entry>,
}

impl Report {
    pub fn new(machine: Machine) -> Self {
        Report {
            machine,
            entries: Vec::new(),
        }
    }

    /// Adds entries, replacing an existing entry with the same key.
    pub fn extend(&mut self, entries: impl IntoIterator<Item = Entry>) {
        for e in entries {
            let key = e.key();
            self.entries.retain(|x| x.key() != key);
            self.entries.push(e);
        }
    }

    pub fn scenarios(&self) -> Vec<String> {
        let mut s: Vec<String> = Vec::new();
        for e in &self.entries {
            if !s.contains(&e.scenario) {
                s.push(e.scenario.clone());
            }
        }
        s
    }

    /// Entries as the JSON array written to disk.
    pub fn to_json(&self, scenario: Option<&str>) -> Result<String> {
        let entries: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| scenario.is_none_or(|s| e.scenario == s))
            .collect();
        Ok(serde_json::to_string_pretty(&entries)? + "\n")
    }

    /// Markdown: one table per scenario, then the machine description.
    pub fn to_markdown(&self, tables: &[(String, Table)]) -> String {
        let mut md = format!(
            "# pdns-sensor benchmark results ({})\n\n",
            self.machine.date
        );
        for (title, t) in tables {
            md.push_str(&format!("## {title}\n\n{}\n", t.markdown()));
        }
        let notes: Vec<String> = self
            .entries
            .iter()
            .flat_map(|e| {
                e.notes
                    .iter()
                    .map(move |n| format!("- {} / {} / {}: {n}", e.scenario, e.system, e.label()))
            })
            .collect();
        if !notes.is_empty() {
            md.push_str(&format!("## Notes\n\n{}\n\n", notes.join("\n")));
        }
        md.push_str(&self.machine.markdown());
        md
    }

    /// Adds entries of an earlier `latest.json` in `dir` for (scenario,
    /// system) pairs this report does not cover, so re-running one scenario
    /// (or adding a peer system's entries) does not discard the others.
    pub fn merge_previous(&mut self, dir: &Path) {
        let Ok(text) = fs::read_to_string(dir.join("latest.json")) else {
            return;
        };
        let Ok(old) = serde_json::from_str::<Vec<Entry>>(&text) else {
            return;
        };
        let covered: Vec<(String, String)> = self
            .entries
            .iter()
            .map(|e| (e.scenario.clone(), e.system.clone()))
            .collect();
        let keep: Vec<Entry> = old
            .into_iter()
            .filter(|e| !covered.contains(&(e.scenario.clone(), e.system.clone())))
            .collect();
        let mut merged = keep;
        merged.append(&mut self.entries);
        self.entries = merged;
    }

    /// Writes `<date>-<scenario>.json` for each scenario of this report,
    /// then merges earlier entries (see [`Report::merge_previous`]) into
    /// `latest.json` and writes `latest.md`; returns the paths written.
    pub fn write(&self, dir: &Path, tables: &[(String, Table)]) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut written = Vec::new();
        let mut put = |name: String, body: String| -> Result<()> {
            let p = dir.join(name);
            fs::write(&p, body).with_context(|| format!("writing {}", p.display()))?;
            written.push(p);
            Ok(())
        };
        for s in self.scenarios() {
            put(
                format!("{}-{s}.json", self.machine.day),
                self.to_json(Some(&s))?,
            )?;
        }
        let mut latest = self.clone();
        latest.merge_previous(dir);
        put("latest.json".into(), latest.to_json(None)?)?;
        let plots = crate::plot::write_plots(&latest.entries, dir, "latest")?;
        // Plots a scenario of this run drew itself, from data that are not
        // entries (the soak's samples): `latest-SCENARIO.svg`.
        let own: Vec<PathBuf> = self
            .scenarios()
            .iter()
            .map(|s| dir.join(format!("latest-{s}.svg")))
            .filter(|p| p.is_file())
            .collect();
        let mut md = self.to_markdown(tables);
        if !plots.is_empty() || !own.is_empty() {
            md.push_str("\n## Plots\n\n");
            for p in plots.iter().chain(&own) {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                md.push_str(&format!("![{name}]({name})\n"));
            }
        }
        put("latest.md".into(), md)?;
        written.extend(plots);
        written.extend(crate::plot::write_plots(
            &self.entries,
            dir,
            &self.machine.day,
        )?);
        Ok(written)
    }
}

/// Copies `latest.md` and the `latest-*.svg` plots of `dir` to
/// `reference.md` and `reference/*.svg` (the result the README links),
/// with the image links rewritten; returns the paths written.
pub fn save_reference(dir: &Path) -> Result<Vec<PathBuf>> {
    let md = fs::read_to_string(dir.join("latest.md")).context("reading latest.md")?;
    let refdir = dir.join("reference");
    if refdir.exists() {
        fs::remove_dir_all(&refdir).with_context(|| format!("clearing {}", refdir.display()))?;
    }
    fs::create_dir_all(&refdir)?;
    let mut written = Vec::new();
    let mut md = md;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if let Some(plot) = name.strip_prefix("latest-").filter(|n| n.ends_with(".svg")) {
            let to = refdir.join(plot);
            fs::copy(&path, &to).with_context(|| format!("copying {}", path.display()))?;
            md = md.replace(
                &format!("![{name}]({name})"),
                &format!("![{plot}](reference/{plot})"),
            );
            written.push(to);
        }
    }
    let to = dir.join("reference.md");
    fs::write(&to, md)?;
    written.push(to);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(scenario: &str, system: &str, label: &str) -> Entry {
        let mut e = Entry::new(scenario, system);
        e.set_workload("label", label);
        e.set_figure("packets_per_sec", Some(1.5e6));
        e.set_figure("missing", None);
        e.set_figure("nan", Some(f64::NAN));
        e
    }

    #[test]
    fn json_is_an_array_with_one_entry_per_key() {
        let mut r = Report::new(Machine::probe());
        r.extend([
            entry("ingest", SENSOR, "a"),
            entry("ingest", "raw-read", "a"),
        ]);
        r.extend([entry("ingest", SENSOR, "a"), entry("ingest", SENSOR, "b")]);
        r.extend([entry("live", SENSOR, "a")]);
        let dir = tempfile::tempdir().unwrap();
        let files = r.write(dir.path(), &[]).unwrap();
        assert_eq!(files.len(), 4);

        let latest: Vec<Entry> =
            serde_json::from_str(&fs::read_to_string(dir.path().join("latest.json")).unwrap())
                .unwrap();
        assert_eq!(latest.len(), 4);
        let mut keys: Vec<_> = latest.iter().map(Entry::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 4);
        for e in &latest {
            assert!(!e.scenario.is_empty() && !e.system.is_empty());
            assert!(!e.figures.contains_key("missing") && !e.figures.contains_key("nan"));
        }
        let raw: Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join("latest.json")).unwrap())
                .unwrap();
        for e in raw.as_array().unwrap() {
            for k in ["scenario", "system", "workload", "figures", "ratios"] {
                assert!(e.get(k).is_some(), "entry lacks {k}");
            }
        }
        let ingest = format!("{}-ingest.json", r.machine.day);
        let per: Vec<Entry> =
            serde_json::from_str(&fs::read_to_string(dir.path().join(ingest)).unwrap()).unwrap();
        assert_eq!(per.len(), 3);
        assert!(
            fs::read_to_string(dir.path().join("latest.md"))
                .unwrap()
                .contains("nproc")
        );

        // Re-running only the live scenario keeps the ingest entries.
        let mut again = Report::new(Machine::probe());
        again.extend([entry("live", SENSOR, "z")]);
        again.write(dir.path(), &[]).unwrap();
        let latest: Vec<Entry> =
            serde_json::from_str(&fs::read_to_string(dir.path().join("latest.json")).unwrap())
                .unwrap();
        assert_eq!(latest.len(), 4);
        assert_eq!(latest.iter().filter(|e| e.scenario == "live").count(), 1);

        // The reference copy points at its own plots.
        fs::write(dir.path().join("latest-x.svg"), "<svg/>").unwrap();
        let md = fs::read_to_string(dir.path().join("latest.md")).unwrap();
        fs::write(
            dir.path().join("latest.md"),
            md + "![latest-x.svg](latest-x.svg)\n",
        )
        .unwrap();
        save_reference(dir.path()).unwrap();
        let reference = fs::read_to_string(dir.path().join("reference.md")).unwrap();
        assert!(
            reference.contains("![x.svg](reference/x.svg)"),
            "{reference}"
        );
        assert!(dir.path().join("reference/x.svg").exists());
        assert_eq!(
            latest
                .iter()
                .find(|e| e.scenario == "live")
                .unwrap()
                .label(),
            "z"
        );
    }
}
