"""monitor/snapshot/layouts.py against include/km/snapshot_format.h and include/km/snapshot.h: every field's offset
and size and every constant, as gcc sees them (a C program generated from the ctypes declarations themselves)."""
from __future__ import annotations

from pathlib import Path

import pytest

from kdbg.arch.x86_64 import KVM_REGS
from monitor.snapshot import layouts
from monitor.syscalls.km_numbers import KM_NUMBERS

from .c_layouts import c_program, c_values as compiled, mismatches, python_values

INCLUDE = Path(__file__).resolve().parents[2] / "include"
LAYOUTS = {layout: f"struct {layout.__name__}" for layout in (
    layouts.km_snapshot, layouts.km_process, layouts.km_thread, layouts.km_xsave, layouts.km_sigaction,
    layouts.km_pending, layouts.km_vma, layouts.km_fd, layouts.km_epoll_item)}
CONSTANTS = {**{n.name: int(n) for n in layouts.KmNote}, **{k.name: int(k) for k in layouts.FdKind},
             "KM_SNAPSHOT_FORMAT": layouts.KM_SNAPSHOT_FORMAT, "KM_SNAPSHOT_LIVE": layouts.KM_SNAPSHOT_LIVE,
             "KM_THREAD_IN_SYSCALL": layouts.KM_THREAD_IN_SYSCALL, "KM_VMA_BACKED": layouts.KM_VMA_BACKED,
             "KM_VMA_FILE": layouts.KM_VMA_FILE, "KM_VMA_SHARED": layouts.KM_VMA_SHARED,
             "KM_VMA_HOST": layouts.KM_VMA_HOST, "KM_VMA_SMALL_PAGES": layouts.KM_VMA_SMALL_PAGES,
             "KM_VMA_COPY": layouts.KM_VMA_COPY,
             "KM_SYSCALL_SNAPSHOT": KM_NUMBERS["km_snapshot"], "KM_SNAPSHOT_TAKEN": 0, "KM_SNAPSHOT_RESUMED": 1}
STRINGS = {"owner": 'strcmp(KM_NOTE_OWNER_PREFIX, "KM_")', "magic": 'strcmp(KM_SNAPSHOT_MAGIC, "KMSNAP")'}


@pytest.fixture(scope="module")
def c_values(tmp_path_factory) -> dict[str, int]:
    source = c_program(["string.h", "km/snapshot.h", "km/snapshot_format.h"], LAYOUTS,
                       {**{f"const {name}": name for name in CONSTANTS}, **STRINGS})
    return compiled(tmp_path_factory.mktemp("snapshot_layouts"), source, ["-I", str(INCLUDE)])


def test_every_note_layout_and_constant_matches_the_published_header(c_values):
    python = {**python_values(LAYOUTS), **{f"const {name}": value for name, value in CONSTANTS.items()}}
    wrong = mismatches(python, c_values)
    assert not wrong, f"python value vs C value: {wrong}"
    assert c_values["owner"] == 0 and c_values["magic"] == 0
    assert layouts.KM_NOTE_OWNER_PREFIX == b"KM_" and layouts.KM_SNAPSHOT_MAGIC == b"KMSNAP"
    assert all(kind.owner.startswith(layouts.KM_NOTE_OWNER_PREFIX) for kind in layouts.KmNote)


def test_thread_registers_are_the_kvm_regs_order():
    assert layouts.km_thread.regs.size == 8 * len(KVM_REGS) == 8 * 18


def test_the_start_up_core_check_restates_the_elf_layouts():
    """monitor/snapshot/__init__.py spells the ELF core header out so that km's start-up does not import
    kdbg.core.layouts for it; these are the values it must agree with."""
    from kdbg.core import layouts as elf
    from monitor.snapshot import ELF_CORE_HEAD, ET_CORE
    assert ELF_CORE_HEAD == elf.ELFMAG + bytes([elf.ELFCLASS64, elf.ELFDATA2LSB])
    assert ET_CORE == elf.ET_CORE.to_bytes(2, "little")


def test_the_sigaction_note_holds_every_signal_km_has():
    from monitor.signals.delivery import NSIG
    assert layouts.SIGACTION_COUNT == NSIG


def test_variable_parts_are_checked():
    packed = b"".join(bytes(layouts.km_sigaction(i, 0, 0, 0)) for i in range(3))
    assert [a.handler for a in layouts.array_of(layouts.km_sigaction, packed, 3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        layouts.array_of(layouts.km_sigaction, packed, 4)
    assert layouts.strings(b"a\0bc\0rest", 2) == [b"a", b"bc"]
    with pytest.raises(ValueError):
        layouts.strings(b"a\0b", 2)


def test_the_python_api_uses_kms_call_and_values():
    """include/python/km/snapshots.py runs in the payload's interpreter (it cannot import monitor): its copies of
    the call's number and return values must match km's."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("km_snapshots", INCLUDE / "python" / "km" / "snapshots.py")
    api = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(api)
    from monitor.snapshot.take import RESUMED
    assert api.KM_SYSCALL_SNAPSHOT == KM_NUMBERS["km_snapshot"]
    assert (api.TAKEN, api.RESUMED) == (0, RESUMED)
