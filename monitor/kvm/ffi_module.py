"""cffi's out-of-line ABI mode for km's C declarations: the parsed cdef kept as a generated Python module.

Parsing the cdef (pycparser) took ~30 ms of every km start, and so of every exec inside a payload. The generated
module holds cffi's ready-made type tables and loads in well under a millisecond. It is made at install
(`python3 -m monitor.kvm.abi`) or by the first run that misses it: beside this package, or in the user's cache
when the package directory is read-only. Its name carries a hash of the cdef and cffi's version, so an edited
cdef or another cffi makes a new one and a stale module is never loaded. With no writable place at all the cdef is
parsed at every start, as before (a slower start, never a failure).
"""
from __future__ import annotations

import os
import zlib

import _cffi_backend


def _key(cdef: str) -> str:
    return f"{zlib.crc32(cdef.encode()):08x}_{_cffi_backend.__version__.replace('.', '_')}"


def _places() -> list[str]:
    """Where a generated module is looked for and written, in order: the package, then the user's cache."""
    places = [os.path.dirname(os.path.abspath(__file__))]
    cache = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.environ["HOME"], ".cache")
                                                   if os.environ.get("HOME") else "")
    if cache:
        places.append(os.path.join(cache, "km"))
    return places


def load(name: str, cdef: str, places: list[str] | None = None):
    """The FFI for `cdef`: from its generated module when one exists or can be written, else parsed in-line.

    `name` names the generated file (`_<name>_<key>.py`); `places` replaces the package and cache directories."""
    stem = f"_{name}_{_key(cdef)}"
    places = _places() if places is None else places
    for place in places:
        path = os.path.join(place, stem + ".py")
        if os.path.exists(path):
            try:
                return _import(path, stem).ffi
            except Exception:          # noqa: BLE001 - unreadable or from a broken write: make it again
                pass
    ffi = _parse(cdef)
    for place in places:
        if write(ffi, place, name, stem):
            break
    return ffi


def _import(path: str, stem: str):
    """The module at `path`, through the import system's own (frozen, already loaded) file loader and its
    byte-code cache; importlib.util would add ~3 ms of imports (contextlib, typing...) to every start."""
    from importlib.machinery import SourceFileLoader
    from types import ModuleType
    name = f"monitor.kvm.{stem}"
    loader = SourceFileLoader(name, path)
    module = ModuleType(name)
    module.__file__, module.__loader__ = path, loader
    loader.exec_module(module)
    return module


def _parse(cdef: str):
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(cdef)
    return ffi


def write(ffi, place: str, name: str, stem: str) -> str | None:
    """Write the generated module into `place` (atomically: concurrent first runs may race); its path, or None
    when the directory cannot be written. Older modules of the same name are removed."""
    import glob
    import io
    from cffi.recompiler import make_py_source
    text = io.StringIO()
    make_py_source(ffi, f"monitor.kvm.{stem}", text)
    path = os.path.join(place, stem + ".py")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(place, exist_ok=True)
        with open(tmp, "w") as f:
            f.write(text.getvalue())
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return None
    for old in glob.glob(os.path.join(place, f"_{name}_*.py")):
        if old != path:
            try:
                os.unlink(old)
            except OSError:
                pass
    return path


def install(name: str, cdef: str) -> str | None:
    """Make the generated module beside the package (tools/install.sh); its path, or None if read-only."""
    return write(_parse(cdef), _places()[0], name, f"_{name}_{_key(cdef)}")
