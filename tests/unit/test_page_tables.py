"""PageTables over real PhysicalMemory (host memory; the VM is a stand-in that accepts memslots): 4K and 2M leaves,
splitting a 2M page, unmapping, rights bits, and that table pages come from guest-physical memory."""
from __future__ import annotations

import os

import pytest

from monitor.memory.page_tables import ADDR_MASK, PTE_A, PTE_D, PTE_NX, PTE_P, PTE_PS, PTE_U, PTE_W, PageTables
from monitor.memory.physical import FILE_BASE, FILE_HEADROOM, HUGE, PAGE, PhysicalMemory


class SlotRecorder:
    """Stands in for kvm.vm.Vm: records memslots instead of calling KVM."""

    def __init__(self) -> None:
        self.slots: list[tuple[int, int, int]] = []

    def add_memory(self, gpa: int, size: int, host_addr: int, readonly: bool = False) -> int:
        self.slots.append((gpa, size, host_addr))
        return len(self.slots) - 1


@pytest.fixture
def phys() -> PhysicalMemory:
    return PhysicalMemory(SlotRecorder())


@pytest.fixture
def tables(phys) -> PageTables:
    return PageTables(phys)


def test_4k_pages_translate_with_their_rights(tables, phys):
    gpa = phys.alloc(3 * PAGE)
    tables.set_range(0x400000, 3 * PAGE, gpa, PTE_U | PTE_NX)
    for i in range(3):
        got, flags = tables.translate(0x400000 + i * PAGE + 0x123)
        assert got == gpa + i * PAGE + 0x123
        assert flags & (PTE_P | PTE_U | PTE_NX) == PTE_P | PTE_U | PTE_NX and not flags & PTE_W
    assert tables.translate(0x400000 + 3 * PAGE) is None
    assert tables.translate(0x3FF000) is None


def test_entries_are_written_accessed_and_leaves_dirty(tables, phys):
    """A shadow MMU prefetches only accessed gPTEs and shadows a clean writable one read-only: km presets both."""
    gpa = phys.alloc(HUGE + PAGE, HUGE)
    tables.set_range(0x600000, HUGE, gpa, PTE_U | PTE_W)
    tables.set_range(0x800000, PAGE, gpa + HUGE, PTE_U | PTE_NX)
    for gva in (0x600000, 0x800000):
        assert tables.translate(gva)[1] & (PTE_A | PTE_D) == PTE_A | PTE_D
    pml4 = tables.tables[tables.pml4]
    assert pml4[0] & PTE_A and not pml4[0] & PTE_D     # a table entry: accessed only


def test_aligned_2m_ranges_use_huge_leaves(tables, phys):
    gpa = phys.alloc(2 * HUGE, HUGE)
    tables.set_range(0x7F0000000000, 2 * HUGE, gpa, PTE_U | PTE_W)
    got, flags = tables.translate(0x7F0000000000 + HUGE + 0x5678)
    assert got == gpa + HUGE + 0x5678
    assert flags & PTE_PS and flags & PTE_W


def test_unaligned_gpa_falls_back_to_4k(tables, phys):
    gpa = phys.alloc(HUGE + PAGE, PAGE, PAGE)         # gpa % 2M == 4K: no huge leaf possible
    tables.set_range(0x40000000, HUGE, gpa, PTE_U)
    got, flags = tables.translate(0x40000000 + HUGE - 1)
    assert got == gpa + HUGE - 1 and not flags & PTE_PS


def test_4k_change_inside_a_2m_page_splits_it(tables, phys):
    gpa = phys.alloc(HUGE, HUGE)
    tables.set_range(0x200000, HUGE, gpa, PTE_U | PTE_W)
    tables.set_range(0x200000 + 5 * PAGE, PAGE, gpa + 5 * PAGE, PTE_U)          # one page read-only
    for offset in (0, 4 * PAGE, 6 * PAGE, HUGE - PAGE):
        got, flags = tables.translate(0x200000 + offset)
        assert got == gpa + offset and flags & PTE_W and not flags & PTE_PS, hex(offset)
    got, flags = tables.translate(0x200000 + 5 * PAGE)
    assert got == gpa + 5 * PAGE and not flags & PTE_W


def test_unmap_and_remap(tables, phys):
    gpa = phys.alloc(HUGE + 4 * PAGE, HUGE)
    tables.set_range(0x600000, HUGE + 4 * PAGE, gpa, PTE_U)
    tables.set_range(0x600000 + PAGE, PAGE, None)
    assert tables.translate(0x600000 + PAGE) is None
    assert tables.translate(0x600000) is not None and tables.translate(0x600000 + 2 * PAGE) is not None
    tables.set_range(0x600000, HUGE + 4 * PAGE, None)
    assert all(tables.translate(0x600000 + off) is None for off in range(0, HUGE + 4 * PAGE, PAGE))
    tables.set_range(0x600000 + 3 * PAGE, PAGE, gpa, PTE_U | PTE_W)
    assert tables.translate(0x600000 + 3 * PAGE)[0] == gpa


def test_unmapping_where_nothing_was_mapped_creates_no_tables(tables):
    before = len(tables.tables)
    tables.set_range(0x100000000000, 1 << 30, None)
    assert len(tables.tables) == before


def test_high_half_and_table_pages_live_in_guest_memory(tables, phys):
    gpa = phys.alloc(PAGE)
    tables.set_range(0xFFFFFFFF80000000, PAGE, gpa, 0)            # a supervisor page, as the system area is
    got, flags = tables.translate(0xFFFFFFFF80000000)
    assert got == gpa and not flags & PTE_U
    for table_gpa in tables.tables:
        assert table_gpa % PAGE == 0 and table_gpa < phys.top
    pml4 = phys.view(tables.pml4, PAGE).cast("Q")
    assert pml4[511] & PTE_P and (pml4[511] & ADDR_MASK) in tables.tables


def test_phys_chunks_are_2m_aligned_on_the_host(phys):
    """A guest 2M page must be one host 2M page (THP) for KVM to map it with one fault."""
    phys.alloc(PAGE)
    phys.alloc(300 << 20, HUGE)                   # a second, larger chunk
    for chunk in phys.chunks:
        assert chunk.host_addr % HUGE == 0 and chunk.gpa % HUGE == 0
        assert phys.host_addr(chunk.gpa + 5 * PAGE) == chunk.host_addr + 5 * PAGE
    gpa = phys.alloc(PAGE)
    view = phys.view(gpa, PAGE)
    view[:4] = b"\x01\x02\x03\x04"
    phys.release(gpa, PAGE)
    assert bytes(phys.view(gpa, 4)) == bytes(4)    # released memory reads back as zero


def test_file_chunks_share_or_copy_the_file(phys, tmp_path):
    import os
    path = tmp_path / "data"
    path.write_bytes(b"A" * PAGE + b"B" * PAGE)
    fd = os.open(path, os.O_RDWR)
    slots = len(phys.vm.slots)
    try:
        shared = phys.map_file(fd, 0, 2 * PAGE, shared=True)
        private = phys.map_file(fd, PAGE, PAGE, shared=False)
    finally:
        os.close(fd)
    assert shared >= 1 << 45 and phys.is_file(shared) and phys.is_file(private)
    assert len(phys.vm.slots) == slots + 1             # one file window for both: no memslot per mapping
    assert bytes(phys.view(private, 2)) == b"BB"
    phys.view(shared, 2)[:] = b"xy"                     # through the shared mapping: into the file
    phys.view(private, 1)[:] = b"p"                     # private: a copy
    assert path.read_bytes()[:2] == b"xy" and path.read_bytes()[PAGE:PAGE + 1] == b"B"
    phys.drop(private, PAGE)                            # MADV_DONTNEED: the file's bytes again
    assert bytes(phys.view(private, 1)) == b"B"
    phys.release(shared, 2 * PAGE)
    assert path.read_bytes()[:2] == b"xy"
    fd = os.open(path, os.O_RDONLY)
    try:
        again = phys.map_file(fd, 0, PAGE, shared=False)     # the window's released range is reused
    finally:
        os.close(fd)
    assert again == shared and bytes(phys.view(again, 2)) == b"xy" and len(phys.vm.slots) == slots + 1


def forked(phys: PhysicalMemory) -> SlotRecorder:
    """The memslots of a forked km's new VM once registered (rebind registers them on a thread of its own)."""
    child = SlotRecorder()
    phys.rebind(child)()
    if phys._spare_window_ready is not None:
        phys._spare_window_ready()
    return child


def memory_slots(child: SlotRecorder) -> list[tuple[int, int, int]]:
    return [slot for slot in child.slots if slot[0] < FILE_BASE]


def test_forked_vm_registers_used_part_then_the_rest(phys):
    """A forked km's new VM gets a memslot for each chunk up to its last allocated 2M page, and one slot for the
    rest of the chunk when an allocation first reaches past it; every allocated byte stays covered."""
    low = phys.alloc(3 * PAGE)
    high = phys.alloc(5 << 20)
    phys.release(low, 3 * PAGE)                          # a hole below the high-water mark stays registered
    chunk = phys.chunk_of(high)
    child = forked(phys)
    used = (high + (5 << 20) - chunk.gpa + HUGE - 1) // HUGE * HUGE
    assert memory_slots(child) == [(chunk.gpa, used, chunk.host_addr)]

    def covered(gpa: int, size: int) -> bool:          # by adjacent slots (a range may span two)
        for start, length, _ in sorted(child.slots):
            if start <= gpa < start + length:
                gpa, size = start + length, size - (start + length - gpa)
        return size <= 0
    assert covered(low, 3 * PAGE) and covered(high, 5 << 20)
    again = phys.alloc(3 * PAGE)                         # reuses the hole: no new slot
    assert covered(again, 3 * PAGE) and len(memory_slots(child)) == 1
    far = phys.alloc(64 << 20)                           # past the registered part: the rest of the chunk
    assert covered(far, 64 << 20) and len(memory_slots(child)) == 2
    assert memory_slots(child)[1] == (chunk.gpa + used, chunk.size - used, chunk.host_addr + used)
    phys.alloc(PAGE)
    assert len(memory_slots(child)) == 2


def test_forked_vm_registers_room_for_an_exec_in_a_file_window(phys, tmp_path):
    """A file window's slot reaches FILE_HEADROOM past its used part: an exec in the child maps its program's
    files there without a slot of its own (added after the vCPU ran, one cost milliseconds)."""
    path = tmp_path / "f"
    path.write_bytes(b"x" * PAGE)
    fd = os.open(path, os.O_RDONLY)
    try:
        first = phys.map_file(fd, 0, PAGE, shared=False)
        child = forked(phys)
        assert child.slots == [(first, HUGE + FILE_HEADROOM, phys.chunk_of(first).host_addr)]
        for _ in range(FILE_HEADROOM // HUGE):             # the files of a new program: within the slot
            phys.map_file(fd, 0, HUGE, shared=False)
        assert len(child.slots) == 1
    finally:
        os.close(fd)


def test_forked_vm_of_a_free_chunk_registers_it_on_first_use(phys):
    gpa = phys.alloc(PAGE)
    phys.release(gpa, PAGE)
    child = forked(phys)
    assert memory_slots(child) == []
    gpa = phys.alloc(PAGE)
    chunk = phys.chunk_of(gpa)
    assert memory_slots(child) == [(chunk.gpa, chunk.size, chunk.host_addr)]


def test_prepare_window_registers_one_off_the_exec_path(phys, tmp_path):
    """With no file window (a static program's forked child), prepare_window (called by execve) makes one and
    registers its slot, FILE_HEADROOM long, on a thread; the exec's first file mapping waits for it and needs no
    slot of its own. A fork alone makes none."""
    phys.alloc(PAGE)
    child = forked(phys)
    assert all(slot[0] < FILE_BASE for slot in child.slots)
    phys.prepare_window()
    phys.prepare_window()                               # one window
    path = tmp_path / "f"
    path.write_bytes(b"y" * PAGE)
    fd = os.open(path, os.O_RDONLY)
    try:
        gpa = phys.map_file(fd, 0, PAGE, shared=False)
    finally:
        os.close(fd)
    window = phys.chunk_of(FILE_BASE)
    assert gpa == FILE_BASE and bytes(phys.view(gpa, 2)) == b"yy"
    assert child.slots[-1] == (FILE_BASE, FILE_HEADROOM, window.host_addr) and len(child.slots) == 2
    phys.prepare_window()                               # there is one now
    assert len(phys.chunks) == 2 and phys._spare_window_ready is None
