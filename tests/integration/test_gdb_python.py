"""gdb's CPython extension on a Python payload (issue 14): with Debian's python3.11-dbg (the interpreter's debug
info and /usr/share/gdb/auto-load/usr/bin/python3.11-gdb.py), `py-bt`, `py-list`, `py-up` and `py-locals` read the
interpreter's frames through km's stub as they do through gdbserver, and from a kmcore of a Python program that
crashed in C code as from gdb's own core of the same crash run natively. Skipped, with the reason, where the
extension or the debug info is not installed."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from harness.dap import marker_path
from harness.debuggee import Debuggee, run_to
from harness.gdb import free_port
from harness.km import run_km
from harness.markers import line_of
from harness.python_dbg import BREAK_IN_C, PYTHON, py_bt_missing

SRC = "py_frames.py"


@pytest.fixture(autouse=True)
def cpython_gdb_extension() -> None:
    if (why := py_bt_missing()) is not None:
        pytest.skip(why)


def same_text(text: str) -> str:
    """Object addresses differ between runs; the frames, files, lines and names do not."""
    return re.sub(r"0x[0-9a-f]+", "0x…", text)


def python_frames_at_getpid(backend: str, port: int) -> dict[str, str]:
    d = Debuggee(backend, Path(PYTHON), port, args=[marker_path(SRC), "getpid"])
    try:
        d.connect()
        run_to(d, BREAK_IN_C)
        seen = {command: d.gdb.console(command, timeout_s=60) for command in ("py-bt", "py-list")}
        d.gdb.console("py-up")                                   # from the C function's frame to inner()'s
        seen["py-locals"] = d.gdb.console("py-locals", timeout_s=60)
        return seen
    finally:
        d.close()




def test_py_bt_py_list_py_locals_through_the_stub_as_through_gdbserver():
    km = python_frames_at_getpid("km", free_port())
    assert re.search(rf'File "{re.escape(marker_path(SRC))}", line {line_of(SRC, "py_inner")}, in inner\n'
                     rf'.*\n  File ".*", line {line_of(SRC, "py_outer")}, in outer\n', km["py-bt"]), km
    assert f">{line_of(SRC, 'py_inner')}" in km["py-list"].replace(" ", ""), km
    assert "n = 1" in km["py-locals"], km
    native = python_frames_at_getpid("gdbserver", free_port())
    assert {k: same_text(v) for k, v in km.items()} == {k: same_text(v) for k, v in native.items()}


def py_bt_of_core(core: Path) -> str:
    done = subprocess.run(["gdb", "-nx", "-batch", "-ex", "py-bt", PYTHON, str(core)], capture_output=True, text=True,
                          timeout=120)
    return done.stdout[done.stdout.find("Traceback"):]


def test_py_bt_of_a_kmcore_names_the_python_frames_of_a_crash_in_c(tmp_path):
    kmcore = tmp_path / "kmcore"
    done = run_km(f"--coredump={kmcore}", PYTHON, marker_path(SRC), "crash", timeout=120)
    assert done.returncode == 128 + 11, done.stderr.decode()
    km = py_bt_of_core(kmcore)
    assert (f'line {line_of(SRC, "py_crash")}, in inner' in km and f'line {line_of(SRC, "py_outer")}, in outer' in km
            and "in <module>" in km), km
    gcore = tmp_path / "native.core"                             # the same crash, run natively, core by gdb
    subprocess.run(["gdb", "-nx", "-batch", "-ex", "run", "-ex", f"gcore {gcore}", "--args", PYTHON, marker_path(SRC),
                    "crash"], capture_output=True, timeout=120, check=True)
    assert same_text(km) == same_text(py_bt_of_core(gcore))
