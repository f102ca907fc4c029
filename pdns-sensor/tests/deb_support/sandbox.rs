//! A service unit's sandbox without a running systemd: the command line
//! that starts a unit's `ExecStart=` the way systemd would, as far as a
//! test can rebuild it from the unit file itself.
//!
//! * **Identity and capabilities** (`User=`, `Group=`,
//!   `AmbientCapabilities=`, `CapabilityBoundingSet=`, `NoNewPrivileges=`):
//!   `setpriv`, with the user's groups, exactly the unit's capability set
//!   as inheritable, ambient and bounding set, and no-new-privs.
//! * **File system** (`ProtectSystem=strict`, `StateDirectory=`,
//!   `RuntimeDirectory=` (made under /run for the unit's user, as systemd
//!   does at start),
//!   `ReadWritePaths=`, `ProtectHome=`, `PrivateTmp=`, `PrivateDevices=`,
//!   `ProtectKernelTunables=`, `ProtectKernelModules=`,
//!   `ProtectKernelLogs=`, `ProtectControlGroups=`, `ProcSubset=`,
//!   `ProtectProc=`, `PrivateMounts=`): a private mount namespace
//!   (`unshare`) in which a root shell remounts every file system
//!   read-only but the state directory and the writable paths, puts empty
//!   file systems over /tmp, /var/tmp, the home directories and the
//!   kernel modules, a minimal /dev (null, zero, full, random, urandom,
//!   tty; no /dev/kmsg), and a /proc of the process's own directories.
//! * **IPC and host name** (`PrivateIPC=`, `ProtectHostname=`): their own
//!   namespaces.
//! * **System calls** (`SystemCallFilter=` with its groups expanded by
//!   `systemd-analyze syscall-filter`, `SystemCallErrorNumber=`,
//!   `SystemCallArchitectures=native`, `RestrictAddressFamilies=`,
//!   `MemoryDenyWriteExecute=`, `RestrictNamespaces=`): seccomp filters
//!   built with libseccomp's Python binding as systemd builds them, loaded
//!   right before the service binary is executed.
//! * `UMask=`, `WorkingDirectory=`, `LimitNOFILE=`: the shell's `umask`,
//!   `cd`, `ulimit -n`.
//!
//! Settings only a service manager acts on (`Type=`, `ExecReload=`, `Restart=`,
//! `RestartSec=`, `KillSignal=` and `TimeoutStopSec=` — which the test
//! honours when it stops the service — `RemoveIPC=`, `KeyringMode=`) and
//! seccomp argument checks on calls the sensor never makes
//! (`LockPersonality=`, `RestrictRealtime=`, `RestrictSUIDSGID=`,
//! `ProtectClock=`) are listed in [`NOT_EMULATED`]; `systemd-analyze
//! verify` checks them. A unit setting in neither list fails the test, so
//! a new directive cannot slip past it.

use std::collections::BTreeSet;
use std::process::Command;

use super::unit::Service;

/// Settings the sandbox rebuilds.
const EMULATED: [&str; 35] = [
    "ExecStart",
    "User",
    "Group",
    "AmbientCapabilities",
    "CapabilityBoundingSet",
    "NoNewPrivileges",
    "StateDirectory",
    "StateDirectoryMode",
    "RuntimeDirectory",
    "RuntimeDirectoryMode",
    "ReadWritePaths",
    "WorkingDirectory",
    "UMask",
    "LimitNOFILE",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateIPC",
    "PrivateMounts",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectHostname",
    "ProtectProc",
    "ProcSubset",
    "RestrictNamespaces",
    "MemoryDenyWriteExecute",
    "RestrictAddressFamilies",
    "SystemCallArchitectures",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "KillSignal",
    "TimeoutStopSec",
];

/// Settings left to the service manager, or checks on calls the sensor
/// never makes.
pub(crate) const NOT_EMULATED: [&str; 10] = [
    "Type",
    "ExecReload",
    "Restart",
    "RestartSec",
    "RemoveIPC",
    "KeyringMode",
    "LockPersonality",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "ProtectClock",
];

const PYTHON: &str = "/usr/bin/python3";
const SECCOMP_EXEC: &str = include_str!("seccomp_exec.py");

/// The command that runs the unit's `ExecStart=` followed by `extra`, in
/// network namespace `netns`, inside the unit's sandbox.
pub(crate) fn command(unit: &Service, netns: &str, extra: &[&str]) -> Command {
    let unknown: Vec<&str> = unit
        .keys()
        .into_iter()
        .filter(|k| !EMULATED.contains(k) && !NOT_EMULATED.contains(k))
        .collect();
    assert!(
        unknown.is_empty(),
        "unit settings the sandbox neither rebuilds nor lists as left out: {unknown:?}"
    );
    let mut exec = unit.exec_start();
    exec.extend(extra.iter().map(|s| s.to_string()));

    let mut unshare = vec!["--mount", "--propagation", "private"];
    if unit.yes("PrivateIPC") {
        unshare.push("--ipc");
    }
    if unit.yes("ProtectHostname") {
        unshare.push("--uts");
    }

    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, "unshare"])
        .args(&unshare)
        .args(["--", "/bin/sh", "-c", &mount_script(unit), "sh"])
        .args(setpriv(unit))
        .args([PYTHON, "-c", SECCOMP_EXEC, &seccomp_spec(unit), "--"])
        .args(&exec);
    cmd
}

/// `setpriv` for `User=`, `Group=`, the capabilities and no-new-privs.
fn setpriv(unit: &Service) -> Vec<String> {
    let user = unit.get("User").expect("the unit names a User=");
    let group = unit.get("Group").unwrap_or(user);
    let names = |key: &str| -> String {
        let caps: Vec<String> = unit
            .list(key)
            .iter()
            .map(|c| {
                let name = c
                    .strip_prefix("CAP_")
                    .unwrap_or_else(|| panic!("{key}: not a capability name: {c}"));
                format!(",+{}", name.to_lowercase())
            })
            .collect();
        format!("-all{}", caps.concat())
    };
    let ambient = names("AmbientCapabilities");
    let mut args = vec![
        "setpriv".to_string(),
        format!("--reuid={user}"),
        format!("--regid={group}"),
        "--init-groups".to_string(),
        format!("--inh-caps={ambient}"),
        format!("--ambient-caps={ambient}"),
        format!("--bounding-set={}", names("CapabilityBoundingSet")),
    ];
    if unit.yes("NoNewPrivileges") {
        args.push("--no-new-privs".to_string());
    }
    args.push("--".to_string());
    args
}

/// Single-quoted for sh.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The root shell that lays out the file system, then executes `"$@"`.
fn mount_script(unit: &Service) -> String {
    let mut s = String::from("set -eu\nmount --make-rprivate /\n");
    // RuntimeDirectory=: made fresh at start, owned by the unit's user
    // (before anything is made read-only).
    let user = unit.get("User").expect("the unit names a User=");
    let group = unit.get("Group").unwrap_or(user);
    let mode = unit.get("RuntimeDirectoryMode").unwrap_or("0755");
    for d in unit.list("RuntimeDirectory") {
        let q = quote(&format!("/run/{d}"));
        s += &format!(
            "rm -rf {q}\nmkdir -p {q}\nchown {}:{} {q}\nchmod {mode} {q}\n",
            quote(user),
            quote(group)
        );
    }
    if unit.yes("PrivateTmp") {
        s += "for d in /tmp /var/tmp; do mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs \"$d\"; done\n";
    }
    if unit.yes("PrivateDevices") {
        // Built aside on the new /tmp, then moved over /dev. No /dev/kmsg
        // (ProtectKernelLogs=), no disks.
        s += r#"d=$(mktemp -d /tmp/.dev.XXXXXX)
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs "$d"
for n in null zero full random urandom tty; do touch "$d/$n"; mount --bind "/dev/$n" "$d/$n"; done
ln -s /proc/self/fd "$d/fd"
for i in 0 1 2; do ln -s /proc/self/fd/$i "$d/$(echo stdin stdout stderr | cut -d' ' -f$((i+1)))"; done
mkdir "$d/shm" "$d/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$d/shm"
mount --move "$d" /dev
"#;
    }
    match unit.get("ProtectHome") {
        Some("yes") => {
            s += "for d in /home /root /run/user; do if [ -d \"$d\" ]; then mount -t tmpfs -o ro,mode=0755 tmpfs \"$d\"; fi; done\n"
        }
        None | Some("no") => {}
        Some(other) => panic!("ProtectHome={other} is not rebuilt here"),
    }
    if unit.yes("ProtectKernelModules") {
        s += "for d in /usr/lib/modules /lib/modules; do if [ -d \"$d\" ]; then mount -t tmpfs -o ro,mode=0755 tmpfs \"$d\"; fi; done\n";
    }
    // ProcSubset=pid, ProtectProc=invisible: a /proc of our own.
    let mut proc_opts = vec!["nosuid", "nodev", "noexec"];
    match unit.get("ProcSubset") {
        Some("pid") => proc_opts.push("subset=pid"),
        None | Some("all") => {}
        Some(other) => panic!("ProcSubset={other} is not rebuilt here"),
    }
    match unit.get("ProtectProc") {
        Some("invisible") => proc_opts.push("hidepid=invisible"),
        None | Some("default") => {}
        Some(other) => panic!("ProtectProc={other} is not rebuilt here"),
    }
    s += &format!("mount -t proc -o {} proc /proc\n", proc_opts.join(","));
    match unit.get("ProtectSystem") {
        Some("strict") => {
            assert!(
                unit.yes("ProtectKernelTunables") && unit.yes("ProtectControlGroups"),
                "ProtectSystem=strict leaves /sys alone: the unit needs \
                 ProtectKernelTunables= and ProtectControlGroups= for this sandbox"
            );
            // Every mount read-only (its other flags kept), /sys and
            // /sys/fs/cgroup included; not the fresh /dev, /proc, /tmp,
            // nor namespace files.
            s += r#"awk '{ for (i = 7; $i != "-"; i++); print $5, $6, $(i+1) }' /proc/self/mountinfo |
while read -r m o t; do
  case "$m" in /dev|/dev/*|/proc|/proc/*|/tmp|/tmp/*|/var/tmp) continue;; esac
  case "$t" in nsfs) continue;; esac
  case ",$o," in *,ro,*) continue;; esac
  mount -o "remount,bind,$(echo "$o" | sed 's/^rw\(,\|$\)/ro\1/')" "$m"
done
"#;
        }
        None | Some("no") => {}
        Some(other) => panic!("ProtectSystem={other} is not rebuilt here"),
    }
    let mut writable: Vec<String> = unit
        .list("StateDirectory")
        .iter()
        .map(|d| format!("/var/lib/{d}"))
        .collect();
    writable.extend(
        unit.list("RuntimeDirectory")
            .iter()
            .map(|d| format!("/run/{d}")),
    );
    writable.extend(unit.list("ReadWritePaths"));
    for path in &writable {
        let q = quote(path);
        s += &format!("mount --bind {q} {q}\nmount -o remount,bind,rw {q}\n");
    }
    if let Some(umask) = unit.get("UMask") {
        s += &format!("umask {umask}\n");
    }
    if let Some(n) = unit.get("LimitNOFILE") {
        // Where raising the hard limit is not allowed (no CAP_SYS_RESOURCE
        // in this test's own bounding set), as high as it may go: the
        // test's database needs far fewer.
        s += &format!("ulimit -n {n} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"\n");
    }
    if let Some(dir) = unit.get("WorkingDirectory") {
        s += &format!("cd {}\n", quote(dir));
    }
    s += "exec \"$@\"\n";
    s
}

/// The seccomp settings as the JSON that `seccomp_exec.py` reads.
fn seccomp_spec(unit: &Service) -> String {
    let filters = unit.all("SystemCallFilter");
    let allow = if filters.is_empty() {
        None
    } else {
        assert!(
            !filters[0].starts_with('~'),
            "a deny-list SystemCallFilter= is not rebuilt here"
        );
        // systemd adds @default to every allow list.
        let mut set = expand("@default");
        for line in filters {
            let (deny, names) = match line.strip_prefix('~') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            for name in names.split_whitespace() {
                let calls = expand(name);
                if deny {
                    set.retain(|c| !calls.contains(c));
                } else {
                    set.extend(calls);
                }
            }
        }
        Some(set)
    };
    let allow = allow.expect("the unit has a SystemCallFilter= (the sandbox needs one)");
    match unit.get("SystemCallArchitectures") {
        Some("native") => {}
        other => panic!("SystemCallArchitectures={other:?} is not rebuilt here"),
    }
    let errno = unit.get("SystemCallErrorNumber").map(|e| match e {
        "EPERM" => 1,
        "EACCES" => 13,
        "ENOSYS" => 38,
        other => panic!("SystemCallErrorNumber={other} is not rebuilt here"),
    });
    let families = unit.get("RestrictAddressFamilies").map(|_| {
        unit.list("RestrictAddressFamilies")
            .iter()
            .map(|f| match f.as_str() {
                "AF_UNIX" => 1,
                "AF_INET" => 2,
                "AF_INET6" => 10,
                "AF_NETLINK" => 16,
                "AF_PACKET" => 17,
                other => panic!("address family {other} is not known here"),
            })
            .collect::<Vec<u32>>()
    });
    serde_json::json!({
        "allow": allow,
        "errno": errno,
        "families": families,
        "mdwe": unit.yes("MemoryDenyWriteExecute"),
        "namespaces": unit.yes("RestrictNamespaces"),
    })
    .to_string()
}

/// A system call, or the calls of a `@group` (groups inside it expanded),
/// as `systemd-analyze syscall-filter` lists them.
fn expand(name: &str) -> BTreeSet<String> {
    if !name.starts_with('@') {
        return BTreeSet::from([name.to_string()]);
    }
    let out = Command::new("systemd-analyze")
        .args(["syscall-filter", "--no-pager", name])
        .output()
        .expect("systemd-analyze must be installed (`cargo xtask setup` installs systemd)");
    assert!(
        out.status.success(),
        "systemd-analyze syscall-filter {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut set = BTreeSet::new();
    // The first line names the group; then one entry per line, comments
    // marked with '#'.
    for line in text.lines().skip(1).map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        set.extend(expand(line));
    }
    assert!(!set.is_empty(), "{name} expanded to nothing:\n{text}");
    set
}
