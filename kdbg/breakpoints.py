"""Software breakpoints: planting int3 in a program's text and hiding it from whoever reads that text.

Pure over two callables (read and write of the program's memory, raising on a bad address), so the rules are
unit-tested without a VM: reads show the original bytes (gdb's `x/`, a core file), writes over a planted byte
update the remembered original and leave the int3 in place (gdbserver's mem-break.c check_mem_read/write).
The addresses taken out are remembered too: a trap from an int3 that ran just before its removal may still arrive
(late_trap), and is then the breakpoint's, not the program's. Only the stdlib may be imported here.
"""
from __future__ import annotations

from typing import Callable, Iterator, Mapping

INT3 = b"\xcc"

Read = Callable[[int, int], bytes]
Write = Callable[[int, bytes], None]


class SoftwareBreakpoints:
    """The int3 bytes planted in one address space and the bytes they replaced."""

    def __init__(self, read: Read, write: Write, planted: Mapping[int, bytes] | None = None) -> None:
        self._read, self._write = read, write
        self._original: dict[int, bytes] = dict(planted or {})     # address -> the byte the int3 replaced
        self._removed: set[int] = set()         # addresses whose int3 was taken out (as many as gdb ever used)

    def __contains__(self, addr: int) -> bool:
        return addr in self._original

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._original))

    def __len__(self) -> int:
        return len(self._original)

    def planted(self) -> dict[int, bytes]:
        """A copy of address -> original byte (what a forked address space inherits)."""
        return dict(self._original)

    def insert(self, addr: int) -> None:
        """Plant an int3 at addr (again is a no-op); the read or write error of a bad address propagates."""
        if addr in self._original:
            return
        original = self._read(addr, 1)
        self._write(addr, INT3)
        self._original[addr] = original
        self._removed.discard(addr)

    def adopt(self, addr: int, original: bytes) -> None:
        """insert()'s record of an int3 someone else planted at addr over `original` (the stub's stop lane)."""
        if addr not in self._original:
            self._original[addr] = original
            self._removed.discard(addr)

    def adopt_removal(self, addr: int) -> None:
        """remove()'s record of an int3 someone else took out at addr (its byte written back already)."""
        if self._original.pop(addr, None) is not None:
            self._removed.add(addr)

    def remove(self, addr: int) -> bool:
        """Put the original byte back; False when nothing was planted there. A write that fails (the text
        was unmapped since) is not an error: the int3 went away with it."""
        original = self._original.pop(addr, None)
        if original is None:
            return False
        self._removed.add(addr)
        try:
            self._write(addr, original)
        except Exception:  # noqa: BLE001 - the callable's own error type: the page is gone, nothing to restore
            pass
        return True

    def remove_all(self) -> None:
        for addr in list(self._original):
            self.remove(addr)

    def forget_all(self) -> None:
        """Drop the records without touching memory (the memory they describe is someone else's now)."""
        self._original.clear()
        self._removed.clear()

    def late_trap(self, addr: int) -> bool:
        """Whether an int3 trap from addr, where no int3 is planted now, is a breakpoint's that was taken out
        after the int3 ran: the thread must run the original instruction at addr again, unsignalled (gdbserver
        discards such a SIGTRAP: "previous SW breakpoint gone"). An int3 still in memory there is the program's."""
        if addr not in self._removed or addr in self._original:
            return False
        try:
            return self._read(addr, 1) != INT3
        except Exception:  # noqa: BLE001 - the callable's own error type: the page is gone, no int3 ran there
            return False

    def shadow(self, addr: int, data: bytes) -> bytes:
        """`data` read at addr, with each planted int3 replaced by the byte it hides."""
        if not self._original:
            return data
        out: bytearray | None = None
        end = addr + len(data)
        for bp, original in self._original.items():
            if addr <= bp < end:
                if out is None:
                    out = bytearray(data)
                out[bp - addr] = original[0]
        return data if out is None else bytes(out)

    def write_through(self, addr: int, data: bytes) -> bytes:
        """What to store for a debugger write of `data` at addr: a byte written over a planted int3 becomes
        its new original and the int3 stays (the breakpoint survives gdb patching the code around it)."""
        if not self._original:
            return data
        out = bytearray(data)
        end = addr + len(data)
        for bp in self._original:
            if addr <= bp < end:
                self._original[bp] = bytes([out[bp - addr]])
                out[bp - addr] = INT3[0]
        return bytes(out)
