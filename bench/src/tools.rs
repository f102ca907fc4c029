//! What the machine offers the harness: external programs on `PATH` and
//! root. Scenarios and peers ask here before running anything, so a missing
//! tool becomes a "not run" or "missing" entry that says why.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;

/// Whether an executable `program` is in one of the directories of `path`
/// (a `PATH`-style list).
pub fn on_path_in(path: &OsStr, program: &str) -> bool {
    std::env::split_paths(path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Whether `tool` is on this process's `PATH`.
pub fn have(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| on_path_in(&path, tool))
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path() {
        assert!(have("sh"));
        assert!(!have("surely-no-such-tool-here"));
    }
}
