"""The guest's 4-level page tables, written by km from the host: 4K and 2M pages with user/write/NX bits.

Table pages come from guest-physical memory and are never freed (a freed table could still be shadowed by KVM).
Lowering or moving a translation is not seen by the guest until the old frames are invalidated
(PhysicalMemory.invalidate/release): GuestMemory does that after calling here.

Every entry is written with its Accessed bit, and every leaf with its Dirty bit too, as if the guest had used it
already (nothing in km reads them back). A shadow MMU (kvm-pvm) then maps a faulting page's neighbours with it
(KVM prefetches up to 8 gPTEs, but only accessed ones) instead of taking one fault each, never write-protects a
writable page for a first read (a clean gPTE is shadowed read-only until the guest writes: a second fault), and
never writes an A or D bit back into the guest's tables on a walk. An exec of a dynamic program took ~20% fewer
shadow faults. With EPT/NPT (hardware KVM) the bits are the CPU's business and presetting them changes nothing.
"""
from __future__ import annotations

from array import array

from .physical import HUGE, PAGE, PhysicalMemory

PTE_P, PTE_W, PTE_U, PTE_A, PTE_D, PTE_PS, PTE_NX = 1, 2, 4, 0x20, 0x40, 0x80, 1 << 63
ADDR_MASK = 0x000FFFFFFFFFF000
_TABLE_FLAGS = PTE_P | PTE_W | PTE_U | PTE_A     # rights are decided at the leaf
_LEAF_FLAGS = PTE_P | PTE_A | PTE_D
_ZEROS = array("Q", bytes(PAGE))


class PageTables:
    def __init__(self, phys: PhysicalMemory) -> None:
        self.phys = phys
        self.tables: dict[int, memoryview] = {}
        self.pml4 = self._new_table()

    def _new_table(self) -> int:
        gpa = self.phys.alloc(PAGE)
        view = self.phys.view(gpa, PAGE).cast("Q")
        view[:] = _ZEROS
        self.tables[gpa] = view
        return gpa

    def _walk(self, gva: int, leaf_level: int, create: bool) -> tuple[memoryview | None, int]:
        """The table holding gva's entry at leaf_level (0 = PT, 1 = PD) and the index in it, splitting a 2M page
        on the way when a 4K entry is wanted. (None, level) when a table is missing and create is False."""
        table = self.tables[self.pml4]
        for level in (3, 2, 1):
            index = (gva >> (12 + 9 * level)) & 511
            if level == leaf_level:
                return table, index
            entry = table[index]
            if not entry & PTE_P:
                if not create:
                    return None, level
                child = self._new_table()
                table[index] = child | _TABLE_FLAGS
            elif entry & PTE_PS:          # a 2M page where a 4K entry is wanted: split it
                child = self._new_table()
                base, flags = entry & ADDR_MASK & ~(HUGE - 1), entry & ~ADDR_MASK & ~PTE_PS
                first = base | flags
                self.tables[child][:] = array("Q", range(first, first + HUGE, PAGE))
                table[index] = child | _TABLE_FLAGS
            table = self.tables[table[index] & ADDR_MASK]
        return table, (gva >> 12) & 511

    def set_range(self, gva: int, size: int, gpa: int | None, flags: int = 0) -> None:
        """Map [gva, gva+size) to [gpa, ...) with `flags` (PTE_W|PTE_U|PTE_NX), or unmap it when gpa is None."""
        end = gva + size
        while gva < end:
            if gva % HUGE == 0 and end - gva >= HUGE and (gpa is None or gpa % HUGE == 0):
                table, index = self._walk(gva, 1, create=gpa is not None)
                if table is None:
                    step = _skip(gva, index)
                elif table[index] & PTE_P and not table[index] & PTE_PS:   # keep an existing 4K table
                    step = self._set_ptes(gva, min(end, gva + HUGE), gpa, flags)
                else:
                    table[index] = (gpa | flags | _LEAF_FLAGS | PTE_PS) if gpa is not None else 0
                    step = HUGE
            else:
                step = self._set_ptes(gva, end, gpa, flags)
            gva += step
            if gpa is not None:
                gpa += step

    def _set_ptes(self, gva: int, end: int, gpa: int | None, flags: int) -> int:
        table, index = self._walk(gva, 0, create=gpa is not None)
        if table is None:
            return min(_skip(gva, index), end - gva)
        count = min(512 - index, (end - gva) // PAGE)
        if gpa is None:
            table[index:index + count] = _ZEROS[:count]
        else:
            first = gpa | flags | _LEAF_FLAGS
            table[index:index + count] = array("Q", range(first, first + count * PAGE, PAGE))
        return count * PAGE

    def translate(self, gva: int) -> tuple[int, int] | None:
        """(gpa, pte flags) of a mapped gva, or None: for tests and diagnostics."""
        table = self.tables[self.pml4]
        for level in (3, 2, 1, 0):
            entry = table[(gva >> (12 + 9 * level)) & 511]
            if not entry & PTE_P:
                return None
            if level == 0 or (level == 1 and entry & PTE_PS):
                size = PAGE if level == 0 else HUGE
                return (entry & ADDR_MASK & ~(size - 1)) + gva % size, entry & ~ADDR_MASK
            table = self.tables[entry & ADDR_MASK]
        return None


def _skip(gva: int, level: int) -> int:
    """Bytes from gva to the end of the region covered by a missing table at `level`."""
    span = 1 << (12 + 9 * level)
    return span - gva % span
