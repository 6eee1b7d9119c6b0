"""A throwaway place for a fuzz target: its own mount namespace where every mount is read-only except a scratch
directory (its cwd), no network, its own IPC, UTS and PID namespaces (a random pid names no process in either
run: the host's processes come and go).

The syscall fuzzer runs as root (km must, for /dev/kvm) and calls chmod, unlink, socket, msgget... with random
arguments; natively those reach the host kernel directly and under km through km. Here a stray chmod("/") meets a
read-only file system, a connect() no network, a msgget() an empty IPC namespace. What no namespace covers
(clocks, modules, reboot, other processes, keys) the payload itself never calls (tests/payloads/fuzz_syscalls.c).
"""
from __future__ import annotations

import functools
import subprocess
from pathlib import Path

_SCRIPT = r"""
dir=$1; shift
mount --bind "$dir" "$dir" || exit 97
for m in $(findmnt -rno TARGET); do
    [ "$m" = "$dir" ] || mount -o remount,bind,ro "$m" 2>/dev/null
done
touch /.km-fuzz-probe 2>/dev/null && exit 98
cd "$dir" && exec "$@"
"""


def command(workdir: str | Path, argv: list[str]) -> list[str]:
    """argv run in the sandbox, in workdir (which stays writable)."""
    return ["unshare", "--mount", "--net", "--ipc", "--uts", "--pid", "--fork", "--kill-child", "--mount-proc",
            "--propagation", "private", "--",
            "sh", "-c", _SCRIPT, "sh", str(workdir), *map(str, argv)]


@functools.cache
def unavailable(probe_dir: str = "/tmp") -> str:
    """Why the sandbox cannot be made here ('' when it can): it needs unshare(CLONE_NEWNS|CLONE_NEWNET) and mount."""
    try:
        result = subprocess.run(command(probe_dir, ["true"]), capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare: {e}"
    if result.returncode == 98:
        return "the root file system stays writable in a mount namespace"
    if result.returncode:
        return f"unshare/mount failed: {result.stderr.decode(errors='replace').strip()[:200]}"
    return ""
