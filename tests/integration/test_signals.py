"""Guest signals, differential against native runs: handlers, fault siginfo, sigaltstack, masks and queues,
blocking calls cut short or restarted across threads, timers, signalfd, host signals sent to km, fatal signals.

Each payload test prints deterministic lines; the same static binary runs natively and under km (in parallel),
and both its stdout and its exit status must agree (km reports death by signal s as 128+s)."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time

import pytest

from harness.km import KM, km_env, spawn_km

TOOLCHAINS = ("musl", "glibc")
SYNC_EXPECTED = {
    "raise": "raise: hits 3 signo 10\n",
    "siginfo": "siginfo: signo 10 code 0 pid ok 1 uid ok 1\nsiginfo: signo 10 code -6 pid ok 1 uid ok 1\n"
               "siginfo: signo 10 code -1 pid ok 1 uid ok 1\n",
    "segv": "segv: signo 11 addr=page+100 code 2\n",
    "altstack": "altstack: handler on alt stack 1 ss_flags 1\n",
    "fpe": "fpe: signo 8 code 1 (FPE_INTDIV 1)\n",
    "ill": "ill: signo 4 code 2 (ILL_ILLOPN 2) addr at ud2 1\n",
    "resethand": "resethand: hits 1 handler now SIG_DFL 1\n",
    "nodefer": "nodefer: calls 3 max depth 3\ndefer: calls 3 max depth 1\n",
    "mask": "mask: blocked hits 0 pending 1\nmask: unblocked hits 1 pending 0\n",
    "fpregs": "fpregs: 3.25 -7.5 1e+100 0.125 handler 3.375 x87 1\n",
    "coalesce": "coalesce: standard hits 2\n",
    "order": "in order 21\n",
    "ucontext": "rbx 0x1234 SIGUSR2 now blocked 1\n",
    "overflow": "overflow: signo 11 handled on alt stack 1\n",
    "thread_segv": "thread segv: handled on the faulting thread 1 addr 0x20\n",
    "autodisarm": "autodisarm: set 0, handler on alt 1, flags inside 0x2, after 0x80000000 size ok 1\n"
                  "autodisarm: again on alt 1\n",
    "fpstate": "fpstate: handler saw 6.75, after return 42.5, rounding bits 0x6000\n",
}
BLOCK_EXPECTED = {
    "read": "handler on blocked thread 1, result -1 errno EINTR\n",
    "read_restart": "handler on blocked thread 1, result 1 errno 0, read x\n",
    "nanosleep": "result -1 errno EINTR\n",
    "nanosleep_restart": "result -1 errno EINTR\n",          # Linux never restarts a sleep after a handler
    "futex": "result -1 errno EINTR\n",
    "futex_restart": "handler on blocked thread 1, result 0 errno 0\n",
    "futex_timeout_restart": "result -1 errno EINTR\n",
    "pause": "result -1 errno EINTR\n",
    "pause_restart": "result -1 errno EINTR\n",
    "sigsuspend": "handler on blocked thread 1, result -1 errno EINTR\n",
    "itimer": "itimer: 1 SIGALRMs, interval was 20000 us\n",
    "sigtimedwait": "sigtimedwait: -1 EAGAIN\nsigtimedwait pending: 12 handled 0\n",
    "unblock": "unblock: pending before 0\nunblock: handled after 1\n",
    "blocked_pending": "blocked pending: pause -1 EINTR handled 1\n",
    "tgkill": "tgkill: handler ran on target 1 (not main 0)\n",
    "spin_tgkill": "spin tgkill: handled 1 on spinner 1\n",
    "sigwait_thread": "sigwait thread: got 10, on the waiting thread 1\n",
    "cancel": "cancel read: canceled 1\ncancel nanosleep: canceled 1\ncancel cond: canceled 1\n",
    "pingpong": "pingpong: 300 signals sent, 300 handled\n",
    "pingpong_read": "pingpong read: 300 handled, 0 late by more than 1 s\n",
    "posix_timer": "posix timer: 3 expiries as SI_TIMER with the value 1, interval 20000000 ns, armed 1\n"
                   "posix timer: disarmed, old interval 20000000 ns; delete 0; delete again fails 1\n"
                   "posix timer: SIGEV_THREAD_ID handler on that thread 1\n"
                   "posix timer: SIGEV_THREAD function got 5 on another thread 1\n",
    "cpu_timer": "cpu timer: fired while sleeping 0, while spinning 1\n",
    "ignored": "ignored: read 1 z errno 0\n",
    "fork_kill": "child handled SIGUSR1 1\nparent: kill SIGTERM -> 0\nparent: child killed by signal 15\n",
}


SIGNALFD_EXPECTED = {
    "basics": "signalfd >= 0 1 cloexec 1 nonblock 1 rdwr 1\nlink anon_inode:[signalfd]\n|poll after kill 1\nkill: signo 10 code 0 pid ok 1 uid ok 1 int 0 ptr 0 status 0\npoll after read 0\n"
              "sigqueue: signo 12 code -1 pid ok 1 uid ok 1 int 42 ptr 42 status 0\ntwo at once: 256 bytes\n|"
              "readv 256: 10 12\nwrite -1 Invalid argument\nmade and closed 3000\n",
    "errors": "not a signalfd -1 Invalid argument\nclosed fd -1 Bad file descriptor\n",
    "blocking": "blocking read: signo 12 code 0 pid ok 1 uid ok 1 int 0 ptr 0 status 0\n"
                "restarted read: signo 10 code 0 pid ok 1 uid ok 1 int 0 ptr 0 status 0\n"
                "restarted read: handler ran 1\n"
                "sigchld: 128 signo 17 code 1 (CLD_EXITED 1) status 7 pid is the child's 1\n"
                "child: poll 0\nchild: signo 10 code 0 pid ok 1 uid ok 1 int 0 ptr 0 status 0\n"
                "parent after child: poll 0\n",
}


def run_both(exe, *args: str, cwd, timeout_s: float = 30) -> tuple[subprocess.CompletedProcess, ...]:
    """The payload under km and natively, at the same time; statuses as a shell sees them (128+signal)."""
    procs = [subprocess.Popen([*KM, str(exe), *args], env=km_env(), cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE),
             subprocess.Popen([str(exe), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout_s)
            status = 128 - p.returncode if p.returncode < 0 else p.returncode
            results.append(subprocess.CompletedProcess(p.args, status, out.decode(), err.decode()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return tuple(results)


def assert_same(exe, *args: str, cwd, expected: str = "") -> subprocess.CompletedProcess:
    km, native = run_both(exe, *args, cwd=cwd)
    assert (km.returncode, km.stdout) == (native.returncode, native.stdout), \
        f"km: {km.returncode} {km.stdout!r}\nnative: {native.returncode} {native.stdout!r}\nkm stderr: {km.stderr}"
    assert expected in km.stdout, km.stdout
    return km


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("test", SYNC_EXPECTED)
def test_synchronous_signals(payload, tmp_path, toolchain, test):
    km = assert_same(payload("sig_sync.c", toolchain), test, cwd=tmp_path, expected=SYNC_EXPECTED[test])
    assert km.returncode == 0 and km.stderr == "", km.stderr


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("test", BLOCK_EXPECTED)
def test_blocking_calls_and_signals(payload, tmp_path, toolchain, test):
    km = assert_same(payload("sig_block.c", toolchain), test, cwd=tmp_path, expected=BLOCK_EXPECTED[test])
    assert km.returncode == 0 and km.stderr == "", km.stderr


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
@pytest.mark.parametrize("test", SIGNALFD_EXPECTED)
def test_signalfd(payload, tmp_path, toolchain, test):
    """signalfd read, polled, updated, blocking (and restarted after a handler), SIGCHLD, a forked child's copy."""
    km = assert_same(payload("sig_signalfd.c", toolchain), test, cwd=tmp_path)
    assert km.returncode == 0 and km.stderr == "", km.stderr
    for part in SIGNALFD_EXPECTED[test].split("|"):         # each part a run of lines, in the order printed
        assert part in km.stdout, km.stdout


def test_alarm_interrupts_pause(payload, tmp_path):
    km, native = run_both(payload("sig_block.c", "musl"), "alarm", cwd=tmp_path)
    assert km.stdout == native.stdout == "alarm: pause -1 EINTR handled 1 after >=0.9s 1\n", (km, native)


@pytest.mark.parametrize("test, signame, status", [("crash", "SIGSEGV", 139), ("abort", "SIGABRT", 134),
                                                   ("sigkill", "SIGKILL", 137), ("badstack", "SIGSEGV", 139),
                                                   ("ignored_fault", "SIGSEGV", 139),
                                                   ("badreturn", "SIGSEGV", 139), ("badfpstate", "SIGSEGV", 139)])
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_fatal_signal_status_and_one_line(payload, tmp_path, toolchain, test, signame, status):
    exe = payload("sig_sync.c", toolchain)
    km = assert_same(exe, test, cwd=tmp_path)
    assert km.returncode == status, km
    lines = km.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"km: {exe}: killed by {signame}"), km.stderr


def read_line(proc: subprocess.Popen, deadline: float) -> bytes:
    """One stdout line of proc, or b'' at the deadline (no sleeps: select on the pipe)."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(max(0.0, deadline - time.monotonic())):
            return b""
    return proc.stdout.readline()


@pytest.fixture
def km_process():
    started: list[subprocess.Popen] = []

    def start(*args, **kw) -> subprocess.Popen:
        started.append(spawn_km(*args, **kw))
        return started[-1]
    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()
        for pipe in (p.stdin, p.stdout, p.stderr):
            if pipe is not None:
                pipe.close()


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_sigint_to_km_runs_payload_handler(payload, tmp_path, km_process, toolchain):
    exe = payload("sig_block.c", toolchain)
    proc = km_process(exe, "sigint", cwd=tmp_path)
    deadline = time.monotonic() + 30
    assert read_line(proc, deadline) == b"ready\n"
    os.kill(proc.pid, signal.SIGINT)
    assert read_line(proc, deadline) == b"got SIGINT in handler\n"
    os.kill(proc.pid, signal.SIGTERM)              # no handler: the payload dies of it, km says so
    _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.decode() == f"km: {exe}: killed by SIGTERM\n"


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_sigint_to_km_ends_payload_blocked_on_stdin(payload, tmp_path, km_process, toolchain):
    """Ctrl-C at a terminal: the payload sits in read(0) with no handler; it dies of SIGINT, km says nothing."""
    proc = km_process(payload("sig_block.c", toolchain), "stdin", cwd=tmp_path, stdin=subprocess.PIPE)
    deadline = time.monotonic() + 30
    assert read_line(proc, deadline) == b"ready\n"
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(timeout=max(1.0, deadline - time.monotonic()))      # stdin stays open: no EOF races the signal
    assert (proc.returncode, proc.stdout.read(), proc.stderr.read()) == (128 + signal.SIGINT, b"", b"")
