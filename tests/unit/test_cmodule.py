"""kdbg/cmodule.py: km's hand-written C modules built into a shared cache (~/.cache/km), where several km versions
(an installed one, a checkout, a bundle) and several km processes meet."""
from __future__ import annotations

import multiprocessing
import os

import pytest

from kdbg.cmodule import CModule

CDEF = "int km_test_answer(void);"


def _module(answer: int) -> CModule:
    return CModule("_km_cmoduletest_", CDEF, f"int km_test_answer(void) {{ return {answer}; }}")


@pytest.fixture(scope="module")
def can_build(tmp_path_factory):
    if _module(1).build(str(tmp_path_factory.mktemp("probe"))) is None:
        pytest.skip("no C compiler or Python headers")


def test_another_versions_build_is_kept(can_build, tmp_path) -> None:
    """Two km versions sharing the cache (different sources, so different names): building one must not delete the
    other's module, which that km may be loading at that moment (it would then run its Python twin) and would
    compile again at its next start, each version deleting the other's in turn."""
    old, new = _module(41), _module(42)
    assert old.build(str(tmp_path)) and new.build(str(tmp_path))
    for module in (old, new):
        path = module.path(str(tmp_path), module.stem())
        assert os.path.exists(path), f"{os.path.basename(path)} was deleted by the other version's build"


def test_compile_flags_are_part_of_the_name() -> None:
    """A change of flags alone (e.g. -O2 to -O3) must not load the build made with the old ones."""
    source = "int km_test_answer(void) { return 1; }"
    assert CModule("_km_cmoduletest_", CDEF, source, ("-O2",)).stem() != \
        CModule("_km_cmoduletest_", CDEF, source, ("-O3",)).stem()


def _build_and_call(place: str) -> int:
    module = _module(43)
    os.environ["XDG_CACHE_HOME"] = place
    loaded = module.load()
    return -1 if loaded is None else loaded[1].km_test_answer()


def test_concurrent_first_builds(can_build, tmp_path) -> None:
    """Several km processes starting at once with no module built yet: each gets the compiled module (each builds
    apart and renames), and the cache holds one module and no marker of failure."""
    with multiprocessing.get_context("fork").Pool(3) as pool:
        assert pool.map(_build_and_call, [str(tmp_path)] * 3) == [43, 43, 43]
    assert sorted(os.listdir(tmp_path / "km")) == [os.path.basename(_module(43).path(str(tmp_path / "km"),
                                                                                     _module(43).stem()))]


def test_an_unwritable_cache_gives_none_and_no_output(can_build, tmp_path, monkeypatch, capfd) -> None:
    """A cache km cannot write (here its directory is a file, which root cannot write into either): no module (the
    twin runs), nothing on stdout or stderr, and the next load gives up as quietly."""
    (tmp_path / "km").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert _module(44).load() is None and _module(44).load() is None
    assert capfd.readouterr() == ("", "")


def test_unused_builds_of_other_sources_go(can_build, tmp_path) -> None:
    """The cache does not grow with every edit: a build of another source not loaded for UNUSED_S is deleted."""
    from kdbg import cmodule
    old, new = _module(45), _module(46)
    old_path = old.build(str(tmp_path))
    long_ago = os.stat(old_path).st_mtime - cmodule.UNUSED_S - 60
    os.utime(old_path, (long_ago, long_ago))
    assert new.build(str(tmp_path)) and not os.path.exists(old_path)


def test_an_old_build_loaded_lately_is_kept(can_build, tmp_path) -> None:
    """Age is the last load (atime: dlopen reads the file), not the build: a km version built long ago and started
    every day keeps its module when another version builds."""
    from kdbg import cmodule
    old, new = _module(47), _module(48)
    old_path = old.build(str(tmp_path))
    long_ago = os.stat(old_path).st_mtime - cmodule.UNUSED_S - 60
    os.utime(old_path, (os.stat(old_path).st_atime, long_ago))      # built long ago, loaded just now
    assert new.build(str(tmp_path)) and os.path.exists(old_path)
