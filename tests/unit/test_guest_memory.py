"""GuestMemory: VMAs like Linux's over real PhysicalMemory and PageTables (no KVM): mapping, splitting, rights,
PROT_NONE reservations that cost nothing, checked access (GuestFault), debugger access, and where mmap puts things."""
from __future__ import annotations

import errno
import struct

import pytest

from monitor.errors import GuestFault
from monitor.memory.guest import MMAP_BOTTOM, MMAP_TOP, PROT_EXEC, PROT_READ, PROT_WRITE, GuestMemory
from monitor.memory.page_tables import PTE_NX, PTE_W, PageTables
from monitor.memory.physical import PAGE, PhysicalMemory

from .test_page_tables import SlotRecorder

RW = PROT_READ | PROT_WRITE


@pytest.fixture
def mem() -> GuestMemory:
    phys = PhysicalMemory(SlotRecorder())
    return GuestMemory(phys, PageTables(phys))


def data_bytes(mem: GuestMemory) -> int:
    """Guest-physical bytes backing VMAs (page-table pages come from the same allocator)."""
    return mem.phys.allocated - PAGE * len(mem.tables.tables)


def layout(mem: GuestMemory) -> list[tuple[int, int, str]]:
    return [(v.start, v.end, v.perms()) for v in mem.regions()]


def test_map_write_read_and_translate(mem):
    mem.map(0x400000, 3 * PAGE, RW)
    mem.write(0x400000 + PAGE - 2, b"abcd")                # across a page boundary
    assert mem.read(0x400000 + PAGE - 2, 4) == b"abcd"
    assert mem.read(0x400000 + 2 * PAGE, 4) == bytes(4)     # fresh memory is zero
    gpa, flags = mem.tables.translate(0x400000 + PAGE)
    assert flags & PTE_W and flags & PTE_NX
    assert mem.phys.view(gpa - 2, 4).tobytes() == b"abcd"              # what the guest sees through its tables
    assert mem.host_addr(0x400000, 3 * PAGE, write=True) == mem.phys.host_addr(mem.find(0x400000).gpa)


def test_access_checks_raise_guest_fault(mem):
    mem.map(0x400000, PAGE, PROT_READ)
    mem.map(0x500000, PAGE, PROT_READ | PROT_EXEC)
    assert mem.read(0x400000, 8) == bytes(8)
    with pytest.raises(GuestFault) as fault:
        mem.write(0x400000, b"x")
    assert fault.value.gva == 0x400000
    with pytest.raises(GuestFault):
        mem.read(0x401000, 1)                                 # just past the VMA
    with pytest.raises(GuestFault):
        mem.read(0x400FF0, 0x20)                              # straddles the end
    with pytest.raises(GuestFault):
        mem.host_addr(0x500000, 8, write=True)
    assert mem.host_addr(0x500000, 8) != 0
    assert mem.host_addr(0x123, 0) == 0                       # empty buffers are never checked


def test_prot_none_reservation_costs_nothing_until_given_rights(mem):
    before = data_bytes(mem)
    base = 0xC000000000
    mem.map(base, 64 << 30, 0)
    assert data_bytes(mem) == before
    assert mem.find(base + (10 << 30)).gpa is None
    with pytest.raises(GuestFault):
        mem.read(base, 1)
    mem.protect(base + (8 << 20), 1 << 20, RW)
    mem.write(base + (8 << 20), b"go")
    assert mem.read(base + (8 << 20), 2) == b"go"
    assert data_bytes(mem) == before + (1 << 20)
    assert layout(mem) == [(base, base + (8 << 20), "---"), (base + (8 << 20), base + (9 << 20), "rw-"),
                           (base + (9 << 20), base + (64 << 30), "---")]
    mem.map(base + (32 << 30), 2 << 20, RW)                  # MAP_FIXED inside the reservation
    assert data_bytes(mem) == before + (3 << 20)
    mem.unmap(base, 64 << 30)
    assert mem.regions() == [] and data_bytes(mem) == before


def test_protect_splits_and_keeps_contents(mem):
    mem.map(0x10000000, 4 * PAGE, RW)
    mem.write(0x10000000, b"A" * 4 * PAGE)
    mem.protect(0x10000000 + PAGE, PAGE, PROT_READ)
    mem.protect(0x10000000 + 2 * PAGE, PAGE, 0)
    assert layout(mem) == [(0x10000000, 0x10001000, "rw-"), (0x10001000, 0x10002000, "r--"),
                           (0x10002000, 0x10003000, "---"), (0x10003000, 0x10004000, "rw-")]
    assert mem.tables.translate(0x10002000) is None                       # PROT_NONE: no translation
    assert not mem.tables.translate(0x10001000)[1] & PTE_W
    assert mem.read_debug(0x10002000, 2) == b"AA"                          # the debugger still sees it
    mem.protect(0x10000000, 4 * PAGE, RW)
    assert mem.read(0x10000000, 4 * PAGE) == b"A" * 4 * PAGE
    with pytest.raises(GuestFault):
        mem.protect(0x10000000, 8 * PAGE, PROT_READ)                        # runs past the mapping


def test_unmap_middle_and_map_over(mem):
    mem.map(0x20000000, 3 * PAGE, RW)
    mem.write(0x20000000, b"x" * 3 * PAGE)
    mem.unmap(0x20000000 + PAGE, PAGE)
    assert layout(mem) == [(0x20000000, 0x20001000, "rw-"), (0x20002000, 0x20003000, "rw-")]
    with pytest.raises(GuestFault):
        mem.read(0x20000000 + PAGE, 1)
    mem.map(0x20000000, 2 * PAGE, PROT_READ)                           # MAP_FIXED over the first page and the hole
    assert mem.read(0x20000000, 2 * PAGE) == bytes(2 * PAGE)
    assert mem.read(0x20002000, 1) == b"x"


def test_pieces_and_strings_across_vmas(mem):
    mem.map(0x30000000, PAGE, RW)
    mem.map(0x30001000, PAGE, PROT_READ)
    mem.write(0x30000000 + PAGE - 3, b"abc")
    mem.write_debug(0x30001000, b"def\0")
    assert mem.read_cstring(0x30000000 + PAGE - 3) == b"abcdef"
    pieces = mem.pieces(0x30000000 + PAGE - 3, 6)
    assert [length for _, length in pieces] == [3, 3]
    with pytest.raises(GuestFault):
        mem.pieces(0x30000000, 2 * PAGE, write=True)
    with pytest.raises(OSError) as too_long:
        mem.read_cstring(0x30000000 + PAGE - 3, limit=6)                  # 6 bytes + NUL do not fit in 6
    assert too_long.value.errno == errno.ENAMETOOLONG
    assert mem.read_cstring(0x30000000 + PAGE - 3, limit=7) == b"abcdef"
    assert mem.read_cstring(0x30000000 + PAGE - 3, limit=4, truncate=True) == b"abc"   # prctl(PR_SET_NAME) style
    mem.write_debug(0x30001000, b"x" * PAGE)                               # a string that runs off the mapping
    with pytest.raises(GuestFault):
        mem.read_cstring(0x30001000, limit=8192)


def test_string_array_as_execve_reads_argv(mem):
    """Pointers read a page at a time, strings each up to its limit; a bad pointer or array is a GuestFault."""
    mem.map(0x50000000, 2 * PAGE, RW)
    strings = [b"sh", b"-c", b"", b"x" * 300]
    at, pointers = 0x50001000, []
    for s in strings:
        mem.write(at, s + b"\0")
        pointers.append(at)
        at += len(s) + 1
    mem.write(0x50000100, struct.pack(f"<{len(pointers) + 1}Q", *pointers, 0))
    assert mem.read_string_array(0x50000100, 10, 4096) == strings
    assert mem.read_string_array(0x50000100, 2, 4096) == strings[:2]              # at most `count`
    assert mem.read_string_array(0, 10, 4096) == []                                # a NULL array: none
    mem.write(0x50000000 + 2 * PAGE - 24, struct.pack("<3Q", *pointers[:2], 0))
    assert mem.read_string_array(0x50000000 + 2 * PAGE - 24, 10, 4096) == strings[:2]  # ends with the mapping
    with pytest.raises(OSError):
        mem.read_string_array(0x50000100, 10, 300)                                 # a string longer than its limit
    with pytest.raises(GuestFault):
        mem.read_string_array(0x60000000, 10, 4096)                                # an array in no mapping
    mem.write(0x50000100, struct.pack("<2Q", 0x60000000, 0))
    with pytest.raises(GuestFault):
        mem.read_string_array(0x50000100, 10, 4096)                                # a pointer to nowhere


def test_string_array_stops_at_its_byte_total(mem):
    """execve's total: past it E2BIG, before the rest is read (a payload may point every entry at one 128 KiB
    string: km read them all, each a copy, before it could refuse)."""
    mem.map(0x50000000, 2 * PAGE, RW)
    mem.write(0x50001000, b"x" * 299 + b"\0")
    mem.write(0x50000100, struct.pack("<4Q", 0x50001000, 0x50001000, 0x60000000, 0))     # then a bad pointer
    with pytest.raises(OSError) as too_big:
        mem.read_string_array(0x50000100, 10, 4096, total=500)
    assert too_big.value.errno == errno.E2BIG
    assert mem.read_string_array(0x50000100, 2, 4096, total=600) == [b"x" * 299] * 2     # exactly the total


def test_write_debug_ignores_rights_but_not_holes(mem):
    mem.map(0x40000000, PAGE, PROT_READ | PROT_EXEC)
    mem.write_debug(0x40000000, b"\xcc")
    assert mem.read(0x40000000, 1) == b"\xcc"
    with pytest.raises(GuestFault):
        mem.write_debug(0x40001000, b"\xcc")


def test_find_free_is_top_down_and_honours_free_hints(mem):
    first = mem.find_free(PAGE)
    assert first == MMAP_TOP - PAGE
    mem.map(first, PAGE, RW)
    assert mem.find_free(2 * PAGE) == first - 2 * PAGE
    assert mem.find_free(PAGE, hint=0x200000000) == 0x200000000
    mem.map(0x200000000, PAGE, RW)
    assert mem.find_free(PAGE, hint=0x200000000) == first - PAGE           # taken: fall back
    assert mem.find_free(PAGE, hint=0x200000123) == first - PAGE
    mem.map(MMAP_BOTTOM, MMAP_TOP - MMAP_BOTTOM - 16 * PAGE, 0)             # fill everything but a small gap
    assert mem.find_free(32 * PAGE) is None


def _thp_eligible(host_addr: int) -> bool:
    """Whether the host mapping holding host_addr may get transparent huge pages (/proc/self/smaps)."""
    current = False
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(x, 16) for x in head.split("-"))
                current = lo <= host_addr < hi
            elif current and line.startswith("THPeligible:"):
                return line.split()[1] == "1"
    raise AssertionError(f"{host_addr:#x} not in smaps")


def test_sparse_memory_gets_no_huge_pages(mem):
    """Thread stacks (mmap MAP_STACK) touch a few bytes of 8 MiB: a 2M host page each would cost 2 MiB per thread."""
    stack = mem.map(0x50000000, 8 << 20, 0, huge=False)            # as glibc: PROT_NONE, then mprotect
    mem.protect(0x50000000 + PAGE, (8 << 20) - PAGE, RW)
    heap = mem.map(0x60000000, 8 << 20, RW)
    backed = mem.find(0x50000000 + PAGE)
    assert not backed.huge and stack.gpa is None
    assert not _thp_eligible(mem.phys.host_addr(backed.gpa))
    assert _thp_eligible(mem.phys.host_addr(heap.gpa)) or open("/sys/kernel/mm/transparent_hugepage/enabled").read()\
        .find("[never]") >= 0


def test_move_keeps_backing_and_contents(mem):
    mem.map(0x70000000, 2 * PAGE, RW)
    mem.map(0x70002000, PAGE, PROT_READ)
    mem.write(0x70000000, b"moved bytes")
    gpa = mem.find(0x70000000).gpa
    mem.map(0x71000000, PAGE, RW)                         # something at the target: replaced
    mem.move(0x70000000, 3 * PAGE, 0x71000000)
    assert layout(mem) == [(0x71000000, 0x71002000, "rw-"), (0x71002000, 0x71003000, "r--")]
    assert mem.find(0x71000000).gpa == gpa                # same frames, no copy
    assert mem.read(0x71000000, 11) == b"moved bytes"
    assert mem.tables.translate(0x70000000) is None and mem.tables.translate(0x71000000)[0] == gpa
    with pytest.raises(GuestFault):
        mem.read(0x70000000, 1)


def test_a_file_mapping_stays_inside_one_window(tmp_path):
    """Two released windows side by side merge in the free list, but a mapping must not span them: each is its own
    host reservation (test_mmap's 6 GiB file after a 2 GiB and a 4 GiB one failed KVM_RUN with EFAULT)."""
    from monitor.memory.physical import WINDOW
    phys = PhysicalMemory(SlotRecorder())
    path = tmp_path / "f"
    path.write_bytes(b"x" * PAGE)
    with open(path, "rb") as f:
        first = phys.map_file(f.fileno(), 0, WINDOW, False)
        second = phys.map_file(f.fileno(), 0, WINDOW + PAGE, False)     # a window of its own, right after
        phys.release(first, WINDOW)
        phys.release(second, WINDOW + PAGE)
        both = phys.map_file(f.fileno(), 0, WINDOW + PAGE, False)
    assert phys.chunk_of(both) is phys.chunk_of(both + WINDOW + PAGE - 1)


def test_program_images_are_copies_where_that_pays(mem, tmp_path):
    """A small image, or one holding a 2M page, is a copy; a large one (ld.so's whole-library mapping) is the
    host's mapping of the file but for its ELF metadata, which ld.so reads while linking; a plain private file
    mapping is never copied. Every way, the guest reads the file's bytes."""
    from monitor.memory.guest import SMALL_IMAGE
    from monitor.memory.mapped_file import MappedFile
    code = 0x30000
    header = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01", 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
    phdrs = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, code, code, PAGE) + \
        struct.pack("<IIQQQQQQ", 1, 5, code, code, code, 0x80000, 0x80000, PAGE)
    body = bytes(range(256)) * ((code + 0x80000) // 256)
    path = tmp_path / "lib.so"
    path.write_bytes(header + phdrs + body[len(header) + len(phdrs):])
    file = MappedFile.open(str(path))

    def copied(gva: int) -> bool:
        vma = mem.find(gva)
        return vma.gpa is not None and not mem.phys.is_file(vma.gpa)
    mem.map_file(0x10000000, SMALL_IMAGE, PROT_READ, file, 0, False, image=True)
    assert copied(0x10000000) and copied(0x10000000 + SMALL_IMAGE - 1)
    mem.map_file(0x20000000, code + 0x80000, PROT_READ, file, 0, False, image=True)
    assert copied(0x20000000 + code - 1) and not copied(0x20000000 + code)
    mem.map_file(0x40000000, SMALL_IMAGE, PROT_READ, file, 0, False)
    assert not copied(0x40000000)
    data = path.read_bytes()
    assert mem.read(0x20000000, code + 0x80000) == data[:code + 0x80000]
    assert mem.read(0x10000000, SMALL_IMAGE) == mem.read(0x40000000, SMALL_IMAGE) == data[:SMALL_IMAGE]
    assert [(r.start, r.end) for r in mem.mappings() if r.start == 0x20000000] == \
        [(0x20000000, 0x20000000 + code + 0x80000)]          # one mapping, as /proc/self/maps shows it
    window = mem.find(0x20000000 + code).gpa                  # ld.so's segment MAP_FIXED over the whole mapping:
    mem.map_file(0x20000000 + code, 0x80000, PROT_READ | PROT_EXEC, file, code, False, image=True)
    assert mem.find(0x20000000 + code).gpa == window          # the file's mapping kept, only its rights changed
    assert mem.find(0x20000000 + code).prot == PROT_READ | PROT_EXEC
    assert mem.read(0x20000000 + code, 0x80000) == data[code:code + 0x80000]
    mem.protect(0x20000000 + code, PAGE, RW)                  # once writable, its pages may be the payload's:
    mem.protect(0x20000000 + code, PAGE, PROT_READ)
    mem.map_file(0x20000000 + code, 0x80000, PROT_READ | PROT_EXEC, file, code, False, image=True)
    assert mem.find(0x20000000 + code).gpa != window          # mapped afresh


def test_small_writable_mappings_get_their_host_pages_at_once(mem):
    """So that KVM, which prefetches only over host pages present and writable, maps them 8 at a time."""
    from monitor.memory.guest import POPULATE_LIMIT

    def present(gva: int) -> bool:
        host = mem.host_addr(gva, 1)
        with open("/proc/self/pagemap", "rb") as f:
            f.seek(host // PAGE * 8)
            return bool(struct.unpack("<Q", f.read(8))[0] >> 63)
    mem.map(0x60000000, POPULATE_LIMIT, RW)
    assert all(present(0x60000000 + i) for i in range(0, POPULATE_LIMIT, PAGE))
    assert mem.read(0x60000000, POPULATE_LIMIT) == bytes(POPULATE_LIMIT)


def test_kept_files_reuse_the_open_file_and_close_with_the_last_user(tmp_path):
    """ld.so maps a library several times from one descriptor: the mappings share one MappedFile while the
    descriptor is that open file; another file opened at the same number gets its own; km's copy of the descriptor
    closes when the last user goes; another address space keeps its own."""
    import gc
    import os
    from monitor.memory.mapped_file import KeptFiles
    first, second = tmp_path / "first.so", tmp_path / "second.so"
    first.write_bytes(b"1" * 100)
    second.write_bytes(b"2" * 100)
    fd = os.open(first, os.O_RDONLY)
    files = KeptFiles()
    a = files.of_fd(fd)
    assert files.of_fd(fd) is a and a.path == str(first)
    assert KeptFiles().of_fd(fd) is not a
    kept = a.fd
    os.close(fd)
    assert os.open(second, os.O_RDONLY) == fd
    b = files.of_fd(fd)
    assert b is not a and b.path == str(second) and b.inode == os.stat(second).st_ino
    os.close(fd)
    del a
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(kept)
    assert os.fstat(b.fd).st_ino == b.inode


def test_unmap_gives_back_neighbours_in_one_chunk_together_never_across_chunks():
    """GuestMemory.unmap releases the backings in host-contiguous runs: guest-physical neighbours merge while they
    lie in one chunk (one host mapping); a run never crosses into the next chunk, whose host memory lies elsewhere
    (a madvise over it would drop whatever the host keeps after the first chunk)."""
    from types import SimpleNamespace
    from monitor.memory.physical import Chunk

    class Phys:
        chunks = [Chunk(0, 0x10000, 0x7F0000000000, memoryview(b"")),
                  Chunk(0x10000, 0x10000, 0x7E0000000000, memoryview(b""))]   # adjacent GPAs, apart on the host

        def __init__(self) -> None:
            self.released: list[tuple[int, int]] = []

        def chunk_of(self, gpa: int) -> Chunk:
            return self.chunks[gpa >= 0x10000]

        def release(self, gpa: int, size: int) -> None:
            self.released.append((gpa, size))

    phys = Phys()
    GuestMemory._release_runs(SimpleNamespace(phys=phys),      # type: ignore[arg-type]
                              [(0xF000, 0x1000), (0x3000, 0x1000), (0x10000, 0x2000), (0x2000, 0x1000),
                               (0x5000, 0x1000)])
    assert phys.released == [(0x2000, 0x2000), (0x5000, 0x1000), (0xF000, 0x1000), (0x10000, 0x2000)]
