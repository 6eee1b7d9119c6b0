"""monitor/snapshot/layouts.py against include/km/snapshot_format.h and include/km/snapshot.h: every field's offset
and size and every constant, as gcc sees them (a C program generated from the ctypes declarations themselves)."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from kdbg.arch.x86_64 import KVM_REGS
from monitor.snapshot import layouts
from monitor.syscalls.km_numbers import KM_NUMBERS

INCLUDE = Path(__file__).resolve().parents[2] / "include"
LAYOUTS = [layouts.km_snapshot, layouts.km_process, layouts.km_thread, layouts.km_xsave, layouts.km_sigaction,
           layouts.km_pending, layouts.km_vma, layouts.km_fd, layouts.km_epoll_item]
CONSTANTS = {**{n.name: int(n) for n in layouts.KmNote}, **{k.name: int(k) for k in layouts.FdKind},
             "KM_SNAPSHOT_FORMAT": layouts.KM_SNAPSHOT_FORMAT, "KM_SNAPSHOT_LIVE": layouts.KM_SNAPSHOT_LIVE,
             "KM_THREAD_IN_SYSCALL": layouts.KM_THREAD_IN_SYSCALL, "KM_VMA_BACKED": layouts.KM_VMA_BACKED,
             "KM_VMA_FILE": layouts.KM_VMA_FILE, "KM_VMA_SHARED": layouts.KM_VMA_SHARED,
             "KM_VMA_HOST": layouts.KM_VMA_HOST, "KM_VMA_SMALL_PAGES": layouts.KM_VMA_SMALL_PAGES,
             "KM_VMA_COPY": layouts.KM_VMA_COPY,
             "KM_SYSCALL_SNAPSHOT": KM_NUMBERS["km_snapshot"], "KM_SNAPSHOT_TAKEN": 0, "KM_SNAPSHOT_RESUMED": 1}


def _python_values() -> dict[str, int]:
    values = {f"const {name}": value for name, value in CONSTANTS.items()}
    for layout in LAYOUTS:
        values[f"sizeof {layout.__name__}"] = ctypes.sizeof(layout)
        for name, _ in layout._fields_:
            values[f"offsetof {layout.__name__} {name}"] = getattr(layout, name).offset
            values[f"sizeof {layout.__name__} {name}"] = getattr(layout, name).size
    return values


def _c_program() -> str:
    lines = ['#include <km/snapshot.h>', '#include <km/snapshot_format.h>', '#include <stddef.h>',
             '#include <stdio.h>', '#include <string.h>',
             '#define P(label, value) printf("%s=%ld\\n", label, (long)(value))', "int main(void) {"]
    for layout in LAYOUTS:
        c_type = f"struct {layout.__name__}"
        lines.append(f'P("sizeof {layout.__name__}", sizeof({c_type}));')
        for name, _ in layout._fields_:
            lines.append(f'P("offsetof {layout.__name__} {name}", offsetof({c_type}, {name}));')
            lines.append(f'P("sizeof {layout.__name__} {name}", sizeof((({c_type} *)0)->{name}));')
    lines += [f'P("const {name}", {name});' for name in CONSTANTS]
    lines += ['P("owner", strcmp(KM_NOTE_OWNER_PREFIX, "KM_"));', 'P("magic", strcmp(KM_SNAPSHOT_MAGIC, "KMSNAP"));',
              "return 0; }"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def c_values(tmp_path_factory) -> dict[str, int]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("snapshot_layouts")
    (work / "layouts.c").write_text(_c_program())
    subprocess.run(["gcc", "-I", str(INCLUDE), "-o", str(work / "layouts"), str(work / "layouts.c")], check=True,
                   capture_output=True)
    output = subprocess.run([str(work / "layouts")], check=True, capture_output=True, text=True).stdout
    return {key: int(value) for key, value in (line.split("=", 1) for line in output.splitlines())}


def test_every_note_layout_and_constant_matches_the_published_header(c_values):
    python = _python_values()
    mismatches = {k: (v, c_values.get(k)) for k, v in python.items() if c_values.get(k) != v}
    assert not mismatches, f"python value vs C value: {mismatches}"
    assert c_values["owner"] == 0 and c_values["magic"] == 0
    assert layouts.KM_NOTE_OWNER_PREFIX == b"KM_" and layouts.KM_SNAPSHOT_MAGIC == b"KMSNAP"
    assert all(kind.owner.startswith(layouts.KM_NOTE_OWNER_PREFIX) for kind in layouts.KmNote)


def test_thread_registers_are_the_kvm_regs_order():
    assert layouts.km_thread.regs.size == 8 * len(KVM_REGS) == 8 * 18


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
