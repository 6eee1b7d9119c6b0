"""What km's start-up must not import (issue 10): each module is paid by every km start and every exec inside a
payload. One list for both tests that check it: tests/unit/test_startup_imports.py (the start-up modules, imported
in a fresh interpreter) and tests/integration/test_startup_imports.py (a real run's modules)."""
from __future__ import annotations

# (module or package, why a plain run must not import it)
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
    ("inspect", "dataclasses' import (with ast and dis, ~4 ms)"),
    ("ast", "dataclasses' import (with inspect and dis)"),
]


def unwanted(modules: set[str]) -> list[str]:
    """The modules of `modules` that NOT_IN_A_PLAIN_RUN names, or that are inside a package it names."""
    names = [m for m, _ in NOT_IN_A_PLAIN_RUN]
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))
