"""kdbg.link_map over a hand-built process image: the program's headers and dynamic section found through the
auxv, r_debug through DT_DEBUG, the link_map chain into gdbserver's <library-list-svr4> document, the qXfer
handler, and the cache that keeps a stop from paying for a walk gdb did not ask for."""
from __future__ import annotations

import struct
from dataclasses import dataclass

import pytest

import kdbg.rsp.server  # noqa: F401 - registers every handler module
from harness.fake_target import FakeControlTarget, StaticTarget
from kdbg.arch.x86_64 import zero_registers
from kdbg.link_map import LibraryCache, NoDynamicSection, find_r_debug, library_list_svr4, read_library_list
from kdbg.rsp.commands import dispatch
from kdbg.rsp.packets import unescape
from kdbg.rsp.session import RunState, Session
from kdbg.target import StopEvent, StopReason

BIAS = 0x5555_5555_4000            # a PIE's load bias
PHDR = BIAS + 0x40
DYNAMIC = BIAS + 0x3000
HEAP = 0x7FFF_F7FC_0000            # link_maps, names and r_debug live here
R_DEBUG = HEAP + 0x118


def _image(dt_debug: int | None, *, dynamic: bool = True) -> dict[int, bytearray]:
    text = bytearray(0x4000)
    headers = [(6, 4, 0x40, 0x40, 0x40, 56 * 2, 56 * 2, 8)]                 # PT_PHDR
    if dynamic:
        headers.append((2, 6, 0x3000, 0x3000, 0x3000, 0x40, 0x40, 8))       # PT_DYNAMIC
    for i, h in enumerate(headers):
        struct.pack_into("<IIQQQQQQ", text, 0x40 + 56 * i, *h)
    entries = [(1, 7)] + ([(21, dt_debug)] if dt_debug is not None else []) + [(0, 0)]   # DT_NEEDED, DT_DEBUG
    for i, (tag, val) in enumerate(entries):
        struct.pack_into("<qQ", text, 0x3000 + 16 * i, tag, val)
    return {BIAS: text, HEAP: bytearray(0x3000)}


def _auxv(phnum: int = 2) -> bytes:
    return struct.pack("<6Q", 3, PHDR, 5, phnum, 0, 0)


@dataclass
class Chain:
    memory: dict[int, bytearray]

    def put(self, addr: int, data: bytes) -> None:
        self.memory[HEAP][addr - HEAP:addr - HEAP + len(data)] = data

    def link(self, lms: list[tuple[int, str, int, int]], r_debug: int = R_DEBUG, version: int = 1,
             r_next: int = 0) -> None:
        """lms: (lm address, name, l_addr, l_ld), chained in order; names stored after each link_map."""
        for i, (lm, name, l_addr, l_ld) in enumerate(lms):
            name_at = lm + 0x40
            self.put(name_at, name.encode() + b"\0")
            nxt = lms[i + 1][0] if i + 1 < len(lms) else 0
            prev = lms[i - 1][0] if i else 0
            self.put(lm, struct.pack("<5Q", l_addr, name_at, l_ld, nxt, prev))
        self.put(r_debug, struct.pack("<i4xQQiiQQ", version, lms[0][0] if lms else 0, 0x7FFF_F7FC_C060, 0, 0,
                                      0x7FFF_F7FC_A000, r_next))


MAIN, LDSO, LIBC = HEAP + 0x2E0, HEAP + 0xAD0, HEAP + 0x200
LIBS = [(MAIN, "", BIAS, DYNAMIC), (LIBC, "/lib/x86_64-linux-gnu/libc.so.6", 0x7FFF_F7DD_3000, 0x7FFF_F7FA_5B60),
        (LDSO, "/lib64/ld-linux-x86-64.so.2", 0x7FFF_F7FC_A000, 0x7FFF_F7FF_CE40)]


def _target(dt_debug: int | None = R_DEBUG, **kw) -> tuple[StaticTarget, Chain]:
    memory = _image(dt_debug, **kw)
    chain = Chain(memory)
    chain.link(LIBS)
    return StaticTarget(regs={1: zero_registers()}, memory=memory, auxv_data=_auxv()), chain


def test_r_debug_is_found_through_the_auxv_and_dt_debug():
    assert find_r_debug(_target()[0]) == R_DEBUG
    assert find_r_debug(_target(dt_debug=0)[0]) == 0                # ld.so has not set it yet
    assert find_r_debug(_target(dt_debug=None)[0]) is None           # no DT_DEBUG entry
    assert find_r_debug(_target(dynamic=False)[0]) is None           # a static program


def test_the_document_is_gdbservers():
    target, _ = _target()
    doc = library_list_svr4(read_library_list(target, R_DEBUG)).decode()
    lmid = f'lmid="{R_DEBUG:#x}"'
    assert doc == (f'<library-list-svr4 version="1.0" main-lm="{MAIN:#x}">'
                   f'<library name="/lib/x86_64-linux-gnu/libc.so.6" lm="{LIBC:#x}" l_addr="0x7ffff7dd3000" '
                   f'l_ld="0x7ffff7fa5b60" {lmid}/>'
                   f'<library name="/lib64/ld-linux-x86-64.so.2" lm="{LDSO:#x}" l_addr="0x7ffff7fca000" '
                   f'l_ld="0x7ffff7ffce40" {lmid}/></library-list-svr4>')
    assert library_list_svr4(None) == b'<library-list-svr4 version="1.0"></library-list-svr4>'


def test_other_namespaces_follow_r_next_and_names_are_escaped():
    target, chain = _target()
    second = HEAP + 0x1800
    chain.link(LIBS, version=2, r_next=second)
    chain.link([(HEAP + 0x1900, 'odd "<&>" name.so', 0x7000_0000, 0x7000_1000)], r_debug=second, version=2)
    objects = read_library_list(target, R_DEBUG).objects
    assert [(o.name, o.lmid) for o in objects][-1] == ('odd "<&>" name.so', second)
    assert b'name="odd &quot;&lt;&amp;&gt;&quot; name.so"' in library_list_svr4(read_library_list(target, R_DEBUG))


def test_a_broken_chain_ends_the_list():
    target, chain = _target()
    chain.put(LDSO + 32, struct.pack("<Q", 0x1234))                  # l_prev no longer points back
    assert [o.lm for o in read_library_list(target, R_DEBUG).objects] == [LIBC]
    chain.put(LIBC + 24, struct.pack("<Q", LIBC))                    # l_next loops onto itself
    assert [o.lm for o in read_library_list(target, R_DEBUG).objects] == [LIBC]


def test_a_name_running_into_unmapped_memory_stops_there():
    target, chain = _target()
    tail = HEAP + 0x3000 - 4
    chain.put(tail, b"abcd")
    chain.put(LIBC + 8, struct.pack("<Q", tail))
    assert read_library_list(target, R_DEBUG).objects[0].name == "abcd"


class Generations(StaticTarget):
    generation = 0

    def map_generation(self) -> int:
        return self.generation


def test_the_cache_walks_again_only_after_a_map_change_or_an_r_debug_change():
    memory = _image(R_DEBUG)
    chain = Chain(memory)
    chain.link(LIBS)
    target = Generations(regs={1: zero_registers()}, memory=memory, auxv_data=_auxv())
    cache = LibraryCache()
    first = cache.document(target, live=True)
    assert cache.document(target, live=True) == first and cache.walks == 1
    target.generation += 1
    assert cache.document(target, live=True) == first and cache.walks == 2
    chain.put(R_DEBUG + 24, struct.pack("<i", 1))                    # r_state: RT_ADD
    cache.document(target, live=True)
    assert cache.walks == 3
    # A live target that cannot tell map changes is walked on every request; a core once.
    plain, _ = _target()
    cache = LibraryCache()
    cache.document(plain, live=True), cache.document(plain, live=True)
    assert cache.walks == 2
    cache = LibraryCache()
    cache.document(plain, live=False), cache.document(plain, live=False)
    assert cache.walks == 1


def _session(target) -> Session:
    return Session(target, RunState(running=False, last_stop=StopEvent(1, StopReason.BREAKPOINT, 5)))


def test_qxfer_libraries_svr4_through_the_dispatch_table():
    target, _ = _target()
    session = _session(target)
    reply = dispatch(session, b"qXfer:libraries-svr4:read::0,1000")
    assert reply[:1] == b"l" and unescape(reply[1:]).startswith(b'<library-list-svr4 version="1.0" main-lm=')
    window = dispatch(session, b"qXfer:libraries-svr4:read::10,20")
    assert window[:1] == b"m" and session.libraries.walks == 1
    assert dispatch(_session(_target(dt_debug=0)[0]), b"qXfer:libraries-svr4:read::0,1000") == \
        b'l<library-list-svr4 version="1.0"></library-list-svr4>'
    assert dispatch(_session(_target(dynamic=False)[0]), b"qXfer:libraries-svr4:read::0,1000") == b"E01"


def test_qsupported_offers_libraries_svr4():
    target = FakeControlTarget(regs={1: zero_registers()})
    assert b"qXfer:libraries-svr4:read+" in dispatch(_session(target), b"qSupported:multiprocess+")
    with pytest.raises(NoDynamicSection):
        LibraryCache().document(target, live=True)               # no auxv at all: nothing to walk


# ---- TLS (kdbg.tls) over the same image: libc exporting the _thread_db_ descriptors ----

def _libc_with_descriptors(chain: Chain) -> None:
    """A tiny libc image in the heap page: .dynamic -> .dynsym + .dynstr exporting the six descriptors."""
    from kdbg.tls import _FIELDS
    names = [f"_thread_db_{n}" for n in _FIELDS]
    base = HEAP + 0x2000                                  # l_addr of this fake libc
    strtab = b"\0" + b"\0".join(n.encode() for n in names) + b"\0"
    symtab = bytearray(24)                                # symbol 0 is undefined
    values = {"pthread_dtvp": (64, 1, 8), "dtv_dtv": (128, 0, 0), "dtv_t_pointer_val": (64, 1, 0),
              "dtv_t_counter": (64, 1, 0), "link_map_l_tls_modid": (64, 1, 0x470),
              "link_map_l_tls_offset": (64, 1, 0x468)}
    descriptors = 0x600
    for i, name in enumerate(_FIELDS):
        symtab += struct.pack("<IBBHQQ", strtab.index(f"_thread_db_{name}".encode()), 0x11, 0, 10,
                              descriptors + 12 * i, 12)
        chain.put(base + descriptors + 12 * i, struct.pack("<3I", *values[name]))
    chain.put(base + 0x100, bytes(symtab))
    chain.put(base + 0x100 + len(symtab), strtab)
    dynamic = struct.pack("<8q", 6, 0x100, 5, 0x100 + len(symtab), 10, len(strtab), 0, 0)
    chain.put(base + 0x40, dynamic)
    chain.link([(MAIN, "", BIAS, DYNAMIC), (LIBC, "/lib/x86_64-linux-gnu/libc.so.6", base, base + 0x40)])


def test_tls_blocks_from_the_dtv_and_from_static_tls():
    from kdbg.tls import TlsError, thread_db_fields, tls_block
    target, chain = _target()
    _libc_with_descriptors(chain)
    fields = thread_db_fields(target, read_library_list(target, R_DEBUG))
    assert fields["link_map_l_tls_modid"].offset == 0x470 and fields["dtv_dtv"].size == 16
    tp, dtv = HEAP + 0x1000, HEAP + 0x1800
    target.memory[HEAP][0x1008:0x1010] = struct.pack("<Q", dtv)            # tcbhead_t.dtv
    # dtv[-1].counter = 2 slots; dtv[0] (generation); dtv[1] allocated; dtv[2] TLS_DTV_UNALLOCATED
    target.memory[HEAP][0x1800 - 16:0x1800 + 48] = struct.pack("<8Q", 2, 0, 0, 0, 0x7000_1000, 0, (1 << 64) - 1, 0)
    lm = HEAP + 0x2800                                                    # a link_map with modid and tls offset

    def module(modid: int, offset: int) -> int:
        target.memory[HEAP][0x2800 + 0x468:0x2800 + 0x478] = struct.pack("<QQ", offset, modid)
        return lm
    assert tls_block(target, fields, tp, module(1, 0)) == 0x7000_1000                  # dtv[1]
    assert tls_block(target, fields, tp, module(2, 0x80)) == tp - 0x80                 # unallocated: static TLS
    assert tls_block(target, fields, tp, module(3, 0x40)) == tp - 0x40                 # past the DTV
    with pytest.raises(TlsError):
        tls_block(target, fields, tp, module(2, 0))                                     # deferred
    with pytest.raises(TlsError):
        tls_block(target, fields, 0, module(1, 0))                                      # no thread pointer yet
