//! `pdns-sensor manpages`: a page for the program and one per command,
//! each rendering without a single warning through groff (`-ww`, every
//! warning enabled) and through man-db's `man -l`, as a reader sees it.

use std::path::{Path, PathBuf};
use std::process::Command;

const SENSOR: &str = env!("CARGO_BIN_EXE_pdns-sensor");

/// The pages there must be: the program's, and one per command `--help`
/// shows (taken from the same clap definition the binary parses with, so
/// a new command needs no change here).
fn pages() -> Vec<String> {
    let root = pdns_sensor::cli::command();
    std::iter::once("pdns-sensor.1".to_string())
        .chain(
            root.get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| format!("pdns-sensor-{}.1", c.get_name())),
        )
        .collect()
}

fn generate(dir: &Path) -> Vec<PathBuf> {
    let out = Command::new(SENSOR)
        .args(["manpages", "--out"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(PathBuf::from)
        .collect()
}

fn tool(cmd: &mut Command, name: &str) -> (String, String) {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "`{name}` must be installed (`cargo xtask setup` installs man-db and groff-base): {e}"
        )
    });
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn one_page_per_visible_command() {
    let dir = tempfile::tempdir().unwrap();
    let written = generate(&dir.path().join("man1"));
    let mut names: Vec<String> = written
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut expected = pages();
    expected.sort();
    assert_eq!(names, expected);
    for page in &written {
        assert!(page.is_file(), "{}", page.display());
    }
}

#[test]
fn every_page_renders_without_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let written = generate(dir.path());
    assert_eq!(written.len(), pages().len());
    for page in &written {
        let (_, warnings) = tool(
            Command::new("groff")
                .args(["-man", "-Tutf8", "-ww", "-z"])
                .arg(page),
            "groff",
        );
        assert_eq!(warnings, "", "groff warns about {}", page.display());
        let (text, warnings) = tool(
            Command::new("man")
                .args(["--warnings=all", "-l"])
                .arg(page)
                .env("MANWIDTH", "80")
                .env_remove("MAN_KEEP_FORMATTING")
                .env_remove("MANPAGER")
                .env("PAGER", "cat"),
            "man",
        );
        assert_eq!(warnings, "", "man warns about {}", page.display());
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(
                text.contains(section),
                "{} has no {section}:\n{text}",
                page.display()
            );
        }
    }
}

#[test]
fn the_run_page_documents_its_options() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path());
    let (text, _) = tool(
        Command::new("man")
            .args(["-l"])
            .arg(dir.path().join("pdns-sensor-run.1"))
            .env("MANWIDTH", "200")
            .env_remove("MAN_KEEP_FORMATTING")
            .env_remove("MANPAGER")
            .env("PAGER", "cat"),
        "man",
    );
    for needle in [
        "pdns-sensor-run - Capture DNS live",
        "--interface",
        "--user",
        "--filter",
        "pdns-sensor(1)",
    ] {
        assert!(text.contains(needle), "{needle}:\n{text}");
    }
}

#[test]
fn an_unwritable_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(SENSOR)
        .args(["manpages", "--out"])
        .arg(file.join("man1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pdns-sensor: error: creating") && stderr.contains("a-file/man1"),
        "{stderr}"
    );
}
