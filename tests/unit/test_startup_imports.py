"""km's start-up imports (issue 10): what a plain run loads is paid by every km start and every exec inside a
payload, so modules it never needs stay out. Checked in a fresh interpreter, by module name, never by time."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# what `python -m monitor.cli payload` imports before the payload starts (monitor.cli.main's own imports included)
START_UP = "import monitor.cli, monitor.process.payload, monitor.process.fork, monitor.memory.vdso"


def test_start_up_builds_no_dataclass() -> None:
    """A @dataclass compiles its generated methods at import (0.3-0.8 ms a class) and dataclasses brings inspect,
    ast and dis (~4 ms): the records on the start-up path are plain classes (monitor/record.py) or NamedTuples."""
    code = f"import sys; {START_UP}; print(sorted({{'dataclasses', 'inspect', 'ast'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert out == "[]"


def test_the_stub_builds_no_dataclass() -> None:
    """km -g imports the stub after its port listens and before it can answer gdb: its records are NamedTuples or
    plain classes, so that wait does not pay for dataclasses, inspect and ast (~20 ms of CPU here)."""
    code = f"import sys; {START_UP}; import kdbg.rsp.server; print(sorted({{'dataclasses', 'inspect', 'ast'}} & " \
           "set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert out == "[]"


def test_start_up_leaves_out_what_only_a_debugger_or_a_trace_needs() -> None:
    """The fast tier's twin of tests/integration/test_startup_imports.py (which lists a real run's modules): the
    start-up modules import neither logging (KM_VERBOSE off: kdbg.tracelog's no-op loggers), socket, ctypes, the
    debugger's contract and stub, nor the rarer syscall families (they register at their first call)."""
    unwanted = ["logging", "socket", "ctypes", "kdbg.target", "kdbg.rsp", "kdbg.core", "monitor.debug.live_target",
                "monitor.syscalls.net", "monitor.syscalls.ipc", "elftools", "capstone", "subprocess"]
    code = f"import sys; {START_UP}; print(sorted(set({unwanted!r}) & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert out == "[]"
