"""The dynamic loader's list of loaded objects (r_debug and its link_map chain), read from any Target, and the
`<library-list-svr4>` document gdb asks for with qXfer:libraries-svr4:read.

gdb can walk this list itself through memory reads (solib-svr4.c), but that costs it dozens of round trips per
library event; gdbserver serves the document instead, and so do we, with gdbserver's exact shape
(gdbserver/linux-low.cc qxfer_libraries_svr4): the first object of the base namespace is the program (main-lm),
every other named object is a <library> carrying its namespace's r_debug address as lmid.

r_debug is found as gdbserver finds it: AT_PHDR/AT_PHNUM in the auxv give the program's headers in guest
memory, PT_PHDR gives the load bias, PT_DYNAMIC the dynamic section, and its DT_DEBUG entry (0 until ld.so has
set it) the address. Layouts: glibc elf/link.h (struct r_debug, r_debug_extended, link_map), x86-64.
dynamic_symbols() reads a loaded object's exported symbols the same way, through its in-memory dynamic section
(kdbg.tls finds libc's libthread_db descriptors with it).
Only the stdlib and kdbg.target may be imported here (the stub and the core reader both use it).
"""
from __future__ import annotations

import struct
from typing import Iterable, NamedTuple, Protocol, runtime_checkable

from kdbg.arch.linux import AT_PHDR, AT_PHNUM, parse_auxv
from kdbg.target import GuestMemoryError, Target

PT_DYNAMIC, PT_PHDR = 2, 6
DT_NULL, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_DEBUG = 0, 5, 6, 10, 21
_PHDR = struct.Struct("<IIQQQQQQ")                   # Elf64_Phdr: p_type, p_flags, p_offset, p_vaddr, ...
_DYN = struct.Struct("<qQ")                          # Elf64_Dyn: d_tag, d_val
_R_DEBUG = struct.Struct("<i4xQQiiQQ")               # r_version, r_map, r_brk, r_state, pad, r_ldbase, r_next
_R_DEBUG_V1_SIZE = 40                                # r_next exists only when r_version >= 2
_LINK_MAP = struct.Struct("<QQQQQ")                  # l_addr, l_name, l_ld, l_next, l_prev
_SYM = struct.Struct("<IBBHQQ")                     # Elf64_Sym: st_name, st_info, st_other, st_shndx, st_value, ...
_MAX_DYNAMIC = 512                                   # entries of a dynamic section looked at
_MAX_SYMBOL_TABLE = 1 << 22                          # bytes of .dynsym/.dynstr read at most
_NAME_MAX = 4096                                     # PATH_MAX, as gdbserver reads l_name
_MAX_OBJECTS = 100_000                               # a corrupt (cyclic) chain ends here


class LoadedObject(NamedTuple):
    """One link_map entry: where ld.so put a shared object."""

    lm: int          # the link_map's own address
    name: str        # l_name ("" for the program itself and for objects ld.so leaves unnamed)
    l_addr: int      # load bias
    l_ld: int        # its dynamic section
    lmid: int        # the r_debug of its namespace


def _word(target: Target, addr: int) -> int:
    return int.from_bytes(target.read_memory(addr, 8), "little")


def _c_string(target: Target, addr: int) -> str:
    """A NUL-terminated string of at most PATH_MAX bytes, read a page at a time (the rest may be unmapped)."""
    out = b""
    while len(out) < _NAME_MAX:
        size = min(0x1000 - (addr + len(out)) % 0x1000, _NAME_MAX - len(out))
        try:
            chunk = target.read_memory(addr + len(out), size)
        except GuestMemoryError:
            break
        end = chunk.find(b"\0")
        if end >= 0:
            return (out + chunk[:end]).decode(errors="surrogateescape")
        out += chunk
    return out.decode(errors="surrogateescape")


def program_headers(target: Target) -> tuple[int, list[tuple[int, ...]]]:
    """The program's load bias and its Elf64_Phdr tuples, read where the auxv's AT_PHDR/AT_PHNUM point
    (no headers: an empty list)."""
    auxv = parse_auxv(target.auxv())
    phdr, phnum = auxv.get(AT_PHDR), auxv.get(AT_PHNUM)
    if not phdr or not phnum:
        return 0, []
    headers = [_PHDR.unpack(target.read_memory(phdr + i * _PHDR.size, _PHDR.size)) for i in range(phnum)]
    return next((phdr - h[3] for h in headers if h[0] == PT_PHDR), 0), headers


def find_r_debug(target: Target) -> int | None:
    """The program's DT_DEBUG value (0 before ld.so sets it), or None when it has no DT_DEBUG at all (static)."""
    bias, headers = program_headers(target)
    dynamic = next((h for h in headers if h[0] == PT_DYNAMIC), None)
    if dynamic is None:
        return None
    addr, end = bias + dynamic[3], bias + dynamic[3] + dynamic[6]
    while addr + _DYN.size <= end:
        tag, value = _DYN.unpack(target.read_memory(addr, _DYN.size))
        if tag == DT_DEBUG:
            return value
        if tag == DT_NULL:
            break
        addr += _DYN.size
    return None


class RDebug(NamedTuple):
    """struct r_debug (or r_debug_extended): the head of one namespace's list."""

    addr: int
    version: int
    r_map: int
    r_brk: int
    r_state: int
    r_next: int       # the next namespace's r_debug (r_version >= 2), else 0

    @classmethod
    def read(cls, target: Target, addr: int) -> RDebug:
        data = target.read_memory(addr, _R_DEBUG_V1_SIZE)
        version = int.from_bytes(data[:4], "little", signed=True)
        if version >= 2:
            data = target.read_memory(addr, _R_DEBUG.size)
        else:
            data += bytes(_R_DEBUG.size - _R_DEBUG_V1_SIZE)
        version, r_map, r_brk, r_state, _, _ldbase, r_next = _R_DEBUG.unpack(data)
        return cls(addr, version, r_map, r_brk, r_state, r_next if version >= 2 else 0)


def namespace_objects(target: Target, lmid: int, lm: int, prev: int = 0) -> list[LoadedObject]:
    """The chain from link_map `lm` on, as long as each l_prev points back (a list being changed ends early)."""
    objects: list[LoadedObject] = []
    while lm and len(objects) < _MAX_OBJECTS:
        try:
            l_addr, l_name, l_ld, l_next, l_prev = _LINK_MAP.unpack(target.read_memory(lm, _LINK_MAP.size))
        except GuestMemoryError:
            break
        if l_prev != prev:
            break
        objects.append(LoadedObject(lm, _c_string(target, l_name) if l_name else "", l_addr, l_ld, lmid))
        prev, lm = lm, l_next
    return objects


class LibraryList(NamedTuple):
    """Every namespace's objects; main_lm is the program's own link_map (0 before ld.so made the list)."""

    main_lm: int
    objects: tuple[LoadedObject, ...]


def read_library_list(target: Target, r_debug: int) -> LibraryList:
    """Walk every namespace from the base r_debug (gdbserver's order: the base namespace first, then r_next)."""
    main_lm, objects = 0, []
    addr, seen = r_debug, set()
    while addr and addr not in seen:
        seen.add(addr)
        try:
            head = RDebug.read(target, addr)
        except GuestMemoryError:
            break
        if head.version < 1:
            break
        chain = namespace_objects(target, addr, head.r_map)
        if addr == r_debug and chain:
            main_lm, chain = chain[0].lm, chain[1:]
        objects += [o for o in chain if o.name]
        addr = head.r_next
    return LibraryList(main_lm, tuple(objects))


def _xml_attr(text: str) -> str:
    """gdbsupport's xml_escape_text: the five XML specials."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&apos;"))


def library_list_svr4(libraries: LibraryList | None) -> bytes:
    """The qXfer:libraries-svr4 document; None (DT_DEBUG not set yet) is the empty list."""
    head = '<library-list-svr4 version="1.0"'
    if libraries is not None and libraries.main_lm:
        head += f' main-lm="{libraries.main_lm:#x}"'
    items = "".join(f'<library name="{_xml_attr(o.name)}" lm="{o.lm:#x}" l_addr="{o.l_addr:#x}" '
                    f'l_ld="{o.l_ld:#x}" lmid="{o.lmid:#x}"/>' for o in (libraries.objects if libraries else ()))
    return (head + ">" + items + "</library-list-svr4>").encode(errors="surrogateescape")


def _dynamic_entries(target: Target, obj: LoadedObject) -> dict[int, int]:
    """An object's dynamic section in memory (the first value of each tag), read a page at a time up to DT_NULL.
    ld.so relocates the address entries in place on x86-64 (unless the section is read-only), so an address
    below l_addr still needs it added."""
    entries: dict[int, int] = {}
    addr, end = obj.l_ld, obj.l_ld + _DYN.size * _MAX_DYNAMIC
    while addr and addr < end:
        size = min(end, (addr | 0xFFF) + 1) - addr
        chunk = target.read_memory(addr, max(_DYN.size, size - size % _DYN.size))
        for tag, value in _DYN.iter_unpack(chunk):
            if tag == DT_NULL:
                addr = end
                break
            entries.setdefault(tag, value)
        else:
            addr += len(chunk)
    for tag in (DT_SYMTAB, DT_STRTAB):
        if tag in entries and entries[tag] < obj.l_addr:
            entries[tag] += obj.l_addr
    return entries


def dynamic_symbols(target: Target, obj: LoadedObject, names: Iterable[str]) -> dict[str, int]:
    """Run-time addresses of the named symbols an object exports (.dynsym through DT_SYMTAB/DT_STRTAB, read
    from guest memory; .dynsym is taken to end where .dynstr begins, as the linkers lay them out)."""
    entries = _dynamic_entries(target, obj)
    symtab, strtab, strsz = entries.get(DT_SYMTAB), entries.get(DT_STRTAB), entries.get(DT_STRSZ)
    if not symtab or not strtab or not strsz or strtab <= symtab:
        return {}
    strings = target.read_memory(strtab, min(strsz, _MAX_SYMBOL_TABLE))
    offsets = {}
    for name in names:
        at = strings.find(b"\0" + name.encode() + b"\0")
        if at >= 0:
            offsets[at + 1] = name
    if not offsets:
        return {}
    table = target.read_memory(symtab, min(strtab - symtab, _MAX_SYMBOL_TABLE) // _SYM.size * _SYM.size)
    found = {}
    for st_name, _info, _other, shndx, value, _size in _SYM.iter_unpack(table):
        if st_name in offsets and shndx != 0:
            found[offsets[st_name]] = obj.l_addr + value
    return found


@runtime_checkable
class MapGenerations(Protocol):
    """A live target that counts changes of its memory map: a library can only come or go with one."""

    def map_generation(self) -> int: ...


class NoDynamicSection(Exception):
    """The program has no DT_DEBUG (static): gdb is told so, and uses its own lookup (which finds nothing)."""


class LibraryCache:
    """The last list read, reused while nothing a loader does could have changed it: the same memory-map
    generation (a live target's count of mmap/munmap/mprotect; a core never changes) and the same r_debug bytes
    (r_state moves at each add/delete). A stop costs nothing until gdb asks; asking again costs one small read."""

    def __init__(self) -> None:
        self._r_debug = 0                 # found once set, as gdbserver keeps it (the program never moves it)
        self._key: tuple | None = None
        self._list: LibraryList | None = None
        self._document = b""
        self.walks = 0                    # how many full walks were made (for the tests of the cache)
        self.thread_db: dict | None = None    # kdbg.tls's descriptors once found (fixed for the process)

    def libraries(self, target: Target, *, live: bool) -> LibraryList | None:
        """The list, or None while DT_DEBUG is still 0; NoDynamicSection for a program without one."""
        if not self._r_debug:
            found = find_r_debug(target)
            if found is None:
                raise NoDynamicSection()
            self._r_debug = found
        if not self._r_debug:
            return None
        generation = target.map_generation() if isinstance(target, MapGenerations) else None
        if live and generation is None:
            key = None                    # a live target that cannot say when its map changed: walk each time
        else:
            key = (generation, target.read_memory(self._r_debug, _R_DEBUG_V1_SIZE))
        if key is None or key != self._key or self._list is None:
            self._list = read_library_list(target, self._r_debug)
            self._document = library_list_svr4(self._list)
            self._key = key
            self.walks += 1
        return self._list

    def document(self, target: Target, *, live: bool) -> bytes:
        """The qXfer:libraries-svr4 document of the current list."""
        if self.libraries(target, live=live) is None:
            return library_list_svr4(None)
        return self._document
