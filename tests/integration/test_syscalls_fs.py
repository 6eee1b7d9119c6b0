"""File syscalls compared with native execution: openat..getdents64, fcntl, dup*, sendfile, pipe2, ioctl on a pty."""
from __future__ import annotations

import fcntl
import os
import pty
import struct
import termios

import pytest

from .test_run import differential, lines_without, run_pair


@pytest.mark.parametrize("toolchain", ["musl", "glibc", "glibc-pie"])
def test_file_syscalls_match_native(payload, toolchain, tmp_path):
    """The payload works in its own empty directory: one for the native run, one for km's."""
    program = payload("sys_fs.c", toolchain)
    native_dir, km_dir = tmp_path / "native", tmp_path / "km"
    native_dir.mkdir()
    km_dir.mkdir()
    native, km = run_pair(program, cwds=(native_dir, km_dir))
    assert km.returncode == native.returncode == 0, km.stderr
    assert km.stderr == b""
    assert lines_without(km.stdout, "~") == lines_without(native.stdout, "~")
    text = km.stdout.decode()
    assert f"~getcwd {len(str(km_dir)) + 1} {km_dir}\n" in text
    assert "readlink /proc/self/exe is the program: 1\n" in text
    assert sorted(os.listdir(km_dir)) == sorted(os.listdir(native_dir)) == ["a.txt", "link"]
    assert (km_dir / "a.txt").read_bytes() == (native_dir / "a.txt").read_bytes() == b"HELLO world\nabcdefg\n"


def test_tty_ioctls_on_a_pty(payload, tmp_path):
    """TCGETS and TIOCGWINSZ on a terminal stdin answer as natively (a pty with a known window size)."""
    program = payload("sys_fs.c", "musl")
    opened: list[int] = []

    def pty_stdin() -> int:
        controller, terminal = pty.openpty()
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
        opened.extend((controller, terminal))
        return terminal
    (tmp_path / "n").mkdir()
    (tmp_path / "k").mkdir()
    try:
        native, km = run_pair(program, cwds=(tmp_path / "n", tmp_path / "k"), stdin_factory=pty_stdin)
    finally:
        for fd in opened:
            os.close(fd)
    assert km.returncode == native.returncode == 0, km.stderr
    wanted = [line for line in lines_without(km.stdout, "~") if line.startswith(("TCGETS", "TIOCGWINSZ"))]
    assert wanted == ["TCGETS stdin = 0", "TIOCGWINSZ stdin = 0 rows=33 cols=101", "TCGETS file = -1 ENOTTY"]
    assert lines_without(km.stdout, "~") == lines_without(native.stdout, "~")


@pytest.mark.parametrize("mode, status", [("sigpipe", 128 + 13), ("epipe", 0)])
def test_write_to_broken_pipe(payload, mode, status):
    """SIGPIPE kills the writer quietly (status 141) as natively; ignored, the writes fail with EPIPE."""
    native, km = differential(payload("sys_fs.c", "musl"), mode)
    assert km.returncode == status, km.stderr
    assert km.stdout.startswith(b"writing to a pipe without reader\n")


def test_descriptor_limit(payload):
    """The payload's descriptors stop below km's own (EMFILE at the RLIMIT_NOFILE km reports), all usable; as
    natively under `ulimit -n 1000` (not compared line by line: which low descriptors are taken differs)."""
    from harness.km import run_km
    km = run_km(payload("sys_fs.c", "musl"), "fdlimit")
    assert km.returncode == 0, km.stderr
    assert km.stdout.decode().splitlines() == [
        "open stopped with EMFILE after 900+ descriptors", "last below the limit 1, unusable 0",
        "pipe2 at the limit -1 EMFILE", "dup at the limit -1 EMFILE", "F_DUPFD at the limit -1 EINVAL",
        "pipe2 after closing 0"]
