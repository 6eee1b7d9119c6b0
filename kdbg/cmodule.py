"""km's hand-written C modules (cffi API mode): built once into the user's cache, then loaded without a C parse.

A module's file name carries a hash of its declarations, source and compile flags, cffi's version and Python's
extension suffix, so an edit never loads a stale build. The place is ~/.cache/km ($XDG_CACHE_HOME/km), else beside
this file. A build that fails (no C compiler, no Python headers, a read-only cache) leaves a `.failed` marker, so
later starts do not try again and the caller uses its Python twin. tools/install.sh builds each module ahead (`python3 -m <module>`).
"""
from __future__ import annotations

import os
import sys
import zlib
from typing import Any, NoReturn

UNUSED_S = 30 * 24 * 3600      # a build of another source unused this long is deleted by the next build


class CModule:
    """One hand-written C module: its declarations (cdef), its source, how to compile it; where its build lives."""

    def __init__(self, prefix: str, cdef: str, source: str, compile_args: tuple[str, ...] = ("-O2",)) -> None:
        self.prefix, self.cdef, self.source, self.compile_args = prefix, cdef, source, compile_args

    def stem(self) -> str:
        import _cffi_backend
        key = zlib.crc32("\0".join((self.cdef, self.source, *self.compile_args)).encode())
        return f"{self.prefix}{key:08x}_{_cffi_backend.__version__.replace('.', '_')}"

    @staticmethod
    def place() -> str:
        cache = os.environ.get("XDG_CACHE_HOME") or (os.path.join(os.environ["HOME"], ".cache")
                                                       if os.environ.get("HOME") else "")
        return os.path.join(cache, "km") if cache else os.path.dirname(os.path.abspath(__file__))

    @staticmethod
    def path(place: str, stem: str) -> str:
        from importlib.machinery import EXTENSION_SUFFIXES   # (frozen: sysconfig would cost ms of a start)
        return os.path.join(place, stem + EXTENSION_SUFFIXES[0])

    def load(self, *, build_missing: bool = True) -> tuple[Any, Any] | None:
        """The compiled module's (ffi, lib), or None: built first when missing (and not known to fail here)."""
        stem, place = self.stem(), self.place()
        path = self.path(place, stem)
        if not os.path.exists(path):
            if not build_missing or os.path.exists(os.path.join(place, stem + ".failed")) or self.build(place) is None:
                return None
        try:
            from importlib.machinery import ExtensionFileLoader, ModuleSpec
            loader = ExtensionFileLoader(stem, path)
            spec = ModuleSpec(stem, loader, origin=path)
            module = loader.create_module(spec)
            loader.exec_module(module)
            return module.ffi, module.lib
        except Exception:  # noqa: BLE001 - a broken file: the caller's Python twin runs, as without a compiler
            return None

    def _forget_unused(self, place: str, stem: str) -> None:
        """Delete this module's builds of other sources that nobody has loaded for UNUSED_S (atime: dlopen maps the
        file, which marks it read). Not every other build: km versions that share the cache (an installed one, a
        checkout, a bundle) each keep theirs, which another version's build deleted, maybe while it was being
        loaded (its Python twin ran), and which its next start compiled again."""
        import time
        too_old = time.time() - UNUSED_S
        for old in os.listdir(place):
            if old.startswith(self.prefix) and not old.startswith(stem):
                old = os.path.join(place, old)
                try:
                    if os.stat(old).st_atime < too_old:
                        os.unlink(old)
                except OSError:
                    pass

    def build(self, place: str | None = None) -> str | None:
        """Compile the module into `place` (the cache by default); its path, or None (then a `.failed` marker
        spares later starts the attempt). Concurrent first starts may race: each builds apart and renames."""
        import tempfile
        place = place or self.place()
        stem = self.stem()
        try:
            os.makedirs(place, exist_ok=True)
            import cffi
            ffi = cffi.FFI()
            ffi.cdef(self.cdef)
            ffi.set_source(stem, self.source, extra_compile_args=list(self.compile_args))
            with tempfile.TemporaryDirectory(dir=place) as tmp:
                built = ffi.compile(tmpdir=tmp, verbose=False)
                path = self.path(place, stem)
                os.replace(built, path)
            self._forget_unused(place, stem)
            return path
        except Exception as exc:  # noqa: BLE001 - no compiler, no headers, read-only cache: the Python twin runs
            try:
                with open(os.path.join(place, stem + ".failed"), "w") as f:
                    f.write(f"{type(exc).__name__}: {exc}\n")
            except OSError:
                pass
            return None

    def install(self, module: str, without: str) -> NoReturn:
        """`python3 -m <module>` (tools/install.sh): build into the cache and print the path, or say on stderr in
        one line what runs `without` it; status 0 either way (km works without the module, only slower)."""
        where = self.build()
        if where:
            print(where)
        else:       # stderr: tools/install.sh keeps only this line
            print(f"{module}: not built (no C compiler or Python headers?): {without}", file=sys.stderr)
        sys.exit(0)
