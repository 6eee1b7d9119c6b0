"""The payload's own /proc/self files, synthesized: the host's would describe km (a Python process), not the payload.

glibc's pthread_getattr_np reads /proc/self/maps to find the main thread's stack; programs read their cmdline,
environ, auxv, comm. Opening one of these gives a memfd holding the payload's view (fs.sys_openat asks here first).
Formats follow fs/proc/task_mmu.c (show_map_vma) and fs/proc/base.c.
"""
from __future__ import annotations

import errno
import os
import re

from kdbg.target import maps_text

_SELF = re.compile(rb"^/proc/(?:self|thread-self|(\d+)(?:/task/\d+)?)/([a-z_]+)$")


def _maps(ctx) -> bytes:
    return maps_text(ctx.proc.mem.mappings()).encode(errors="surrogateescape")


def _cmdline(ctx) -> bytes:
    return b"".join(os.fsencode(a) + b"\0" for a in ctx.proc.argv)


def _environ(ctx) -> bytes:
    return b"".join(os.fsencode(e) + b"\0" for e in ctx.proc.env)


def _comm(ctx) -> bytes:
    name = ctx.name or os.path.basename(ctx.proc.path)
    return name.encode(errors="surrogateescape")[:15] + b"\n"


FILES = {b"maps": _maps, b"cmdline": _cmdline, b"environ": _environ,
         b"auxv": lambda ctx: bytes(ctx.proc.auxv), b"comm": _comm}


def exe_alias(ctx, path: str) -> str:
    """/proc/self/exe (or /proc/<the payload's pid>/exe) names the payload's file, not km's interpreter: busybox
    runs its applets by executing it. Any other path is returned as it is."""
    m = _SELF.match(os.fsencode(path))
    if m and m.group(2) == b"exe" and (not m.group(1) or int(m.group(1)) == ctx.proc.pid):
        return os.path.abspath(ctx.proc.path)
    return path


def open_self_file(ctx, path: bytes, flags: int) -> int | None:
    """A new fd reading the payload's version of /proc/self/<name> (or /proc/<its pid>/<name>); None when the
    path is not one km synthesizes (the host answers)."""
    m = _SELF.match(path)
    if not m or (m.group(1) and int(m.group(1)) != ctx.proc.pid):
        return None
    if m.group(2) == b"exe":             # the payload's file (backtrace symbolizers read their own ELF here)
        try:
            return os.open(ctx.proc.path, flags & ~(os.O_CREAT | os.O_TRUNC))
        except OSError as e:
            return -(e.errno or errno.EIO)
    if m.group(2) not in FILES:
        return None
    if flags & os.O_ACCMODE != os.O_RDONLY and os.geteuid() != 0:     # mode 0444 (root passes, as on Linux)
        return -errno.EACCES
    content = FILES[m.group(2)](ctx)
    fd = os.memfd_create("km-proc-self", os.MFD_CLOEXEC if flags & os.O_CLOEXEC else 0)
    os.write(fd, content)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
