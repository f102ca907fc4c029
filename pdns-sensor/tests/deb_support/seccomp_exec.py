# Applies a systemd unit's seccomp settings, as systemd applies them just
# before it executes a service, then executes the command. Run as
#   python3 -c "$(cat seccomp_exec.py)" SPEC -- COMMAND ARGS...
# with SPEC a JSON object written by deb_support/sandbox.rs:
#   allow      system calls the filter allows (SystemCallFilter=, groups
#              expanded by `systemd-analyze syscall-filter`)
#   errno      errno for the others (SystemCallErrorNumber=), or null to
#              kill the process (systemd's default)
#   families   RestrictAddressFamilies= allow list (numbers), or null
#   mdwe       MemoryDenyWriteExecute=
#   namespaces RestrictNamespaces=yes
# Filters only the native architecture: libseccomp kills a call from any
# other (SystemCallArchitectures=native).
import errno
import json
import os
import sys

import seccomp

spec = json.loads(sys.argv[1])
assert sys.argv[2] == "--", sys.argv
command = sys.argv[3:]

# The allow list. Names this libseccomp does not know are skipped, as
# systemd skips them.
default = seccomp.ERRNO(spec["errno"]) if spec["errno"] else seccomp.KILL_PROCESS
allow = seccomp.SyscallFilter(default)
for name in spec["allow"]:
    try:
        allow.add_rule(seccomp.ALLOW, name)
    except (RuntimeError, ValueError):
        pass

# Argument checks, in a second filter (the kernel applies both; the
# stricter action wins), as systemd installs them.
args = seccomp.SyscallFilter(seccomp.ALLOW)
if spec["families"] is not None:
    allowed = set(spec["families"])
    af_max = 46
    for family in range(af_max):
        if family not in allowed:
            args.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family))
    args.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.GE, af_max))
if spec["mdwe"]:
    PROT_WRITE, PROT_EXEC, SHM_EXEC = 0x2, 0x4, 0o100000
    wx = PROT_WRITE | PROT_EXEC
    args.add_rule(seccomp.ERRNO(errno.EPERM), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
    for name in ["mprotect", "pkey_mprotect"]:
        args.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(2, seccomp.MASKED_EQ, PROT_EXEC, PROT_EXEC))
    args.add_rule(seccomp.ERRNO(errno.EPERM), "shmat", seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC))
if spec["namespaces"]:
    flags = [
        0x00020000,  # CLONE_NEWNS
        0x02000000,  # CLONE_NEWCGROUP
        0x04000000,  # CLONE_NEWUTS
        0x08000000,  # CLONE_NEWIPC
        0x10000000,  # CLONE_NEWUSER
        0x20000000,  # CLONE_NEWPID
        0x40000000,  # CLONE_NEWNET
    ]
    for flag in flags:
        for name in ["unshare", "clone"]:
            args.add_rule(seccomp.ERRNO(errno.EPERM), name, seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    args.add_rule(seccomp.ERRNO(errno.EPERM), "setns")
    # clone3 passes its flags in memory a filter cannot read: systemd
    # answers ENOSYS, and the C library falls back to clone.
    args.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")

args.load()
allow.load()
os.execv(command[0], command)
