"""Thread-local storage addresses in a dynamic glibc payload, as glibc's libthread_db computes them
(nptl_db/td_thr_tlsbase.c), for gdb's qGetTLSAddr (`p errno`, `p some_thread_local`).

gdbserver loads libthread_db for this; we read the same descriptors libthread_db reads: glibc (2.34 on: libc.so.6,
before: libpthread.so.0) exports `_thread_db_<struct>_<field>` symbols, each three uint32 {size in bits, count,
offset}, so no glibc layout is written down here. x86-64 puts the TCB at the thread pointer (fs_base): the DTV
hangs off it, slot `modid` of the DTV holds the module's block, and a block in static TLS sits at
tp - l_tls_offset. Only the stdlib, kdbg.target and kdbg.link_map may be imported here.
"""
from __future__ import annotations

from typing import NamedTuple

from kdbg.link_map import LibraryList, dynamic_symbols, program_headers
from kdbg.target import Target, TargetError

_FIELDS = ("pthread_dtvp", "dtv_dtv", "dtv_t_pointer_val", "dtv_t_counter", "link_map_l_tls_modid",
           "link_map_l_tls_offset")
_THREAD_LIBRARIES = ("libc.so.6", "libpthread.so.0")
NO_TLS_OFFSET, FORCED_DYNAMIC_TLS_OFFSET = 0, (1 << 64) - 1     # glibc's TLS_TCB_AT_TP values
PT_TLS = 7


class TlsError(TargetError):
    """No answer for this thread and module (no thread library yet, a module without TLS, a block not allocated
    for this thread): gdb prints its own message."""


class Field(NamedTuple):
    """One libthread_db descriptor: a field's offset and its element size (arrays are indexed by it)."""

    size: int        # bytes
    offset: int

    def read(self, target: Target, base: int, index: int = 0) -> int:
        return int.from_bytes(target.read_memory(base + self.offset + index * self.size, 8), "little")


def thread_db_fields(target: Target, libraries: LibraryList) -> dict[str, Field]:
    """The descriptors, from the first thread library in the list that exports them all."""
    for obj in libraries.objects:
        if obj.name.rsplit("/", 1)[-1] not in _THREAD_LIBRARIES:
            continue
        symbols = dynamic_symbols(target, obj, [f"_thread_db_{name}" for name in _FIELDS])
        if len(symbols) == len(_FIELDS):
            fields = {}
            for name in _FIELDS:
                raw = target.read_memory(symbols[f"_thread_db_{name}"], 12)
                bits, _count, offset = (int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8))
                fields[name] = Field(bits // 8, offset)
            return fields
    raise TlsError("no thread library (libc.so.6) in the program yet")


def tls_block(target: Target, fields: dict[str, Field], thread_pointer: int, lm: int) -> int:
    """The address of module `lm`'s TLS block for the thread whose pointer (fs_base) is given."""
    if not thread_pointer:
        raise TlsError("the thread has no thread pointer yet")
    modid = fields["link_map_l_tls_modid"].read(target, lm)
    if modid < 1:
        raise TlsError("the module has no thread-local storage")
    dtv = fields["pthread_dtvp"].read(target, thread_pointer)
    slots = fields["dtv_dtv"]
    # dtv[-1].counter is the number of slots the DTV has; a module past it (or a slot still unallocated, odd)
    # may still be in static TLS.
    if dtv and modid <= fields["dtv_t_counter"].read(target, dtv - slots.size):
        block = fields["dtv_t_pointer_val"].read(target, dtv + slots.offset + modid * slots.size)
        if not block & 1:
            return block
    offset = fields["link_map_l_tls_offset"].read(target, lm)
    if offset in (NO_TLS_OFFSET, FORCED_DYNAMIC_TLS_OFFSET):
        raise TlsError("the module's thread-local storage is not allocated for this thread yet")
    return (thread_pointer - offset) % (1 << 64)


def program_tls_block(target: Target, thread_pointer: int) -> int:
    """The address of the program's own TLS block (module 1) for a thread: what qGetTLSAddr with no link_map
    (a static program) asks for, and what gdbserver cannot answer without libthread_db (static musl).

    x86-64 puts the program's block just below the thread pointer, at tp - offset, where musl's static_init_tls
    takes offset = memsz + ((-memsz - image) mod align) and glibc's __libc_setup_tls roundup(memsz, align): the
    same number when the segment's address is aligned, as linkers place it."""
    if not thread_pointer:
        raise TlsError("the thread has no thread pointer yet")
    bias, headers = program_headers(target)
    tls = next((h for h in headers if h[0] == PT_TLS), None)
    if tls is None:
        raise TlsError("the program has no thread-local storage")
    image, memsz, align = bias + tls[3], tls[6], max(tls[7], 1)
    offset = memsz + ((-memsz - image) & (align - 1))
    return (thread_pointer - offset) % (1 << 64)
