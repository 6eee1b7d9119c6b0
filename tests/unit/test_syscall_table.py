"""The syscall table: numbers.py agrees with asm/unistd_64.h, every handler is registered under a real name with an
arity that fits, the issue's syscalls are all served, and dispatch() turns every failure into an errno."""
from __future__ import annotations

import errno
import importlib
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

import monitor.syscalls.table  # noqa: F401  (registers the families)
from monitor.errors import GuestFault
dispatch_module = importlib.import_module("monitor.syscalls.dispatch")
from monitor.syscalls.dispatch import TABLE_SIZE, dispatch, handler_names, load_all, s32, s64, syscall
from monitor.syscalls.km_numbers import KM_NUMBERS
from monitor.syscalls.numbers import NAMES, NUMBERS

load_all()          # the rarer families too (the scratch table below must not be where they first register)
ROOT = Path(__file__).resolve().parents[2]
UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
# what issue 2 asks km to serve (tests/integration/test_syscalls_*.py run each of them)
REQUIRED = """brk mmap munmap mprotect madvise mremap openat open read write readv writev pread64 pwrite64 close lseek
fstat newfstatat stat lstat statx getdents64 readlink readlinkat getcwd chdir unlink unlinkat mkdir mkdirat rename
renameat fcntl ioctl sendfile pipe2 pipe dup dup2 dup3 access faccessat uname getpid getppid gettid getuid geteuid
getgid getegid prctl prlimit64 getrlimit sysinfo clock_gettime gettimeofday time nanosleep clock_nanosleep getrandom
arch_prctl exit exit_group""".split()


def test_numbers_match_the_kernel_header():
    if not UNISTD.exists():
        pytest.skip("no asm/unistd_64.h")
    header = dict(re.findall(r"#define __NR_(\w+)\s+(\d+)", UNISTD.read_text()))
    numbers = {name: str(nr) for name, nr in NUMBERS.items()}
    assert {name: nr for name, nr in numbers.items() if name in header} == header
    later = {name: nr for name, nr in numbers.items() if name not in header}      # newer than an old header
    assert all(int(nr) > max(map(int, header.values())) for nr in later.values()), later
    assert all(NAMES[nr] == name for name, nr in NUMBERS.items())
    assert max(NUMBERS.values()) < TABLE_SIZE


def test_every_handler_has_a_kernel_name_and_a_sys_name():
    names = handler_names()
    assert len(names) == len(set(names))
    for name in names:
        assert name in NUMBERS or name in KM_NUMBERS, name
    for nr, entry in enumerate(dispatch_module._handlers):
        if entry is None:
            continue
        fn, arity = entry
        assert 0 <= arity <= 6, (NAMES[nr], arity)
        assert fn.__name__.startswith("sys_") or fn.__name__ == "handler", fn.__name__


def test_kms_own_calls_are_outside_linuxs_numbers_and_dispatched():
    """km's calls live above every Linux number (and below x32's bit 30): dispatch() serves them by the same
    registry; an unknown number near them is ENOSYS."""
    assert set(KM_NUMBERS) <= set(handler_names())
    for nr in KM_NUMBERS.values():
        assert TABLE_SIZE <= nr < 0x40000000 and nr not in NAMES
    assert dispatch(Ctx(), max(KM_NUMBERS.values()) + 1, 0, 0, 0, 0, 0, 0) == -errno.ENOSYS


def test_issue_syscalls_are_all_served():
    missing = sorted(set(REQUIRED) - set(handler_names()))
    assert not missing, missing


class Ctx:
    """The smallest ctx a handler that touches nothing needs."""
    tid = 1234


@pytest.fixture
def scratch_handlers():
    """Register throw-away handlers under unused numbers; put the table back afterwards."""
    saved = list(dispatch_module._handlers)
    yield
    dispatch_module._handlers[:] = saved


def register(name: str, fn) -> int:
    syscall(name)(fn)
    return NUMBERS[name]


def test_dispatch_passes_arguments_by_arity(scratch_handlers):
    seen = []
    nr0 = register("kexec_load", lambda ctx: seen.append(()) or 0)
    nr3 = register("acct", lambda ctx, a, b, c: seen.append((a, b, c)) or 3)
    nr6 = register("swapon", lambda ctx, a, b, c, d, e, f: seen.append((a, b, c, d, e, f)) or 6)
    assert dispatch(Ctx(), nr0, 1, 2, 3, 4, 5, 6) == 0
    assert dispatch(Ctx(), nr3, 1, 2, 3, 4, 5, 6) == 3
    assert dispatch(Ctx(), nr6, 1, 2, 3, 4, 5, 6) == 6
    assert seen == [(), (1, 2, 3), (1, 2, 3, 4, 5, 6)]


def test_dispatch_turns_failures_into_errnos(scratch_handlers, caplog):
    def fault(ctx):
        raise GuestFault(0x1000, 8)

    def os_error(ctx):
        raise OSError(errno.EACCES, "no")

    def bug(ctx):
        raise KeyError("a km bug")
    def no_memory(ctx):
        raise MemoryError("guest physical memory exhausted")
    nr_fault, nr_os, nr_bug = register("kexec_load", fault), register("acct", os_error), register("swapon", bug)
    nr_mem = register("swapoff", no_memory)
    with caplog.at_level(logging.DEBUG, logger="km.syscall"):
        assert dispatch(Ctx(), nr_mem, 0, 0, 0, 0, 0, 0) == -errno.ENOMEM
        assert dispatch(Ctx(), nr_fault, 0, 0, 0, 0, 0, 0) == -errno.EFAULT
        assert dispatch(Ctx(), nr_os, 0, 0, 0, 0, 0, 0) == -errno.EACCES
        assert dispatch(Ctx(), nr_bug, 0, 0, 0, 0, 0, 0) == -errno.EIO
    assert any("swapon" in r.getMessage() and r.exc_info for r in caplog.records)


def test_unknown_syscall_is_enosys_with_one_trace_line(caplog):
    unused = next(nr for nr in range(TABLE_SIZE) if dispatch_module._handlers[nr] is None and nr in NAMES)
    with caplog.at_level(logging.DEBUG, logger="km.syscall"):
        assert dispatch(Ctx(), unused, 0, 0, 0, 0, 0, 0) == -errno.ENOSYS
        assert dispatch(Ctx(), 100_000, 0, 0, 0, 0, 0, 0) == -errno.ENOSYS
    lines = [r.getMessage() for r in caplog.records if r.name == "km.syscall"]
    assert lines == [f"unknown syscall {unused} ({NAMES[unused]}): ENOSYS", "unknown syscall 100000 (?): ENOSYS"]


def test_signed_argument_helpers():
    assert s32(0xFFFFFF9C) == -100                 # AT_FDCWD as the register holds it
    assert s32((1 << 64) - 1) == -1
    assert s32(5) == 5
    assert s64((1 << 64) - 1) == -1 and s64(7) == 7
    assert s64(-1) == -1 and s64(1 << 64) == 0 and s64((1 << 63) + 5) == -(1 << 63) + 5     # host_syscall's args


def test_a_second_handler_for_a_call_is_refused_at_import():
    """memfd_create was served by fs.py and descriptors.py at once: whichever module came last won, silently."""
    def sys_getpid(ctx) -> int:       # a different function under an already served name
        return 0
    with pytest.raises(RuntimeError, match="getpid: served by both"):
        syscall("getpid")(sys_getpid)


def test_rarer_families_register_on_the_first_call_they_serve():
    """table.py leaves the rarer families (sockets, readiness, IPC...) to the first call no start-up family serves:
    that call is served all the same (mlockall(0): residency.py's EINVAL, not ENOSYS). In a fresh interpreter."""
    code = ("import sys, monitor.syscalls.table\n"
            "from monitor.syscalls.dispatch import dispatch\n"
            "from monitor.syscalls.numbers import NUMBERS\n"
            "class Ctx: tid = 1\n"
            "before = 'monitor.syscalls.residency' in sys.modules\n"
            "print(before, dispatch(Ctx(), NUMBERS['mlockall'], 0, 0, 0, 0, 0, 0), "
            "dispatch(Ctx(), 100_000, 0, 0, 0, 0, 0, 0))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", str(-errno.EINVAL), str(-errno.ENOSYS)], out.stderr


def test_one_parse_of_a_descriptor_path_through_proc() -> None:
    """args.proc_fd_path reads /proc/.../fd[info]/N once for readlink's two questions: is it one of km's
    descriptors (km_fd_path, also through /proc/self/task/TID/), and is it a signalfd (signalfd_link: fd/N only)."""
    from monitor.syscalls.args import km_fd_path, proc_fd_path
    assert proc_fd_path(b"/proc/self/task/7/fd/3").groups() == (b"self", None, b"3", None)
    assert proc_fd_path(b"/proc/12/fdinfo/1002/x").groups() == (b"12", b"info", b"1002", b"/x")
    assert proc_fd_path(b"/proc/self/fd") is None and proc_fd_path(b"/proc/self/fds/3") is None
    assert km_fd_path(b"/proc/self/task/7/fd/1003") and km_fd_path(b"/proc//self/./fdinfo/1000")
    assert not km_fd_path(b"/proc/self/fd/999") and not km_fd_path(None)
