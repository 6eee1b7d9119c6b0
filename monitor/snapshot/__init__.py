"""Snapshots: a running payload's whole state written as an ELF core with km notes, and resumed from one."""
from __future__ import annotations

import os
import stat

ELF_CORE_HEAD = b"\x7fELF\x02\x01"       # 64-bit little-endian ELF ...
ET_CORE = b"\x04\x00"                     # ... whose e_type (at byte 16) is ET_CORE


def is_core(path: str) -> bool:
    """An ELF core file: `km FILE` resumes it as a snapshot instead of loading it (cheap: km's start pays it). Only
    a regular file is read (a FIFO would block: the loader names the problem)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.pread(fd, 18, 0)
    except OSError:
        return False
    finally:
        os.close(fd)
    return head[:6] == ELF_CORE_HEAD and head[16:18] == ET_CORE
