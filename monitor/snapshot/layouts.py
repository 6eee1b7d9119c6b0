"""The km notes of a snapshot, declared once: what `km FILE` needs to resume a payload beyond a core's notes.

Each structure mirrors include/km/snapshot_format.h (the published description, for other readers of the file);
tests/unit/test_snapshot_layouts.py checks every field against it with the C compiler, as
kdbg/core/layouts.py is checked against the kernel's headers. Strings and data follow a note's fixed part.
"""
from __future__ import annotations

import ctypes
import enum
from dataclasses import dataclass
from typing import TypeVar

from kdbg.arch.linux import SIGINFO_SIZE
from kdbg.arch.x86_64 import KVM_REGS

_Struct = ctypes.LittleEndianStructure
c_char, c_int32, c_uint32, c_uint64, c_uint8 = ctypes.c_char, ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint64, \
    ctypes.c_uint8

S = TypeVar("S", bound=ctypes.Structure)
KM_NOTE_OWNER_PREFIX = b"KM_"
KM_SNAPSHOT_MAGIC = b"KMSNAP"
KM_SNAPSHOT_FORMAT = 1


class KmNote(enum.IntEnum):
    """n_type of km's notes (enum km_note_type): "KM" << 16 and an index, so that no core reader takes one for a
    note of its own (gdb's BFD looks at the type whatever the owner: a type 1 would be a second NT_PRSTATUS)."""

    NT_KM_SNAPSHOT = 0x4B4D0001
    NT_KM_PROCESS = 0x4B4D0002
    NT_KM_THREAD = 0x4B4D0003
    NT_KM_XSAVE = 0x4B4D0004
    NT_KM_SIGACTIONS = 0x4B4D0005
    NT_KM_SIGPENDING = 0x4B4D0006
    NT_KM_VMA = 0x4B4D0007
    NT_KM_FD = 0x4B4D0008

    @property
    def owner(self) -> bytes:
        """The note's owner name, what `readelf -n` lists: its name without NT_ (KM_THREAD...)."""
        return self.name[3:].encode()


KM_SNAPSHOT_LIVE = 1
SIGACTION_COUNT = 64            # NT_KM_SIGACTIONS: struct km_sigaction[64], signals 1..64 (signals.NSIG)
KM_THREAD_IN_SYSCALL = 1
KM_VMA_BACKED, KM_VMA_FILE, KM_VMA_SHARED, KM_VMA_HOST, KM_VMA_SMALL_PAGES, KM_VMA_COPY = 1, 2, 4, 8, 16, 32


class FdKind(enum.IntEnum):
    """enum km_fd_kind: how a descriptor comes back."""

    KM_FD_FILE = 1
    KM_FD_DIRECTORY = 2
    KM_FD_PIPE = 3
    KM_FD_LISTENER = 4
    KM_FD_SOCKET = 5
    KM_FD_EVENTFD = 6
    KM_FD_EPOLL = 7
    KM_FD_TIMERFD = 8
    KM_FD_GONE = 9


class km_snapshot(_Struct):
    """NT_KM_SNAPSHOT, then the label and the description, each NUL-terminated."""

    _fields_ = [("magic", c_char * 8), ("format", c_uint32), ("flags", c_uint32), ("km_version", c_char * 16),
                ("time_ns", c_uint64), ("pid", c_int32), ("caller_tid", c_int32)]


class km_process(_Struct):
    """NT_KM_PROCESS, then argc + envc + 2 NUL-terminated strings: argv, env, the executable's path, the cwd."""

    _fields_ = [("brk_start", c_uint64), ("brk", c_uint64), ("argc", c_uint32), ("envc", c_uint32),
                ("umask", c_uint32), ("reserved", c_uint32)]


class km_thread(_Struct):
    """NT_KM_THREAD: one per thread; regs in struct kvm_regs order (kdbg.arch.x86_64.KVM_REGS)."""

    _fields_ = [("tid", c_int32), ("flags", c_uint32), ("regs", c_uint64 * len(KVM_REGS)), ("fs_base", c_uint64),
                ("gs_base", c_uint64), ("sigmask", c_uint64), ("ss_sp", c_uint64), ("ss_flags", c_uint32),
                ("reserved", c_uint32), ("ss_size", c_uint64), ("clear_child_tid", c_uint64),
                ("robust_list", c_uint64), ("name", c_char * 16)]


class km_xsave(_Struct):
    """NT_KM_XSAVE, then `size` bytes: the thread's KVM XSAVE image (all of x87, SSE, AVX, AVX-512)."""

    _fields_ = [("tid", c_int32), ("size", c_uint32)]


class km_sigaction(_Struct):
    """NT_KM_SIGACTIONS holds SIGACTION_COUNT of them, signal 1 first (struct kernel_sigaction's fields)."""

    _fields_ = [("handler", c_uint64), ("flags", c_uint64), ("restorer", c_uint64), ("mask", c_uint64)]


class km_pending(_Struct):
    """NT_KM_SIGPENDING holds one per queued signal, in queue order (the threads' queues, then the process's)."""

    _fields_ = [("signo", c_int32), ("tid", c_int32), ("chosen_tid", c_int32), ("reserved", c_uint32),
                ("info", c_uint8 * SIGINFO_SIZE)]


class km_vma(_Struct):
    """NT_KM_VMA: one per VMA in address order, then its name and its path, each NUL-terminated."""

    _fields_ = [("start", c_uint64), ("end", c_uint64), ("offset", c_uint64), ("prot", c_uint32),
                ("flags", c_uint32), ("file_size", c_uint64), ("file_mtime_ns", ctypes.c_int64)]


class km_fd(_Struct):
    """NT_KM_FD: one per descriptor of the payload, then its path and its data (path_size, data_size bytes)."""

    _fields_ = [("fd", c_int32), ("kind", c_uint32), ("flags", c_uint32), ("fd_flags", c_uint32),
                ("offset", c_uint64), ("value", c_uint64), ("peer", c_int32), ("domain", c_int32),
                ("type", c_int32), ("protocol", c_int32), ("connected", c_uint32), ("path_size", c_uint32),
                ("data_size", c_uint32), ("reserved", c_uint32)]


class km_epoll_item(_Struct):
    """The data of a KM_FD_EPOLL descriptor: one per watched descriptor."""

    _fields_ = [("fd", c_int32), ("events", c_uint32), ("data", c_uint64)]


@dataclass
class Descriptor:
    """One NT_KM_FD note: its km_fd record, then the path and the data that follow it (path_size, data_size)."""

    record: km_fd
    path: bytes = b""
    data: bytes = b""

    def pack(self) -> bytes:
        """The note's descriptor bytes, with the record's sizes set from the path and data it carries."""
        self.record.path_size, self.record.data_size = len(self.path), len(self.data)
        return bytes(self.record) + self.path + self.data

    @classmethod
    def unpack(cls, note: bytes) -> Descriptor:
        """ValueError when the record's sizes run past the note (a corrupt snapshot)."""
        record = array_of(km_fd, note, 1)[0]
        path_at = ctypes.sizeof(km_fd)
        data_at = path_at + record.path_size
        if data_at + record.data_size > len(note):
            raise ValueError(f"fd {record.fd}: its path and data run past its note")
        return cls(record, note[path_at:data_at], note[data_at:data_at + record.data_size])


def array_of(layout: type[S], data: bytes, count: int) -> list[S]:
    """`count` copies of `layout` packed back to back at the start of `data` (ValueError when it is short)."""
    size = ctypes.sizeof(layout)
    if len(data) < size * count:
        raise ValueError(f"{layout.__name__}: {count} entries need {size * count} bytes, the note has {len(data)}")
    return [layout.from_buffer_copy(data, i * size) for i in range(count)]


def strings(data: bytes, count: int) -> list[bytes]:
    """The first `count` NUL-terminated strings of `data` (ValueError when there are fewer)."""
    parts = data.split(b"\0", count)
    if len(parts) <= count:
        raise ValueError(f"{count} strings expected, {len(parts) - 1} found")
    return parts[:count]
