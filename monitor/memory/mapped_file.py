"""The host file behind file-backed guest memory (Linux's vm_file): its name and identity for /proc/self/maps,
NT_FILE and gdb, and the descriptor km re-reads it through.

Small private file mappings (libraries, the executable) are copies in the allocator's memory (see GuestMemory.
map_file): MADV_DONTNEED on them must give the file's bytes again, so such a VMA keeps the file open. km's
descriptor is dup'ed into its own range (KM_FD_BASE and up) and shared by every VMA of one mapping (splits
included); it closes when the last of them is gone. Mappings the host makes itself (shared ones) need no
descriptor: the host mapping holds the file.

ld.so maps a library five times from one descriptor (whole, then each segment over it): KeptFiles.of_fd gives the
later mappings the MappedFile of the first while the payload's descriptor is still the same open file (kcmp),
instead of a readlink of /proc/self/fd, a dup and an fstat each (~45 us apiece in a forked km). One KeptFiles per
address space (GuestMemory.kept_files) remembers that first MappedFile, weakly: the VMAs own it.
"""
from __future__ import annotations

import os
import stat
import weakref
from typing import Callable

from ..host_fds import dup_high, high_fd, open_high
from ..kvm.abi import libc
from ..loader.elf_headers import first_code_offset
from ..syscalls.numbers import NUMBERS

KCMP_FILE = 0                    # include/uapi/linux/kcmp.h


class MappedFile:
    """Compared by identity: the VMAs of one mapping share one. A plain class, not a dataclass, whose code
    generation costs every km start (see monitor/record.py)."""

    def __init__(self, path: str, dev: int = 0, inode: int = 0, is_regular: bool = True,
                 fd: int | None = None) -> None:
        self.path = path            # as the kernel's d_path names it: symlinks resolved
        self.dev = dev
        self.inode = inode
        self.is_regular = is_regular
        self.fd = fd                # km's own descriptor, when the file must be re-read
        self._owns_fd = False       # adopt(): fd closes with this object (__del__: no weakref.finalize registry,
        #                             ~16 us per mapping in a forked km)

    def __del__(self, close: Callable[[int], None] = os.close) -> None:
        """(os.close bound at definition: at interpreter exit this module's globals may be gone already.)"""
        if self._owns_fd and self.fd is not None:
            try:
                close(self.fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return (f"MappedFile(path={self.path!r}, dev={self.dev!r}, inode={self.inode!r}, "
                f"is_regular={self.is_regular!r})")

    @classmethod
    def open(cls, path: str) -> MappedFile:
        """The file at `path`, opened read-only (the loader's executable and interpreter)."""
        return cls.adopt(open_high(path), os.path.realpath(path), moved=True)

    @classmethod
    def of_open_file(cls, fd: int, path: str) -> MappedFile:
        """The file behind one of km's own descriptors (the loader's open ELF file, `path`), with a copy of the
        descriptor kept; named by the host (/proc/self/fd), as realpath(path) would name it in several lstats."""
        copy = dup_high(fd)
        return cls.adopt(copy, _fd_path(fd) or os.path.realpath(path), moved=True)

    @classmethod
    def of_fd(cls, fd: int) -> MappedFile:
        """The file behind one of the payload's descriptors (mmap), named, with no descriptor kept (a mapping
        the host makes itself; KeptFiles.of_fd keeps one for re-reads)."""
        path = _fd_path(fd)
        st = os.fstat(fd)
        return cls(path, st.st_dev, st.st_ino, stat.S_ISREG(st.st_mode))

    @classmethod
    def adopt(cls, fd: int, path: str, moved: bool = False) -> MappedFile:
        """Take ownership of `fd` (moved to km's descriptor range unless `moved` already, closed when the
        MappedFile goes)."""
        try:
            st = os.fstat(fd)
            if not moved:
                fd = high_fd(fd)
        except OSError:
            os.close(fd)
            raise
        mapped = cls(path, st.st_dev, st.st_ino, stat.S_ISREG(st.st_mode), fd)
        mapped._owns_fd = True
        return mapped

    def size(self) -> int:
        return os.fstat(self.fd).st_size if self.fd is not None else 0

    def metadata_end(self) -> int:
        """Where an ELF file's first executable PT_LOAD starts (page-aligned down): the headers, symbol tables and
        relocations come before it. 0 for anything else (or a file that cannot be read)."""
        assert self.fd is not None, "a file kept open"
        try:
            return first_code_offset(self.fd) & ~0xFFF
        except OSError:
            return 0

    def read_into(self, view: memoryview, offset: int) -> int:
        """Fill `view` from the file at `offset`; bytes past the end of the file stay as they are. Returns the
        count read."""
        done, fd = 0, self.fd
        assert fd is not None, "read_into needs a file kept open (MappedFile.open/adopt)"
        while done < len(view):
            n = os.preadv(fd, [view[done:]], offset + done)
            if n <= 0:
                break
            done += n
        return done


def _no_file() -> MappedFile | None:
    return None


class KeptFiles:
    """The payload's files one address space keeps a descriptor of (GuestMemory.kept_files): the last one made is
    remembered, for the next mapping of the same open file (see the module docstring)."""

    def __init__(self) -> None:
        self._last: weakref.ref[MappedFile] | Callable[[], MappedFile | None] = _no_file

    def of_fd(self, fd: int) -> MappedFile:
        """The file behind one of the payload's descriptors (mmap) with a copy of the descriptor kept for later
        re-reads; the last such MappedFile while `fd` is still the open file it copied."""
        last = self._last()
        if last is not None and last.fd is not None and _same_open_file(fd, last.fd):
            return last
        # dup'ed into km's range at once: a plain dup took the lowest free number, which a payload thread
        # opening a file at that moment must get (Linux's mmap takes no descriptor)
        mapped = MappedFile.adopt(dup_high(fd), _fd_path(fd), moved=True)
        self._last = weakref.ref(mapped)
        return mapped


def _same_open_file(fd: int, other: int) -> bool:
    """Whether two of this process's descriptors refer to one open file description (dup'ed from each other):
    kcmp(2); False where it is missing or refused (seccomp), which only costs the lookup it saves."""
    pid = os.getpid()
    return libc.syscall(NUMBERS["kcmp"], pid, pid, KCMP_FILE, fd, other, 0) == 0


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""
