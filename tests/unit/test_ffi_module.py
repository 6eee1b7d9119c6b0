"""monitor/kvm/ffi_module.py: the generated cffi module is made once, used afterwards, remade when the cdef changes,
written to the next place when one is read-only, and the cdef is parsed in-line when nothing is writable."""
from __future__ import annotations

import _cffi_backend
import cffi

from monitor.kvm import ffi_module

CDEF = "struct pair { uint32_t a; uint64_t b; }; int getpid(void);"


def test_made_once_then_loaded(tmp_path):
    first = ffi_module.load("t", CDEF, places=[str(tmp_path)])
    assert isinstance(first, cffi.FFI)                       # parsed, and the module written
    made = list(tmp_path.glob("_t_*.py"))
    assert len(made) == 1
    again = ffi_module.load("t", CDEF, places=[str(tmp_path)])
    assert isinstance(again, _cffi_backend.FFI)              # loaded without parsing
    assert again.sizeof("struct pair") == 16 and again.offsetof("struct pair", "b") == 8
    assert again.dlopen(None).getpid() > 0


def test_changed_cdef_makes_a_new_module(tmp_path):
    ffi_module.load("t", CDEF, places=[str(tmp_path)])
    changed = CDEF.replace("uint64_t b", "uint32_t b")
    ffi = ffi_module.load("t", changed, places=[str(tmp_path)])
    assert ffi.sizeof("struct pair") == 8                    # never the stale module
    assert len(list(tmp_path.glob("_t_*.py"))) == 1          # the old one is gone
    assert ffi_module.load("t", changed, places=[str(tmp_path)]).sizeof("struct pair") == 8


def test_read_only_place_then_cache_then_in_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    unwritable = str(blocker / "sub")                       # cannot be created, even by root
    cache = tmp_path / "cache"
    ffi_module.load("t", CDEF, places=[unwritable, str(cache)])
    assert len(list(cache.glob("_t_*.py"))) == 1
    assert isinstance(ffi_module.load("t", CDEF, places=[unwritable, str(cache)]), _cffi_backend.FFI)
    in_line = ffi_module.load("t", CDEF, places=[unwritable])
    assert isinstance(in_line, cffi.FFI) and in_line.sizeof("struct pair") == 16
