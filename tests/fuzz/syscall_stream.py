"""The syscall fuzzer's stream (tests/payloads/fuzz_syscalls.c), run natively and under km and compared.

Each call is compared by class: its errno, or 'ok' for any non-negative result (pids, addresses, times and byte
counts differ between any two runs). A call whose class differs between two native runs is not compared (timing:
the watchdog's EINTR, a pipe that had data or not). Every other difference must be listed in DIVERGENCES with
its reason; the README's known limits say the same. Every run must read the same bytes where the stream reads
paths and structures: natively without ASLR (km's layout is fixed), and with what a call wrote that differs run to
run (times, inode numbers, the CPU...) zeroed by the stream itself (fuzz_syscalls.c's volatile_out).
"""
from __future__ import annotations

import errno
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from harness.km import KM, km_env

from . import sandbox

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from monitor.syscalls.numbers import NAMES  # noqa: E402

ENOSYS_CLASS = "ENOSYS"

# Calls km does not serve (ENOSYS, with a km.syscall trace line): the README's known limits say why.
NOT_IMPLEMENTED = frozenset({
    "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",      # Linux AIO
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules", "statmount", "listmount",
    "mbind", "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "migrate_pages", "move_pages",
    "futex_wait", "futex_wake", "futex_requeue", "futex_waitv", "memfd_secret", "modify_ldt",
    "remap_file_pages", "shmat", "shmdt", "pidfd_send_signal",
    "336",                      # unassigned on x86-64; this project's host kernels answer ENXIO there
})

ORDER = "errno order: km refuses another argument before the one Linux checks first"
SIGNALS = "signals are km's: target and permission checks come before the siginfo copy and signal-number checks"
TIMING = "the 10 ms watchdog: a call km serves more slowly is cut short (EINTR) where Linux finished"
THREADS = "km's own host threads have ids in the payload's pid namespace, where the native process has none"

# syscall name -> why km answers differently from Linux (such calls are not compared); new names fail the test
DIVERGENCES: dict[str, str] = {
    "capget": ORDER, "clock_nanosleep": ORDER, "dup2": ORDER, "dup3": ORDER, "epoll_ctl": ORDER,
    "epoll_pwait2": ORDER, "epoll_wait": ORDER + "; " + TIMING, "getitimer": ORDER, "mq_timedsend": ORDER,
    "msgsnd": ORDER, "poll": ORDER + "; " + TIMING, "ppoll": ORDER, "preadv": ORDER, "pselect6": ORDER,
    "pwrite64": ORDER, "pwritev": ORDER, "recvfrom": ORDER, "recvmmsg": ORDER, "select": ORDER, "sendto": ORDER,
    "setitimer": ORDER, "sigaltstack": ORDER, "socketpair": ORDER, "timer_create": ORDER,
    "timer_settime": ORDER, "newfstatat": ORDER, "sched_getaffinity": ORDER,
    "kill": SIGNALS, "tkill": SIGNALS, "rt_sigqueueinfo": SIGNALS, "rt_tgsigqueueinfo": SIGNALS,
    "getpgid": THREADS, "getsid": THREADS, "sched_getscheduler": THREADS, "sched_getparam": THREADS,
    "sched_getattr": THREADS, "sched_rr_get_interval": THREADS, "ioprio_get": THREADS, "pidfd_open": THREADS,
    "ioctl": "requests km does not know are ENOTTY before Linux's argument checks",
    "prctl": "prctl options are km's: extra arguments refused where Linux ignores them",
    "futex": "futex operations km does not serve (requeue-PI...) are EINVAL where Linux checks more first",
    "sched_setaffinity": "accepted without checks: km's vCPU threads keep the host's placement",
    "unshare": "km gives a payload no namespaces (CLONE_NEW*: EPERM, as without CAP_SYS_ADMIN)",
    "ustat": "answered by the host for km's process, whose mounts differ from the native sandbox's",
}


@dataclass
class Call:
    index: int
    nr: int
    line: str
    result: str          # the class: 'skip', 'ok', an errno name, or 'missing'

    @property
    def name(self) -> str:
        return NAMES.get(self.nr, str(self.nr))


def classify(raw: str) -> str:
    if raw == "skip":
        return raw
    value = int(raw)
    return errno.errorcode.get(-value, f"E{-value}") if value < 0 else "ok"


def parse(text: str) -> dict[int, Call]:
    calls = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[0].isdigit():
            raw = parts[-1] if parts[-2] == "=" else parts[-1] if parts[-1] == "skip" else None
            if raw is not None:
                calls[int(parts[0])] = Call(int(parts[0]), int(parts[1]), line, classify(raw))
    return calls


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    calls: dict[int, Call]

    @property
    def finished(self) -> bool:
        return self.stdout.rstrip().endswith("fuzz done " + str(len(self.calls)))


def command(program: Path, count: int, seed: int, km: bool, first: int | None = None) -> list[str]:
    argv = [str(program), str(count), str(seed)] + ([str(first)] if first is not None else [])
    # natively without ASLR (setarch -R), as km lays a program out: Linux starts the heap up to 1 GiB past the
    # image at random, so a 32-bit pointer the stream passes is in the grown heap in one native run and not in the next
    return [*KM, *argv] if km else ["setarch", "-R", *argv]


def start(program: Path, count: int, seed: int, workdir: Path, km: bool, env: dict | None = None):
    """The stream in its sandbox (workdir made here); stdout goes to a file (random writes never reach it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(workdir.with_suffix(".out"), "w+b")
    proc = subprocess.Popen(sandbox.command(workdir, command(program, count, seed, km)), stdout=out,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=km_env(env))
    return proc, out


def finish(proc, out, timeout: float) -> Run:
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        err += b"\n(killed after %d s)" % timeout
    out.seek(0)
    text = out.read().decode(errors="replace")
    out.close()
    return Run(proc.returncode, text, err.decode(errors="replace"), parse(text))


@dataclass
class Mismatch:
    name: str
    native: str
    km: str
    count: int
    first: Call


def compare(native: Run, again: Run, km: Run) -> tuple[list[Mismatch], int]:
    """Differences between the native and the km stream not explained by DIVERGENCES, and how many calls were
    left out because two native runs disagree on them."""
    groups: dict[tuple[str, str, str], Mismatch] = {}
    flaky = 0
    for index, call in native.calls.items():
        other = again.calls.get(index)
        if other is None or other.result != call.result:
            flaky += 1
            continue
        theirs = km.calls.get(index)
        result = theirs.result if theirs else "missing"
        if result == call.result or call.name in DIVERGENCES:
            continue
        if result == ENOSYS_CLASS and call.name in NOT_IMPLEMENTED:
            continue
        key = (call.name, call.result, result)
        if key in groups:
            groups[key].count += 1
        else:
            groups[key] = Mismatch(*key, 1, theirs or call)
    return sorted(groups.values(), key=lambda m: -m.count), flaky


def enosys_counts(native: Run, km: Run) -> tuple[int, int]:
    return (sum(c.result == ENOSYS_CLASS for c in native.calls.values()),
            sum(c.result == ENOSYS_CLASS for c in km.calls.values()))


def enosys_only_under_km(native: Run, km: Run) -> Counter:
    """Syscall names km answers ENOSYS where Linux implements them (answers anything else)."""
    return Counter(c.name for i, c in native.calls.items()
                   if c.result not in (ENOSYS_CLASS, "skip") and i in km.calls and
                   km.calls[i].result == ENOSYS_CLASS)


def report(mismatches: list[Mismatch], seed: int, program: Path) -> str:
    lines = [f"{m.count:5d} {m.name}: Linux {m.native}, km {m.km} (first: call {m.first.index}: {m.first.line})"
             for m in mismatches]
    replay = f"replay one call: km {program} INDEX+1 {seed} INDEX  (and natively under setarch -R, in tests/fuzz/sandbox.py)"
    return "\n".join([f"seed {seed}: {len(mismatches)} kinds of difference from Linux", *lines, replay])
