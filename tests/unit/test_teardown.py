"""A forked km's exit with its teardown in a holder (monitor/process/teardown.py): the exiting process closes its
descriptors before it ends (a pipe's reader sees EOF by the time wait4 returns, as after a plain exit), its status is
the kernel's, and the holder, which keeps only the descriptors it was given, ends once that process has ended."""
from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

from monitor.process import teardown


@pytest.fixture(scope="module")
def compiled():
    loaded = teardown.COMPILED.load()
    if loaded is None:
        pytest.skip("no C compiler or Python headers: a forked km exits plainly (its twin)")
    return loaded


def _read_until_eof(fd: int, deadline_s: float) -> bytes:
    data, end = b"", time.monotonic() + deadline_s
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        assert ready, f"no EOF within {deadline_s} s (got {data!r})"
        chunk = os.read(fd, 100)
        if not chunk:
            return data
        data += chunk


def _hand_over_in_a_child(compiled, report: Callable[[int, list[int]], bytes],
                          exit_status: int) -> tuple[int, int, int]:
    """A forked child hands its teardown over (km_hand_over, keeping a pipe's write end and its pidfd), writes
    report(holder pid, the descriptors kept) into that pipe and exits with exit_status: (the child's pid, its wait status, the pipe's
    read end, whose EOF comes when the holder ends)."""
    ffi, lib = compiled
    kept_r, kept_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            pidfd = os.pidfd_open(os.getpid())
            keep = sorted({kept_w, pidfd})
            holder = lib.km_hand_over(pidfd, ffi.new("int[]", keep), len(keep))
            os.write(kept_w, report(holder, keep))
        finally:
            os._exit(exit_status)
    os.close(kept_w)
    _, status = os.waitpid(pid, 0)
    return pid, status, kept_r


def _holder_seen(holder: int, keep: list[int]) -> bytes:
    """What ps and ls /proc show of the holder while the km it holds for lives: its name once it has run its first
    instructions (prctl, within a deadline), and its descriptors."""
    end = time.monotonic() + 20
    while True:
        with open(f"/proc/{holder}/comm") as comm:
            name = comm.read().strip()
        if name == "km-teardown" or time.monotonic() > end:
            break
        os.sched_yield()
    fds = sorted(int(fd) for fd in os.listdir(f"/proc/{holder}/fd"))
    return f"{holder} {name} {fds == keep}".encode()


def test_the_holder_outlives_the_exit_and_then_ends(compiled) -> None:
    closed_r, closed_w = os.pipe()      # closed by the hand-over, before the exit
    pid, status, kept_r = _hand_over_in_a_child(compiled, _holder_seen, 7)
    os.close(closed_w)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7
    os.set_blocking(closed_r, False)
    assert os.read(closed_r, 10) == b""             # closed before the exit, not by the holder
    seen = _read_until_eof(kept_r, 20).decode().split()     # named, holding only the descriptors it was given
    assert len(seen) == 3 and 0 < int(seen[0]) != pid and seen[1:] == ["km-teardown", "True"], seen
    os.close(kept_r)
    os.close(closed_r)


def test_the_twin_is_a_plain_exit(monkeypatch) -> None:
    monkeypatch.setenv("KM_TEARDOWN", "inline")
    teardown._lib.cache_clear()
    try:
        assert teardown._lib() is None
    finally:
        teardown._lib.cache_clear()


def test_the_holder_starts_with_every_signal_blocked(compiled) -> None:
    """The holder inherits the exiting km's handlers (CPython's): a signal sent to the process group (a terminal's
    SIGINT or SIGWINCH) must never run one on the holder's stack, over memory the exiting km leaves behind, so
    it is blocked from the holder's first instruction, not from its own sigprocmask on."""
    def blocked_of(holder: int, keep: list[int]) -> bytes:
        with open(f"/proc/{holder}/status") as status:      # at once: the holder may not have run yet
            return next(line.split()[1] for line in status if line.startswith("SigBlk:")).encode()

    _, _, kept_r = _hand_over_in_a_child(compiled, blocked_of, 0)
    blocked = int(_read_until_eof(kept_r, 20), 16)
    os.close(kept_r)
    assert blocked == ~((1 << 8) | (1 << 18)) & (1 << 64) - 1, hex(blocked)    # all but SIGKILL and SIGSTOP


def test_prepare_loads_the_mmap_module_aside():
    """prepare() runs at the payload's first fork while its other threads may be opening files: the mmap module (an
    extension, whose load opens its .so) is imported on host_fds.aside's thread, never on the caller's, where it
    took the payload's lowest free descriptor for a moment. A fresh interpreter, where mmap is not imported yet."""
    code = textwrap.dedent("""
        import sys, threading
        assert "mmap" not in sys.modules
        from monitor.process import teardown
        if teardown._lib() is None:
            print("skip")
            sys.exit(0)
        importers = []
        sys.addaudithook(lambda event, args: importers.append(threading.get_ident())
                         if event == "import" and args[0] == "mmap" else None)
        teardown.prepare()
        print(importers != [] and threading.get_ident() not in importers)
    """)
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2], capture_output=True,
                          text=True, timeout=60)
    if done.stdout.strip() == "skip":
        pytest.skip("no compiled teardown module: prepare() makes no probe page")
    assert done.stdout.strip() == "True", done
