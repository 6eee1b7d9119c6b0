"""The payload's address space: VMAs (like Linux's), their guest-physical backing, and checked access to them.

Every VMA with rights other than PROT_NONE owns one contiguous GPA range, so a guest buffer inside one VMA is one
contiguous host buffer (syscalls hand it to the host kernel without copying). PROT_NONE reservations (Go reserves
hundreds of GiB) own no memory until mprotect or MAP_FIXED gives them rights. Access checks follow the VMA's
rights; an address outside every VMA raises GuestFault, which a syscall turns into EFAULT. A buffer spanning
VMAs whose backings are not adjacent on the host is served through a copy (syscalls/bounce.py).

File mappings (map_file) come two ways. Most are the host's own mapping of the file in a file window
(PhysicalMemory.map_file), exactly Linux's semantics: shared writes reach the file, private pages see the file
change until written, pages are read when first touched. A program image (the loader's segments or a library ld.so
maps: private, executable or MAP_DENYWRITE, a regular file up to COPY_LIMIT) is instead a copy read into the
allocator's memory where that pays on kvm-pvm: a guest page over the host's read-only page-cache page costs a KVM
fault of its own (~20 us), while over memory km wrote KVM maps up to 8 neighbours with it (~4 us a page read in
order). So copies are images holding a whole 2M page (the guest maps those with 2M pages), small images (ld.so's
text, relro and data: nearly every page touched) and a large image's leading ELF metadata (libc's symbol tables and
relocations, which ld.so reads while linking); a large image's code is the file's mapping, as ld.so and a short
program touch ~25 of libc's 342 code pages (a copy of libc cost ~2 ms per exec). An image does not change while it
runs (Linux long refused writes to it: ETXTBSY), so a copy is not seen to differ from the file. Either way the
VMA names its MappedFile.
"""
from __future__ import annotations

import bisect
import errno
import fcntl
import os
import threading
from array import array
from typing import Any, Callable

from kdbg.arch.linux import MemoryRegion

from ..errors import GuestFault
from ..kvm import abi
from .mapped_file import KeptFiles, MappedFile
from .page_tables import PTE_NX, PTE_U, PTE_W, PageTables
from .physical import HUGE, PAGE, PhysicalMemory
from ..record import Record

USER_TOP = 0x7FFFFFFFF000
MMAP_TOP = 0x7FFFF7FFF000        # mmap without a hint grows down from here (Linux's mmap_base without ASLR:
                                 # TASK_SIZE less a 128 MiB stack gap); the stack lives above
MMAP_BOTTOM = 0x10000
COPY_LIMIT = 16 << 20            # program images up to this size may be copies (see the module docstring)
SMALL_IMAGE = 256 << 10          # images up to this size are copies whole
# Small writable anonymous mappings (a library's bss, TLS blocks, ld.so's own) get their host pages at once: KVM
# then maps a faulting page's 8-page group with it (it prefetches only over host pages present and writable),
# where each page the guest touched first cost a fault of its own (~15 us; libc's bss took 10 for 13 pages)
POPULATE_LIMIT = 64 << 10
MADV_POPULATE_WRITE = 23
PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = abi.PROT_NONE, abi.PROT_READ, abi.PROT_WRITE, abi.PROT_EXEC


def page_up(n: int) -> int:
    return (n + PAGE - 1) & ~(PAGE - 1)


def page_down(n: int) -> int:
    return n & ~(PAGE - 1)


class Vma(Record):
    def __init__(self, start: int, end: int, prot: int, gpa: int | None = None, path: str = "", offset: int = 0,
                 name: str = "", huge: bool = True, locked: bool = False, foreign: int | None = None,
                 file: MappedFile | None = None, shared: bool = False, accounted: bool = False) -> None:
        self.start = start
        self.end = end
        self.prot = prot
        self.gpa = gpa          # backing of [start, end), or None for a reservation never given rights
        self.path = path        # file name for file mappings (core files' NT_FILE, gdb's mappings)
        self.offset = offset
        self.name = name        # "[stack]", "[heap]", "[vdso]"...
        self.huge = huge        # may be backed by 2M host pages (not for sparse memory: thread stacks)
        self.locked = locked    # mlock'ed: Linux refuses MADV_DONTNEED/FREE and MS_INVALIDATE on it
        self.foreign = foreign  # GPA of memory km does not own (the host's [vvar]): gpa stays None, so km never
        #                         reads it, and this restores the guest's view after mprotect(PROT_NONE)
        self.file = file        # the file of a file mapping
        self.shared = shared    # MAP_SHARED: writes reach the file (or, for shared anonymous memory, others)
        self.accounted = accounted  # Linux's VM_ACCOUNT: private and once writable (merging as Linux does)

    def perms(self) -> str:
        return ("r" if self.prot & PROT_READ else "-") + ("w" if self.prot & PROT_WRITE else "-") + \
               ("x" if self.prot & PROT_EXEC else "-")


def pte_flags(prot: int) -> int:
    return PTE_U | (PTE_W if prot & PROT_WRITE else 0) | (0 if prot & PROT_EXEC else PTE_NX)


def _no_remap_listener(start: int, end: int) -> None:
    pass


class GuestMemory:
    def __init__(self, phys: PhysicalMemory, tables: PageTables,
                 on_remap: Callable[[int, int], None] | None = None) -> None:
        self.phys, self.tables = phys, tables
        self.vmas: list[Vma] = []
        self._starts: list[int] = []
        self.lock = threading.RLock()
        self.brk_start = self.brk = 0
        self.mlock_future = False    # mlockall(MCL_FUTURE): new mappings start locked
        self.generation = 0          # counts VMAs added and removed: the debugger's cue that libraries may have changed
        # on_remap(start, end) after the page tables of a range were rewritten (the debugger's watchpoints
        # re-protect their pages: Process forwards it to DebugHooks.on_remap)
        self.on_remap = on_remap or _no_remap_listener
        self.kept_files = KeptFiles()   # the payload's files mapped with a descriptor km keeps (mmap of code)

    # ---- lookup -------------------------------------------------------------------------------------------
    def find(self, gva: int) -> Vma | None:
        i = bisect.bisect(self._starts, gva) - 1
        if i >= 0 and gva < self.vmas[i].end:
            return self.vmas[i]
        return None

    def find_vma(self, gva: int) -> Vma | None:
        """The VMA containing gva, else the first one above it (Linux's find_vma)."""
        i = bisect.bisect(self._starts, gva) - 1
        if i >= 0 and gva < self.vmas[i].end:
            return self.vmas[i]
        return self.vmas[i + 1] if i + 1 < len(self.vmas) else None

    def host_addr(self, gva: int, size: int, write: bool = False) -> int:
        """Host address of a guest buffer that lies in one backed VMA with the needed rights, else GuestFault."""
        if size == 0:
            return 0
        vma = self.find(gva)
        if vma is None or gva + size > vma.end or vma.gpa is None or not _allows(vma.prot, write):
            return self._host_addr_slow(gva, size, write)
        return self.phys.host_addr(vma.gpa + gva - vma.start)

    def _host_addr_slow(self, gva: int, size: int, write: bool) -> int:
        """A buffer spanning adjacent VMAs is contiguous on the host only if their backings are."""
        pieces = self.pieces(gva, size, write)
        first = pieces[0][0]
        expected = first
        for host, length in pieces:
            if host != expected:
                raise GuestFault(gva, size)     # callers that can bounce use pieces() instead
            expected += length
        return first

    def pieces(self, gva: int, size: int, write: bool = False) -> list[tuple[int, int]]:
        """[(host_addr, length)] covering the guest range, or GuestFault if any byte is not accessible."""
        out: list[tuple[int, int]] = []
        end = gva + size
        addr = gva
        while addr < end:
            vma = self.find(addr)
            if vma is None or vma.gpa is None or not _allows(vma.prot, write):
                raise GuestFault(gva, size)
            length = min(end, vma.end) - addr
            out.append((self.phys.host_addr(vma.gpa + addr - vma.start), length))
            addr += length
        return out

    def accessible(self, gva: int, size: int, write: bool = False) -> int:
        """How many bytes from gva on (at most size) the payload may read, or write."""
        done = 0
        while done < size:
            vma = self.find(gva + done)
            if vma is None or vma.gpa is None or not _allows(vma.prot, write):
                break
            done = min(size, vma.end - gva)
        return done

    def read(self, gva: int, size: int) -> bytes:
        return b"".join(bytes(self._view(h, n)) for h, n in self.pieces(gva, size))

    def write(self, gva: int, data: bytes) -> None:
        offset = 0
        for host, length in self.pieces(gva, len(data), write=True):
            self._view(host, length)[:] = data[offset:offset + length]
            offset += length

    def read_cstring(self, gva: int, limit: int = 4096, *, truncate: bool = False) -> bytes:
        """A NUL-terminated string (without the NUL) in a buffer of `limit` bytes, NUL included (PATH_MAX,
        TASK_COMM_LEN), as Linux's strncpy_from_user reads it. GuestFault if it runs into unmapped memory first;
        with no NUL in `limit` bytes: the first limit-1 bytes if `truncate`, else ENAMETOOLONG (a too-long path)."""
        vma = self.find(gva)
        if vma is not None and vma.gpa is not None and vma.prot & PROT_READ:
            size = min(vma.end - gva, limit)
            found = abi.ffi.string(abi.ffi.cast("char *", self.phys.host_addr(vma.gpa + gva - vma.start)), size)
            if len(found) < size:       # its NUL inside this VMA (every path a syscall names): one C call
                return found
        out = b""
        while len(out) < limit:
            vma = self.find(gva)
            if vma is None or vma.gpa is None or not vma.prot & PROT_READ:
                raise GuestFault(gva, 1)
            size = min(vma.end - gva, 256, limit - len(out))
            chunk = bytes(self._view(self.phys.host_addr(vma.gpa + gva - vma.start), size))
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
            gva += len(chunk)
        if truncate:
            return out[:limit - 1]
        raise OSError(errno.ENAMETOOLONG, "string longer than its buffer")

    def read_string_array(self, gva: int, count: int, limit: int, total: int | None = None) -> list[bytes]:
        """The strings of a NULL-terminated array of string pointers (execve's argv and envp): at most `count`
        of them, each read as read_cstring(limit) does, and with `total`, at most that many bytes of them with their
        NULs: OSError(E2BIG) past it, before the rest is read (execve's copy_strings stops there too). The pointers
        are read up to a page at a time."""
        out: list[bytes] = []
        string, last, base = abi.ffi.string, None, 0     # the VMA of the previous string: the next is mostly in it too
        budget = total if total is not None else 1 << 62
        while gva and len(out) < count:
            n = min(self.accessible(gva, 8 * (count - len(out))) // 8, PAGE // 8)
            if n == 0:
                raise GuestFault(gva, 8)
            for pointer in array("Q", self.read(gva, 8 * n)):
                if not pointer:
                    return out
                found = None
                if last is not None and last.start <= pointer < last.end:
                    size = min(last.end - pointer, limit)
                    found = string(abi.ffi.cast("char *", base + pointer), size)
                    if len(found) == size:        # no NUL inside this VMA (else: one C call)
                        found = None
                if found is None:
                    found = self.read_cstring(pointer, limit)
                    last = self.find(pointer)
                    if last is None or last.gpa is None or not last.prot & PROT_READ:
                        last = None
                    else:
                        base = self.phys.host_addr(last.gpa) - last.start     # within one VMA: one host range
                out.append(found)
                budget -= len(found) + 1
                if budget < 0:
                    raise OSError(errno.E2BIG, "strings past their total")
            gva += 8 * n
        return out

    def _view(self, host: int, length: int) -> memoryview:
        return memoryview(abi.ffi.buffer(abi.ffi.cast("char *", host), length))

    def read_debug(self, gva: int, size: int) -> bytes:
        """For the debugger: reads whatever is backed, PROT_NONE-but-backed included, like ptrace does."""
        vma = self.find(gva)
        if vma is not None and vma.gpa is not None and gva + size <= vma.end:     # one VMA: one copy
            return bytes(self.phys.view(vma.gpa + gva - vma.start, size))
        out = bytearray()
        addr, end = gva, gva + size
        while addr < end:
            vma = self.find(addr)
            if vma is None or vma.gpa is None:
                raise GuestFault(addr, end - addr)
            length = min(end, vma.end) - addr
            out += self.phys.view(vma.gpa + addr - vma.start, length)
            addr += length
        return bytes(out)

    def write_debug(self, gva: int, data: bytes) -> None:
        """For the debugger (breakpoints into read-only text): ignores the VMA's rights, like ptrace POKETEXT."""
        vma = self.find(gva)
        if vma is not None and vma.gpa is not None and gva + len(data) <= vma.end:
            self.phys.view(vma.gpa + gva - vma.start, len(data))[:] = data
            return
        addr, offset = gva, 0
        while offset < len(data):
            vma = self.find(addr)
            if vma is None or vma.gpa is None:
                raise GuestFault(addr, len(data) - offset)
            length = min(len(data) - offset, vma.end - addr)
            self.phys.view(vma.gpa + addr - vma.start, length)[:] = data[offset:offset + length]
            addr += length
            offset += length

    # ---- changes ------------------------------------------------------------------------------------------
    def _insert(self, vma: Vma) -> None:
        i = bisect.bisect(self._starts, vma.start)
        self.vmas.insert(i, vma)
        self._starts.insert(i, vma.start)
        self.generation += 1

    def _split(self, addr: int) -> None:
        """Make `addr` a VMA boundary (if it falls inside one)."""
        vma = self.find(addr)
        if vma is None or vma.start == addr:
            return
        tail = vma.replace(start=addr, gpa=None if vma.gpa is None else vma.gpa + addr - vma.start,
                           offset=vma.offset + addr - vma.start if vma.file else 0,
                           foreign=None if vma.foreign is None else vma.foreign + addr - vma.start)
        vma.end = addr
        self._insert(tail)

    def _range(self, start: int, end: int) -> list[Vma]:
        self._split(start)
        self._split(end)
        lo = bisect.bisect_left(self._starts, start)
        hi = bisect.bisect_left(self._starts, end)
        return self.vmas[lo:hi]

    def vmas_in(self, start: int, end: int) -> list[Vma]:
        """The VMAs within [start, end), split at both ends so that changing them changes exactly that range."""
        with self.lock:
            return self._range(start, end)

    def map(self, start: int, size: int, prot: int, *, name: str = "", reserve_only: bool = False,
            huge: bool = True) -> Vma:
        """Create a VMA at a fixed place (whatever was there is unmapped first), backed unless PROT_NONE."""
        with self.lock:
            end = start + page_up(size)
            vma = Vma(start, end, prot, None, "", 0, name, huge, locked=self.mlock_future,
                      accounted=bool(prot & PROT_WRITE))
            backed = prot != abi.PROT_NONE and not reserve_only
            if backed:
                self._alloc(vma)             # first: running out of memory leaves the old mapping in place
            self.unmap(start, end - start)
            if backed:
                self.tables.set_range(start, end - start, vma.gpa, pte_flags(prot))
                if end - start <= POPULATE_LIMIT and prot & PROT_WRITE:
                    assert vma.gpa is not None, "backed"
                    abi.libc.madvise(abi.ffi.cast("void *", self.phys.host_addr(vma.gpa)), end - start,
                                     MADV_POPULATE_WRITE)   # (before Linux 5.14: EINVAL, and faults as before)
            self._insert(vma)
            self.on_remap(start, end)
            return vma

    def map_file(self, start: int, size: int, prot: int, file: MappedFile, offset: int, shared: bool, *,
                 image: bool = False, host_fd: int | None = None) -> None:
        """mmap of a file at a fixed place, as Linux gives it (see the module docstring for the two backings;
        `image`: a program image, copied where that pays). host_fd (default file.fd) is what the host maps.
        Past the file's last page Linux raises SIGBUS; the guest gets zero pages there (km's own access, or KVM's,
        would fault km). The new backing is made first: a failure leaves the old mapping in place."""
        end = start + page_up(size)
        fd = file.fd if host_fd is None else host_fd
        assert fd is not None, "map_file needs a descriptor (KeptFiles.of_fd keeps one or host_fd is given)"
        common: dict[str, Any] = dict(file=file, shared=shared, accounted=not shared and bool(prot & PROT_WRITE),
                      locked=self.mlock_future)
        with self.lock:
            copy = image and not shared and file.fd is not None and file.is_regular and end - start <= COPY_LIMIT
            copied = _copied_part(start, end, offset, file) if copy else 0
            if copy and copied in (0, end - start) and self._reuse_image(start, end, prot, file, offset, not copied):
                return
            vmas: list[Vma] = []
            try:
                if copied:
                    vmas.append(self._copy(Vma(start, start + copied, prot, None, file.path, offset, **common)))
                if start + copied < end:
                    vmas += self._window(start + copied, end, prot, file, offset + copied, fd, common)
            except BaseException:
                self._release_backings(vmas)
                raise
            self.unmap(start, end - start)
            for vma in vmas:
                if prot != abi.PROT_NONE:
                    self.tables.set_range(vma.start, vma.end - vma.start, vma.gpa, pte_flags(prot))
                self._insert(vma)
            self.on_remap(start, end)

    def _copy(self, vma: Vma) -> Vma:
        """Back `vma` with a copy of its file's bytes (zeros past the end of the file)."""
        gpa = self._alloc(vma)
        try:
            assert vma.file is not None, "a file mapping"
            vma.file.read_into(self.phys.view(gpa, vma.end - vma.start), vma.offset)
        except BaseException:
            self.phys.release(gpa, vma.end - vma.start)
            raise
        return vma

    def _window(self, start: int, end: int, prot: int, file: MappedFile, offset: int, fd: int,
                common: dict[str, Any]) -> list[Vma]:
        """VMAs for the host's own mapping of the file over [start, end): the file's pages, then zero pages past
        its end."""
        file_size = os.fstat(fd).st_size if file.is_regular else end - start
        in_file = min(end - start, max(0, page_up(file_size) - offset))
        # shared over an O_RDONLY descriptor can never write: the host maps it private (it still sees the file
        # change until km itself writes a page, which only the debugger does)
        host_shared = common["shared"] and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDWR
        vmas = []
        if in_file:
            vma = Vma(start, start + in_file, prot, None, file.path, offset, **common)
            vma.gpa = self.phys.map_file(fd, offset, in_file, host_shared)
            vmas.append(vma)
        if start + in_file < end:
            tail = Vma(start + in_file, end, prot, None, file.path, offset + in_file, **common)
            try:
                self._alloc(tail)
            except BaseException:
                self._release_backings(vmas)
                raise
            vmas.append(tail)
        return vmas

    def _release_backings(self, vmas: list[Vma]) -> None:
        """Give back the memory of VMAs made but never inserted (a mapping that failed half-way)."""
        for vma in vmas:
            if vma.gpa is not None:
                self.phys.release(vma.gpa, vma.end - vma.start)

    def _reuse_image(self, start: int, end: int, prot: int, file: MappedFile, offset: int, window: bool) -> bool:
        """A program image mapped over the same bytes of the same file, backed the way the new mapping would be
        (a copy, or the file's mapping when `window`) and never writable (ld.so maps a library whole, then each
        segment MAP_FIXED over it): the backing is kept and only its rights change, as a fresh one would hold the
        same bytes (the host's private mapping of the file, never written, still shows the file). False (nothing
        changed but VMA boundaries) otherwise."""
        if prot == abi.PROT_NONE:
            return False
        copies: list[Vma] = []
        at = start
        for vma in self._range(start, end):
            if (vma.start != at or vma.gpa is None or vma.file is None or vma.shared or vma.accounted
                    or self.phys.is_file(vma.gpa) != window or vma.offset - vma.start != offset - start
                    or (vma.file.dev, vma.file.inode) != (file.dev, file.inode)):
                return False
            copies.append(vma)
            at = vma.end
        if at != end:
            return False
        for vma in copies:
            old, vma.prot, vma.file, vma.path = vma.prot, prot, file, file.path
            vma.accounted, vma.locked = bool(prot & PROT_WRITE), self.mlock_future
            self._apply_rights(vma, old)
        self.generation += 1
        self.on_remap(start, end)
        return True

    def discard(self, start: int, end: int) -> None:
        """MADV_DONTNEED: private anonymous pages read back as zeros, private file pages as the file again,
        shared pages stay as they are; the host memory goes back and KVM forgets the frames."""
        with self.lock:
            for vma in self.vmas[max(0, bisect.bisect(self._starts, start) - 1):]:
                if vma.start >= end:
                    break
                lo, hi = max(start, vma.start), min(end, vma.end)
                if vma.gpa is None or lo >= hi:
                    continue
                gpa = vma.gpa + lo - vma.start
                if vma.shared and not self.phys.is_file(gpa):
                    continue
                self.phys.drop(gpa, hi - lo)
                if vma.file is not None and vma.file.fd is not None and not self.phys.is_file(gpa):
                    vma.file.read_into(self.phys.view(gpa, hi - lo), vma.offset + lo - vma.start)

    def map_foreign(self, start: int, size: int, prot: int, gpa: int, name: str) -> Vma:
        """A VMA over GPA km does not own (the host's vvar): mapped for the guest, invisible to km's reads."""
        with self.lock:
            vma = Vma(start, start + page_up(size), prot, None, "", 0, name, foreign=gpa)
            self.tables.set_range(start, vma.end - start, gpa, pte_flags(prot))
            self._insert(vma)
            return vma

    def _back(self, vma: Vma) -> None:
        self._alloc(vma)
        self.tables.set_range(vma.start, vma.end - vma.start, vma.gpa, pte_flags(vma.prot))

    def _alloc(self, vma: Vma) -> int:
        """Guest-physical memory for the VMA, its GPA returned (MemoryError past phys_memory.commit_limit)."""
        size = vma.end - vma.start
        align = HUGE if size >= HUGE else PAGE       # in phase with the GVA modulo 2M: 2M pages line up
        vma.gpa = gpa = self.phys.alloc(size, align, vma.start % align)
        if not vma.huge:
            self.phys.no_huge_pages(gpa, size)
        return gpa

    def unmap(self, start: int, size: int) -> None:
        """The VMAs of [start, start+size) go; their backings are given back in runs that are contiguous on the
        host (release is a madvise or an mmap, each a KVM MMU-notifier round, ~10-20 us here: an exec's unmap of
        the old image made ~20, neighbours in guest-physical memory as they were allocated one after another)."""
        with self.lock:
            end = start + page_up(size)
            gone: list[tuple[int, int]] = []
            for vma in self._range(start, end):
                i = bisect.bisect_left(self._starts, vma.start)
                del self.vmas[i], self._starts[i]
                self.generation += 1
                if vma.gpa is not None:
                    self.tables.set_range(vma.start, vma.end - vma.start, None)
                    gone.append((vma.gpa, vma.end - vma.start))
                elif vma.foreign is not None:
                    self.tables.set_range(vma.start, vma.end - vma.start, None)
            if len(gone) == 1:
                self.phys.release(*gone[0])
            elif gone:
                self._release_runs(gone)

    def _release_runs(self, ranges: list[tuple[int, int]]) -> None:
        """phys.release of each (gpa, size), neighbours merged while they lie in one chunk (one host mapping:
        contiguous on the host, all allocator memory or all one file window)."""
        ranges.sort()
        phys = self.phys
        run_gpa, run_size = ranges[0]
        chunk = phys.chunk_of(run_gpa)
        for gpa, size in ranges[1:]:
            if gpa == run_gpa + run_size and gpa + size <= chunk.gpa + chunk.size:
                run_size += size
                continue
            phys.release(run_gpa, run_size)
            run_gpa, run_size = gpa, size
            chunk = phys.chunk_of(gpa)
        phys.release(run_gpa, run_size)

    def move(self, src: int, size: int, dst: int) -> None:
        """mremap's move: the VMAs of [src, src+size) go to dst with their backing (no copy); whatever was at dst
        is unmapped first. KVM's translations of the moved frames are dropped, so the old addresses fault."""
        with self.lock:
            moving = self._range(src, src + size)
            self.unmap(dst, size)
            for vma in moving:
                i = bisect.bisect_left(self._starts, vma.start)
                del self.vmas[i], self._starts[i]
                length = vma.end - vma.start
                if vma.gpa is not None:
                    self.tables.set_range(vma.start, length, None)
                    self.phys.invalidate(vma.gpa, length)
                vma.start, vma.end = vma.start - src + dst, vma.end - src + dst
                if vma.gpa is not None and vma.prot != abi.PROT_NONE:
                    self.tables.set_range(vma.start, length, vma.gpa, pte_flags(vma.prot))
                self._insert(vma)
            self.on_remap(src, src + size)
            self.on_remap(dst, dst + size)

    def protect(self, start: int, size: int, prot: int) -> None:
        """mprotect: GuestFault if part of the range is unmapped (the caller answers ENOMEM)."""
        with self.lock:
            end = start + page_up(size)
            self._check_mapped(start, end)
            for vma in self._range(start, end):
                old, vma.prot = vma.prot, prot
                vma.accounted |= not vma.shared and bool(prot & PROT_WRITE)
                if vma.foreign is not None:
                    self.tables.set_range(vma.start, vma.end - vma.start,
                                          None if prot == abi.PROT_NONE else vma.foreign, pte_flags(prot))
                    continue
                if vma.gpa is None:
                    if prot != abi.PROT_NONE:
                        try:
                            self._back(vma)
                        except MemoryError:      # more than the host could ever commit: ENOMEM, rights unchanged
                            vma.prot = old
                            raise
                    continue
                self._apply_rights(vma, old)
            self.on_remap(start, end)

    def _apply_rights(self, vma: Vma, old: int) -> None:
        """A backed VMA's page-table entries for its rights now (vma.prot; none for PROT_NONE), and KVM told to
        forget its frames when a right of `old` was dropped (mprotect, and an image mapped again over itself)."""
        prot, size = vma.prot, vma.end - vma.start
        assert vma.gpa is not None, "only a backed VMA has entries"
        self.tables.set_range(vma.start, size, None if prot == abi.PROT_NONE else vma.gpa, pte_flags(prot))
        if (old & ~prot) or prot == abi.PROT_NONE:
            self.phys.invalidate(vma.gpa, size)

    def _check_mapped(self, start: int, end: int) -> None:
        addr = start
        while addr < end:
            vma = self.find(addr)
            if vma is None:
                raise GuestFault(addr, end - addr)
            addr = vma.end

    def find_free(self, size: int, hint: int = 0, top: int = MMAP_TOP) -> int | None:
        """Where mmap without MAP_FIXED puts `size` bytes: at the hint if free, else the highest gap below top."""
        size = page_up(size)
        if hint and hint + size <= USER_TOP and self._is_free(page_down(hint), size):
            return page_down(hint)
        end = top
        for vma in reversed(self.vmas):
            if vma.start >= end:
                continue
            if vma.end <= end - size:
                return end - size
            end = min(end, vma.start)
        return end - size if end - size >= MMAP_BOTTOM else None

    def _is_free(self, start: int, size: int) -> bool:
        i = bisect.bisect_left(self._starts, start + size)
        return i == 0 or self.vmas[i - 1].end <= start

    def regions(self) -> list[Vma]:
        with self.lock:
            return [v.replace() for v in self.vmas]

    def mappings(self, reserved: bool = True) -> list[MemoryRegion]:
        """The VMAs as Linux would keep them, for /proc/self/maps, gdb and NT_FILE: km splits VMAs by their
        backing, Linux merges neighbours whose flags, file and offsets agree (mm/mmap.c vma_merge; VM_ACCOUNT
        keeps a once-writable private mapping apart, e.g. RELRO from .rodata). `reserved`: with PROT_NONE
        reservations that own no memory (Linux lists them; a core file has nothing of them)."""
        out: list[MemoryRegion] = []
        last: Vma | None = None
        with self.lock:
            for v in self.vmas:
                if not (reserved or v.gpa is not None or v.prot):
                    continue
                if last is not None and _mergeable(last, v) and out[-1].end == v.start:
                    out[-1] = out[-1]._replace(end=v.end)
                else:
                    out.append(MemoryRegion(v.start, v.end, v.perms(), v.offset if v.file else 0, v.path or v.name,
                                            v.shared, v.file.dev if v.file else 0, v.file.inode if v.file else 0))
                last = v
        return out


def _mergeable(prev: Vma, vma: Vma) -> bool:
    """Whether Linux would hold `vma` and its neighbour `prev` as one VMA."""
    if (prev.prot, prev.shared, prev.accounted, prev.path, prev.name) != \
            (vma.prot, vma.shared, vma.accounted, vma.path, vma.name):
        return False
    if prev.file is None or vma.file is None:
        return prev.file is vma.file
    return (prev.file.dev, prev.file.inode) == (vma.file.dev, vma.file.inode) and \
        prev.offset + prev.end - prev.start == vma.offset


def _copied_part(start: int, end: int, offset: int, file: MappedFile) -> int:
    """How much of a program image mapped at [start, end) from `offset` of `file` is a copy, from its start on
    (the rest is the host's mapping of the file): all of it when it holds a whole 2M page or is small, else the
    ELF's leading metadata (headers, symbols, relocations: what ld.so reads when it links the program)."""
    if end - start <= SMALL_IMAGE or (start + HUGE - 1) // HUGE * HUGE + HUGE <= end:
        return end - start
    if offset == 0:
        return min(end - start, file.metadata_end())
    return 0


def _allows(prot: int, write: bool) -> bool:
    return bool(prot & PROT_WRITE) if write else bool(prot & (PROT_READ | PROT_WRITE | PROT_EXEC))
