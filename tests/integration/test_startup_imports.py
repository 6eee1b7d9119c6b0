"""What a real km run imports (issue 10): every module is paid by every km start and every exec inside a payload,
so a plain run leaves out what only a debugger, a core dump, a snapshot or a trace needs. The modules are listed
by the run itself (km's main with os._exit wrapped), by name, never by time."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.km import km_env

# km's main as `python -m monitor.cli ARGS` runs it, but the modules it loaded are written to MODULES_OUT at its exit
RUNNER = """
import json, os, sys
import monitor.cli
_exit = os._exit
def listed_exit(status):
    with open(os.environ["MODULES_OUT"], "w") as f:
        json.dump(sorted(sys.modules), f)
    _exit(status)
os._exit = listed_exit
monitor.cli.main(["km", *sys.argv[1:]])
"""
# (module, why a plain run must not import it)
NOT_IN_A_PLAIN_RUN = [
    ("logging", "KM_VERBOSE off: km's loggers are kdbg.tracelog's no-ops (logging brings traceback, tokenize...)"),
    ("socket", "only the stub, fork links and the management socket need it"),
    ("ctypes", "siginfos are packed with struct (kdbg/arch/linux.py); the ctypes structure is for signalfd and cores"),
    ("kdbg.target", "the debugger's contract (its enums and protocols): the stub and cores only"),
    ("kdbg.rsp", "the gdb stub: -g / --gdb_listen only"),
    ("kdbg.core", "the core writer and reader: a crash or --core only"),
    ("monitor.debug.live_target", "the debugger's target: -g only"),
    ("monitor.snapshot.take", "snapshots: km_snapshot_take or km-cli only"),
    ("monitor.mgmt", "the management socket: --mgtpipe only"),
    ("monitor.oci", "the OCI runtime is its own program"),
    ("monitor.syscalls.net", "the rarer syscall families register at their first call (syscalls/table.py)"),
    ("monitor.syscalls.ipc", "the rarer syscall families register at their first call (syscalls/table.py)"),
    ("elftools", "pyelftools: the loader parses headers itself"),
    ("capstone", "disassembly: the debugger only"),
    ("subprocess", "km starts no process to run a payload"),
    ("dataclasses", "generates code at import; start-up records are plain classes (monitor/record.py)"),
]


def modules_of_run(tmp_path, *args: str) -> set[str]:
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", RUNNER, *args], capture_output=True, timeout=60, cwd=tmp_path,
                            env=km_env({"MODULES_OUT": str(out), "KM_VERBOSE": "0"}))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return set(json.loads(out.read_text()))


@pytest.fixture(scope="module")
def plain_run(payload, tmp_path_factory) -> set[str]:
    return modules_of_run(tmp_path_factory.mktemp("plain"), str(payload("run_hello.c", "musl")))


@pytest.mark.parametrize("module,reason", NOT_IN_A_PLAIN_RUN, ids=[m for m, _ in NOT_IN_A_PLAIN_RUN])
def test_plain_run_leaves_out(plain_run, module, reason):
    loaded = sorted(m for m in plain_run if m == module or m.startswith(module + "."))
    assert not loaded, f"a plain run imported {loaded}: {reason}"
