"""km's start-up imports (issue 10): what a plain run loads is paid by every km start and every exec inside a
payload, so modules it never needs stay out. Checked in a fresh interpreter, by module name, never by time."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.startup import unwanted

ROOT = Path(__file__).resolve().parents[2]
# what `python -m monitor.cli payload` imports before the payload starts (monitor.cli.main's own imports included)
START_UP = "import monitor.cli, monitor.process.payload, monitor.process.fork, monitor.memory.vdso"


def test_the_stub_builds_no_dataclass() -> None:
    """km -g imports the stub after its port listens and before it can answer gdb: its records are NamedTuples or
    plain classes, so that wait does not pay for dataclasses, inspect and ast (~20 ms of CPU here)."""
    code = f"import sys; {START_UP}; import kdbg.rsp.server, kdbg.stub_banner, monitor.debug.live_target; " \
           "print(sorted({'dataclasses', 'inspect', 'ast'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.strip()
    assert out == "[]"


def test_start_up_leaves_out_what_only_a_debugger_or_a_trace_needs() -> None:
    """The fast tier's twin of tests/integration/test_startup_imports.py (which lists a real run's modules), with
    its list (harness/startup.py): e.g. neither logging (KM_VERBOSE off: kdbg.tracelog's no-op loggers), socket,
    ctypes, the debugger's contract and stub, the rarer syscall families nor dataclasses (a @dataclass compiles
    its methods at import, and dataclasses brings inspect and ast: start-up records are plain classes)."""
    code = f"import json, sys; {START_UP}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout
    assert unwanted(set(json.loads(out))) == []
