"""The payload's own /proc/self files, synthesized: the host's would describe km (a Python process), not the payload.

glibc's pthread_getattr_np reads /proc/self/maps to find the main thread's stack; programs read their cmdline,
environ, auxv, comm; CPython's tests and psutil-like code read status and stat. Opening one of these gives a memfd
holding the payload's view (fs.sys_openat asks here first). Formats follow fs/proc/task_mmu.c (show_map_vma,
task_mem), fs/proc/array.c (proc_pid_status, do_task_stat) and fs/proc/base.c. status and stat start from the
host's lines for km's process (pid, ids, times, scheduling are the payload's too) and replace what describes
memory, threads, signals and the name. Listing /proc/self/fd hides km's own descriptors (is_fd_directory).
"""
from __future__ import annotations

import errno
import os
import re
import struct
from typing import TYPE_CHECKING

from kdbg.arch.linux import maps_text

from ..host_fds import KM_FD_BASE, aside
from ..signals.delivery import SIG_DFL, SIG_IGN

COMM_LEN = 15       # TASK_COMM_LEN - 1: the bytes of a thread's name Linux keeps

if TYPE_CHECKING:
    from ..process.payload import Process
    from ..vcpu.loop import VcpuThread

OLD_SIGSET = 0x7FFFFFFF       # stat's signal fields are the first 31 signals only ("obsolete": status has them all)
_SELF = rb"^/proc/(?:self|thread-self|(\d+))(?:/task/(\d+))?/([a-z_]+)$"      # compiled at first use (re's cache)


def _maps(ctx: VcpuThread) -> bytes:
    return maps_text(ctx.proc.mem.mappings()).encode(errors="surrogateescape")


def _cmdline(ctx: VcpuThread) -> bytes:
    return b"".join(os.fsencode(a) + b"\0" for a in ctx.proc.argv)


def _environ(ctx: VcpuThread) -> bytes:
    return b"".join(os.fsencode(e) + b"\0" for e in ctx.proc.env)


def _comm(ctx: VcpuThread) -> bytes:
    return ctx.comm + b"\n"


def _memory(ctx: VcpuThread) -> dict[str, int]:
    """task_mem's figures in kB, from the payload's VMAs (km maps what it is given: resident = mapped)."""
    kb = dict.fromkeys(("VmSize", "VmRSS", "RssAnon", "RssFile", "VmData", "VmStk", "VmExe", "VmLib"), 0)
    exe = os.path.realpath(ctx.proc.path)      # VMAs name files as d_path does
    for r in ctx.proc.mem.mappings():
        size = (r.end - r.start) >> 10
        kb["VmSize"] += size
        if r.perms == "---":
            continue
        kb["VmRSS"] += size
        kb["RssFile" if r.is_file() else "RssAnon"] += size
        if r.path == "[stack]":
            kb["VmStk"] += size
        elif "x" in r.perms and r.is_file():
            kb["VmExe" if r.path == exe else "VmLib"] += size
        elif "w" in r.perms and not r.shared:
            kb["VmData"] += size
    return kb


def _signal_sets(ctx: VcpuThread) -> dict[str, int]:
    signals = ctx.proc.signals
    with signals.lock:
        own = signals.of(ctx)
        actions = signals.actions[1:]
        return {"SigPnd": sum(1 << (p.signo - 1) for p in own.pending),
                "ShdPnd": sum(1 << (p.signo - 1) for p in signals.shared_pending),
                "SigBlk": own.mask,
                "SigIgn": sum(1 << i for i, a in enumerate(actions) if a.handler == SIG_IGN),
                "SigCgt": sum(1 << i for i, a in enumerate(actions) if a.handler not in (SIG_DFL, SIG_IGN))}


def _host_text(name: str) -> str:
    return aside(_read_text, f"/proc/self/{name}")     # its descriptor out of the payload's way


def _read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


def _status(ctx: VcpuThread) -> bytes:
    mem, sigs = _memory(ctx), _signal_sets(ctx)
    mem.update(VmPeak=mem["VmSize"], VmHWM=mem["VmRSS"], VmLck=0, VmPin=0, RssShmem=0, VmSwap=0)
    values = {"Name": _comm(ctx).decode(errors="replace").rstrip("\n"), "State": "R (running)",
              "Threads": str(len(ctx.proc.live_threads()))}
    values.update({k: f"{v:8} kB" for k, v in mem.items()})
    values.update({k: f"{v:016x}" for k, v in sigs.items()})
    lines = []
    for line in _host_text("status").splitlines():
        key = line.split(":", 1)[0]
        lines.append(f"{key}:\t{values[key]}" if key in values else line)
    return ("\n".join(lines) + "\n").encode()


def _strings_span(ctx: VcpuThread, first: int, count: int) -> tuple[int, int]:
    """[start, end) of `count` NUL-ended strings whose pointers begin at `first` on the initial stack."""
    if not count:
        return 0, 0
    pointers = struct.unpack(f"<{count}Q", ctx.proc.mem.read(first, 8 * count))
    last = pointers[-1]
    return pointers[0], last + len(ctx.proc.mem.read_cstring(last)) + 1


def _stat(ctx: VcpuThread) -> bytes:
    host = _host_text("stat").rstrip("\n")
    fields = ["0", "(x)"] + host[host.rindex(")") + 2:].split(" ")        # fields[n] is field n+1 of proc(5)
    fields[0], fields[1], fields[2] = host.split(" ", 1)[0], f"({_comm(ctx).decode(errors='replace').rstrip()})", "R"
    proc, regions = ctx.proc, ctx.proc.mem.mappings()
    exe = os.path.realpath(proc.path)
    code = [r for r in regions if r.path == exe and "x" in r.perms]
    data = [r for r in regions if r.path == exe and "w" in r.perms]
    mem, sigs = _memory(ctx), _signal_sets(ctx)
    try:
        rsp = proc.initial_rsp
        argc = struct.unpack("<Q", proc.mem.read(rsp, 8))[0]
        args = _strings_span(ctx, rsp + 8, argc)
        envc = len(proc.env)
        envs = _strings_span(ctx, rsp + 8 * (argc + 2), envc)
    except Exception:         # the payload wrote over its initial stack: Linux keeps the addresses, km has none
        args = envs = (0, 0)
    stack = next((r.end for r in regions if r.path == "[stack]"), 0)
    replace = {19: len(proc.live_threads()), 22: mem["VmSize"] << 10, 23: mem["VmRSS"] >> 2,
               25: code[0].start if code else 0, 26: code[-1].end if code else 0, 27: proc.initial_rsp or stack,
               28: 0, 29: 0, 30: (sigs["SigPnd"] | sigs["ShdPnd"]) & OLD_SIGSET, 31: sigs["SigBlk"] & OLD_SIGSET,
               32: sigs["SigIgn"] & OLD_SIGSET, 33: sigs["SigCgt"] & OLD_SIGSET, 44: data[0].start if data else 0, 45: data[-1].end if data else 0,
               46: proc.mem.brk_start, 47: args[0], 48: args[1], 49: envs[0], 50: envs[1]}
    for index, value in replace.items():
        if index < len(fields):
            fields[index] = str(value)
    return (" ".join(fields) + "\n").encode()


_FD_DIRECTORY = r"^/proc/(\d+)(?:/task/\d+)?/(?:fd|fdinfo)$"


def is_fd_directory(fd: int) -> bool:
    """Whether a host descriptor reads a /proc/<km's pid>/fd (or fdinfo) directory, whose listing includes km's
    own descriptors (KM_FD_BASE and up): getdents64 leaves those out."""
    try:
        m = re.match(_FD_DIRECTORY, os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return False
    return m is not None and int(m.group(1)) == os.getpid()


def without_km_fds(entries: bytes) -> bytes:
    """linux_dirent64 records minus those naming a descriptor of km's (d_reclen is at offset 16, d_name at 19)."""
    kept, pos = [], 0
    while pos + 19 <= len(entries):
        reclen = struct.unpack_from("<H", entries, pos + 16)[0]
        if reclen == 0:
            break
        name = entries[pos + 19:pos + reclen].split(b"\0", 1)[0]
        if not (name.isdigit() and int(name) >= KM_FD_BASE):
            kept.append(entries[pos:pos + reclen])
        pos += reclen
    return b"".join(kept)


FILES = {b"maps": _maps, b"status": _status, b"stat": _stat, b"cmdline": _cmdline, b"environ": _environ,
         b"auxv": lambda ctx: bytes(ctx.proc.auxv), b"comm": _comm}


def exe_alias(ctx: VcpuThread, path: str) -> str:
    """/proc/self/exe (or /proc/<the payload's pid>/exe) names the payload's file, not km's interpreter: busybox
    runs its applets by executing it. Any other path is returned as it is."""
    if not path.startswith("/proc/"):
        return path
    m = re.match(_SELF, os.fsencode(path))
    if m and m.group(3) == b"exe" and (not m.group(1) or int(m.group(1)) == ctx.proc.pid):
        return os.path.abspath(ctx.proc.path)
    return path


def open_self_file(ctx: VcpuThread, path: bytes, flags: int) -> int | None:
    """A new fd reading the payload's version of /proc/self/<name> (or /proc/<its pid>/<name>); None when the
    path is not one km synthesizes (the host answers)."""
    m = re.match(_SELF, path)
    if not m or (m.group(1) and int(m.group(1)) != ctx.proc.pid):
        return None
    name = m.group(3)
    if name == b"exe":             # the payload's file (backtrace symbolizers read their own ELF here)
        try:
            return os.open(ctx.proc.path, flags & ~(os.O_CREAT | os.O_TRUNC))
        except OSError as e:
            return -(e.errno or errno.EIO)
    if name not in FILES:
        return None
    if m.group(2):                 # task/TID/: that thread's own view (pthread_getname_np of another thread)
        task = next((t for t in ctx.proc.live_threads() if t.tid == int(m.group(2))), None)
        if task is None:
            return -errno.ENOENT
        ctx = task
    writing = flags & os.O_ACCMODE != os.O_RDONLY
    if writing and name != b"comm" and os.geteuid() != 0:     # mode 0444 (root passes, as on Linux)
        return -errno.EACCES
    fd = os.memfd_create("km-proc-self", os.MFD_CLOEXEC if flags & os.O_CLOEXEC else 0)
    if writing and name == b"comm":
        # comm is 0644: pthread_setname_np names another thread by writing here. The name is what was written,
        # taken when the payload closes the descriptor (both libcs open, write, close); the inode tells that
        # descriptor from a later one given the same number.
        ctx.proc.comm_writes[fd] = (ctx, os.fstat(fd).st_ino)
        return fd
    os.write(fd, FILES[name](ctx))
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def close_comm(proc: Process, fd: int) -> None:
    """The payload closes a descriptor: if it is a comm file opened for writing, the thread takes the name written
    (up to the first newline, COMM_LEN bytes, as proc_comm_write/set_task_comm keep it)."""
    thread, inode = proc.comm_writes.pop(fd)
    try:
        if os.fstat(fd).st_ino != inode:
            return
        written = os.pread(fd, 4096, 0)
    except OSError:
        return
    if written:
        thread.name = written.split(b"\n", 1)[0][:COMM_LEN].decode(errors="surrogateescape")
