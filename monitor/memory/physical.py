"""Guest-physical memory: host mmap'ed chunks registered as KVM memslots, and a first-fit allocator of GPA ranges.

Chunks are reserved MAP_NORESERVE, so the host commits only what the guest touches; a chunk per 256 MiB (or per
larger request) keeps KVM's per-slot metadata small (shadow paging allocates rmaps per page of a slot). Freed
ranges are madvise(MADV_DONTNEED)'d: that returns the memory, gives zero pages on reuse, and makes KVM drop its
stale translations of those frames (docs/KVM.md section 6).

Files the host maps for the guest (shared mappings, private ones that are not program images) live in *file
windows*: ranges of GPA reserved PROT_NONE on the host and registered once as a memslot, into which each file
mapping is mmap'ed MAP_FIXED. Mapping or unmapping a file is then host mmap calls and no memslot change:
KVM_SET_USER_MEMORY_REGION costs 18-110 us and slots are limited (32764), while a dynamic program maps files
hundreds of times and CPython's test suite thousands. Replacing the host mapping under a memslot is seen by KVM
through its MMU notifier, so the old frames are dropped.
"""
from __future__ import annotations

import _thread
import bisect
import functools
import threading
from typing import Callable
from ..record import Record

from kdbg.arch.linux import PAGE_SIZE as PAGE

from ..errors import MonitorError
from ..kvm import abi
from ..kvm.abi import ffi, libc

HUGE = 0x200000
CHUNK = 256 << 20
MADV_REMOVE, MADV_HUGEPAGE, MADV_NOHUGEPAGE = 9, 14, 15     # linux/mman.h
PHYS_LIMIT = 1 << 46        # below every x86-64 CPU's physical-address width that KVM hosts have in practice
FILE_BASE = PHYS_LIMIT // 2  # file windows get GPA from here up; the allocator stays below
WINDOW = 256 << 20           # a file window's size (or a larger mapping's own); rmaps cost as for CHUNK
# A forked km registers this much of a file window beyond its used part: a child that execs maps the new program's
# files at once (/bin/true, ld.so and libc: 2.3 MB), and a slot added then, after its vCPU ran, took 0.15-3 ms
# (busybox sh's loop) where 16 MiB more at the fork cost KVM ~0.03 ms of rmaps
FILE_HEADROOM = 16 << 20


@functools.cache
def commit_limit() -> int:
    """The largest single mapping km backs: the host's RAM + swap, the bound Linux's default (heuristic) overcommit
    puts on one private writable mapping (mm/util.c __vm_enough_memory). km applies it to every mapping it backs,
    since each becomes a KVM memslot whose metadata grows with its size (a 1 TiB one took 16 s and 2 GiB)."""
    total = 0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(("MemTotal:", "SwapTotal:")):
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return total or 1 << 40


class Chunk(Record):
    def __init__(self, gpa: int, size: int, host_addr: int, view: memoryview, is_file: bool = False) -> None:
        self.gpa = gpa
        self.size = size
        self.host_addr = host_addr
        self.view = view
        self.is_file = is_file          # a file window (map_file), not the allocator's memory
        self.registered = size          # bytes from gpa that the VM has memslots for (less in a forked km)


def _register_in_background(vm, slots: list[tuple[int, int, int, bool]]) -> Callable[[], None]:
    """Register memslots (gpa, size, host address, read-only) on a thread of their own: KVM sleeps through an SRCU
    grace period after each. Returns the wait for that thread, which raises what registering raised.

    A bare _thread, not threading.Thread: Thread.start() sleeps until the new thread has run, a hand-off that costs
    the forked km a scheduler slice (~3 ms) whenever the machine is loaded; `done` is released when it ends."""
    failed: list[BaseException] = []
    done = _thread.allocate_lock()
    done.acquire()

    def register() -> None:
        try:
            for gpa, size, host_addr, readonly in slots:
                vm.add_memory(gpa, size, host_addr, readonly=readonly)
        except BaseException as e:
            failed.append(e)
        finally:
            done.release()
    _thread.start_new_thread(register, ())

    def wait() -> None:
        done.acquire()
        done.release()          # a second wait returns at once
        if failed:
            raise failed[0]
    return wait


class PhysicalMemory:
    def __init__(self, vm) -> None:
        self.vm = vm
        self.chunks: list[Chunk] = []
        self._starts: list[int] = []
        self.free: list[tuple[int, int]] = []   # sorted, disjoint [start, end)
        self.top = 0
        self.lock = threading.Lock()
        self.allocated = 0
        self.file_top = FILE_BASE
        self.file_free: list[tuple[int, int]] = []      # free ranges of the file windows
        self.foreign: list[tuple[int, int, int]] = []
        self._spare_window_ready: Callable[[], None] | None = None     # prepare_window's, still registering
        self._partial = False       # some chunk's memslot covers only part of it (rebind, prepare_window): _cover

    def _grow(self, size: int) -> None:
        size = max(CHUNK, (size + HUGE - 1) // HUGE * HUGE)
        if self.top + size > FILE_BASE:
            raise MemoryError("guest physical memory exhausted")
        host = self._reserve(size, abi.PROT_READ | abi.PROT_WRITE)
        # 2M-aligned on the host as in the guest, and THP-eligible: a guest 2M page is then one host huge page
        # and KVM maps it with one fault instead of 512 (each ~75 us on kvm-pvm)
        ptr = ffi.cast("void *", host)
        libc.madvise(ptr, size, MADV_HUGEPAGE)
        try:
            self.vm.add_memory(self.top, size, host)
        except MonitorError as e:        # KVM refused the slot (beyond the host's physical-address width...)
            libc.munmap(ptr, size)
            raise MemoryError(str(e)) from e
        self._add_chunk(Chunk(self.top, size, host, memoryview(ffi.buffer(ptr, size))))
        self._release(self.top, self.top + size)
        self.top += size

    @staticmethod
    def _reserve(size: int, prot: int) -> int:
        """A 2M-aligned host range of `size` bytes, committed only when touched."""
        raw = libc.mmap(ffi.NULL, size + HUGE, prot, abi.MAP_PRIVATE | abi.MAP_ANONYMOUS | abi.MAP_NORESERVE, -1, 0)
        raw_addr = int(ffi.cast("uintptr_t", raw))
        if raw_addr == 2**64 - 1:
            raise MonitorError("guest memory", f"cannot reserve {size >> 20} MiB of host memory")
        host = (raw_addr + HUGE - 1) & ~(HUGE - 1)
        if host > raw_addr:
            libc.munmap(raw, host - raw_addr)
        libc.munmap(ffi.cast("void *", host + size), raw_addr + HUGE - host)
        return host

    def _add_chunk(self, chunk: Chunk) -> None:
        i = bisect.bisect(self._starts, chunk.gpa)
        self.chunks.insert(i, chunk)
        self._starts.insert(i, chunk.gpa)

    def map_file(self, fd: int, offset: int, size: int, shared: bool) -> int:
        """GPA of `size` bytes of a file mapped by the host into a file window (shared: the guest's writes reach
        the file; private: copy-on-write, pages read lazily). A shared `fd` must be open O_RDWR."""
        with self.lock:
            gpa = self._window_alloc(size)
        flags = (abi.MAP_SHARED if shared else abi.MAP_PRIVATE) | abi.MAP_FIXED
        ptr = libc.mmap(ffi.cast("void *", self.host_addr(gpa)), size, abi.PROT_READ | abi.PROT_WRITE, flags, fd,
                        offset)
        if int(ffi.cast("uintptr_t", ptr)) == 2**64 - 1:
            error = ffi.errno
            self._window_release(gpa, size)
            raise OSError(error, "mmap of a file")
        return gpa

    def _window_alloc(self, size: int) -> int:
        """GPA for a file mapping inside one window (free ranges of adjacent windows merge, but each window is its
        own host reservation and memslot: a mapping across two overran the first's host range, and the guest's
        access to the second part failed KVM_RUN with EFAULT)."""
        if self._spare_window_ready is not None:
            self._spare_window_ready()
        for i, (start, end) in enumerate(self.file_free):
            gpa = self._fit(start, end, size, PAGE, 0) if end - start >= size else None
            if gpa is not None:
                self._cover(gpa, size)
                del self.file_free[i]
                if start < gpa:
                    self._free_insert(self.file_free, start, gpa)
                if gpa + size < end:
                    self._free_insert(self.file_free, gpa + size, end)
                return gpa
        window = max(WINDOW, (size + HUGE - 1) // HUGE * HUGE)
        if window > commit_limit() or self.file_top + window > PHYS_LIMIT:
            raise MemoryError(f"{size} bytes of file mapping: more than km can map")
        host = self._reserve(window, abi.PROT_NONE)
        try:
            self.vm.add_memory(self.file_top, window, host)
        except MonitorError as e:        # KVM refused the slot (beyond the host's physical-address width...)
            libc.munmap(ffi.cast("void *", host), window)
            raise MemoryError(str(e)) from e
        gpa = self.file_top
        self._add_chunk(Chunk(gpa, window, host, memoryview(ffi.buffer(ffi.cast("void *", host), window)),
                              is_file=True))
        self.file_top += window
        if window > size:
            self._free_insert(self.file_free, gpa + size, gpa + window)
        return gpa

    def _window_release(self, gpa: int, size: int) -> None:
        """Replace the file's host pages by an inaccessible reservation (KVM's MMU notifier drops the frames)."""
        libc.mmap(ffi.cast("void *", self.host_addr(gpa)), size, abi.PROT_NONE,
                  abi.MAP_PRIVATE | abi.MAP_ANONYMOUS | abi.MAP_NORESERVE | abi.MAP_FIXED, -1, 0)
        with self.lock:
            self._free_insert(self.file_free, gpa, gpa + size)

    @staticmethod
    def _free_insert(free: list[tuple[int, int]], start: int, end: int) -> None:
        """Add [start, end) to a sorted, disjoint free list, merging with its neighbours."""
        i = bisect.bisect(free, (start, end))
        if i > 0 and free[i - 1][1] == start:
            start = free.pop(i - 1)[0]
            i -= 1
        if i < len(free) and free[i][0] == end:
            end = free.pop(i)[1]
        free.insert(i, (start, end))

    def add_foreign(self, host_addr: int, size: int) -> int:
        """Back a GPA range with existing host memory, read-only for the guest (the host's [vvar]); never
        read by km (some of those pages fault for anyone but the vDSO code)."""
        with self.lock:
            gpa = self.top
            self.vm.add_memory(gpa, size, host_addr, readonly=True)
            self.foreign.append((gpa, size, host_addr))
            self.top += (size + HUGE - 1) // HUGE * HUGE
            return gpa

    def rebind(self, vm) -> Callable[[], None]:
        """A forked km's new VM: the same GPA layout over this process's (copy-on-write) host memory. A chunk's
        memslot covers only its part up to its last allocated 2M page; the rest gets a slot of its own when first
        allocated (_cover). On kvm-pvm a slot costs KVM an rmap entry per 4K page, allocated and zeroed at once:
        256 MiB took 166 us to register against 35 us for 16 MiB, and a forked child seldom grows.

        The slots are registered on a thread of their own: KVM waits for an SRCU grace period after each one,
        asleep until a kworker runs (20-60 us on an idle machine, 1-5 ms, up to 18, on a loaded one), while the
        forked km has about a millisecond of its own work left before its vCPU first runs. Returns the wait for
        that thread, to be called before then (it raises what registering raised); nothing may allocate guest
        memory until it returns."""
        self.vm = vm
        self.lock = threading.Lock()
        self._spare_window_ready = None         # a window the parent was registering is the child's to register
        self._partial = True
        slots: list[tuple[int, int, int, bool]] = []
        for chunk in self.chunks:
            chunk.registered = self._used_part(chunk)
            if chunk.registered:
                slots.append((chunk.gpa, chunk.registered, chunk.host_addr, False))
        slots += [(gpa, size, host_addr, True) for gpa, size, host_addr in self.foreign]
        return _register_in_background(vm, slots)

    def prepare_window(self) -> None:
        """An exec is about to map its program's files: when there is no file window yet (a static program's
        process, as busybox sh's forked child), make one now and register its slot (FILE_HEADROOM long, _cover
        adds the rest) on a thread of its own, which _window_alloc waits for. The SRCU grace period KVM sleeps
        through after a slot (0.2-10 ms of wall time by the machine's load) then overlaps the exec's own work
        before its first file mapping instead of adding to it. Not done at the fork: a child that never execs
        would wait for that thread at its exit (a thread in KVM's grace period cannot be killed until it ends)."""
        with self.lock:
            if self._spare_window_ready is not None or any(chunk.is_file for chunk in self.chunks):
                return
            spare = self._spare_window()
        registered = _register_in_background(self.vm, [(spare.gpa, spare.registered, spare.host_addr, False)])

        def wait() -> None:
            try:
                registered()
            except BaseException as e:
                raise MemoryError(f"file window: {e}") from None
            finally:
                self._spare_window_ready = None
        self._spare_window_ready = wait

    def _spare_window(self) -> Chunk:
        """prepare_window's window: reserved on the host and free, its slot not registered yet."""
        host = self._reserve(WINDOW, abi.PROT_NONE)
        chunk = Chunk(self.file_top, WINDOW, host, memoryview(ffi.buffer(ffi.cast("void *", host), WINDOW)),
                      is_file=True)
        chunk.registered = FILE_HEADROOM
        self._partial = True
        self._add_chunk(chunk)
        self._free_insert(self.file_free, self.file_top, self.file_top + WINDOW)
        self.file_top += WINDOW
        return chunk

    def _used_part(self, chunk: Chunk) -> int:
        """Bytes from the chunk's start up to its last allocated byte, in whole 2M pages (the chunk's free tail,
        which a free range merged across chunks may extend, is left out); a file window's with FILE_HEADROOM more,
        for the files of a program the child execs."""
        free = self.file_free if chunk.is_file else self.free
        end = chunk.gpa + chunk.size
        i = bisect.bisect(free, (end - 1, end + 1)) - 1       # the free range holding the chunk's last byte
        if i < 0 or not free[i][0] <= end - 1 < free[i][1]:
            return chunk.size
        used = max(0, free[i][0] - chunk.gpa) + (FILE_HEADROOM if chunk.is_file else 0)
        return min(chunk.size, (used + HUGE - 1) // HUGE * HUGE)

    def _cover(self, gpa: int, size: int) -> None:
        """A memslot for a freshly allocated range past what its chunk has registered (only in a forked km):
        one slot for the whole rest of the chunk. A km whose slots all cover their chunks skips the lookup."""
        if not self._partial:
            return
        chunk = self.chunk_of(gpa)
        if gpa + size <= chunk.gpa + chunk.registered:
            return
        self.vm.add_memory(chunk.gpa + chunk.registered, chunk.size - chunk.registered,
                           chunk.host_addr + chunk.registered)
        chunk.registered = chunk.size

    def _release(self, start: int, end: int) -> None:
        self._free_insert(self.free, start, end)

    def alloc(self, size: int, align: int = PAGE, phase: int = 0) -> int:
        """A GPA range of `size` bytes with gpa % align == phase (so that 2M pages line up with the GVA);
        MemoryError (the payload's ENOMEM) past commit_limit()."""
        if size > commit_limit():
            raise MemoryError(f"{size} bytes: more than the host's memory")
        with self.lock:
            for attempt in range(2):
                for i, (start, end) in enumerate(self.free):
                    gpa = self._fit(start, end, size, align, phase)
                    if gpa is not None:
                        self._cover(gpa, size)
                        del self.free[i]
                        if start < gpa:
                            self._release(start, gpa)
                        if gpa + size < end:
                            self._release(gpa + size, end)
                        self.allocated += size
                        return gpa
                self._grow(size + align)
        raise MemoryError("guest physical memory fragmented")

    def _fit(self, start: int, end: int, size: int, align: int, phase: int) -> int | None:
        """The lowest gpa in the free range [start, end) that fits within one chunk (free ranges of adjacent chunks
        merge, but a memslot, hence a host buffer, ends at its chunk's end)."""
        while start < end:
            gpa = start + ((phase - start) % align)
            if gpa + size > end:
                return None
            if self._same_chunk(gpa, size):
                return gpa
            chunk = self.chunk_of(gpa)
            start = chunk.gpa + chunk.size
        return None

    def _same_chunk(self, gpa: int, size: int) -> bool:
        chunk = self.chunks[bisect.bisect(self._starts, gpa) - 1]
        return gpa + size <= chunk.gpa + chunk.size

    def release(self, gpa: int, size: int) -> None:
        """Give a range back: its contents are dropped (zero on reuse) and KVM forgets the frames. A file range's
        host mapping is replaced by a reservation and its GPA reused for a later file mapping."""
        if self.chunk_of(gpa).is_file:
            self._window_release(gpa, size)
            return
        libc.madvise(ffi.cast("void *", self.host_addr(gpa)), size, abi.MADV_DONTNEED)
        with self.lock:
            self._release(gpa, gpa + size)
            self.allocated -= size

    def no_huge_pages(self, gpa: int, size: int) -> None:
        """Back this range with 4K host pages: for memory touched sparsely, like thread stacks (one touched byte
        would otherwise cost a 2M page; Linux likewise gives MAP_STACK mappings no huge pages)."""
        libc.madvise(ffi.cast("void *", self.host_addr(gpa)), size, MADV_NOHUGEPAGE)

    def is_file(self, gpa: int) -> bool:
        """Whether gpa lies in a file window (the host maps a file there) rather than in the allocator's memory."""
        return gpa >= FILE_BASE

    def drop(self, gpa: int, size: int) -> None:
        """MADV_DONTNEED on the backing: anonymous memory reads back as zeros, a private file mapping as the file
        again, a shared one unchanged; the memory goes back to the host and KVM forgets the frames."""
        libc.madvise(ffi.cast("void *", self.host_addr(gpa)), size, abi.MADV_DONTNEED)

    def remove(self, gpa: int, size: int) -> None:
        """MADV_REMOVE on a shared file mapping's backing: the host punches the hole in the file."""
        if libc.madvise(ffi.cast("void *", self.host_addr(gpa)), size, MADV_REMOVE):
            raise OSError(ffi.errno, "madvise(MADV_REMOVE)")

    def invalidate(self, gpa: int, size: int) -> None:
        """Make KVM drop its translations of these frames, keeping their contents (docs/KVM.md 6: a host-side PTE
        downgrade is otherwise not seen by the guest)."""
        ptr = ffi.cast("void *", self.host_addr(gpa))
        libc.mprotect(ptr, size, abi.PROT_READ)
        libc.mprotect(ptr, size, abi.PROT_READ | abi.PROT_WRITE)

    def chunk_of(self, gpa: int) -> Chunk:
        return self.chunks[bisect.bisect(self._starts, gpa) - 1]

    def host_addr(self, gpa: int) -> int:
        chunk = self.chunk_of(gpa)
        return chunk.host_addr + gpa - chunk.gpa

    def view(self, gpa: int, size: int) -> memoryview:
        chunk = self.chunk_of(gpa)
        off = gpa - chunk.gpa
        return chunk.view[off:off + size]
