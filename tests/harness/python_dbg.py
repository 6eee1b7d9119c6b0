"""Whether gdb can read CPython's frames here: the interpreter's debug info and gdb's CPython extension (Debian's
python3.X-dbg, which tools/install.sh installs), asked once per test session."""
from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

PYTHON = "/usr/bin/python3"
BREAK_IN_C = "os_getpid"                 # the C function behind os.getpid()


@functools.lru_cache(maxsize=1)
def py_bt_missing() -> str | None:
    """None when `py-bt` works for PYTHON, else why not (a skip reason naming the package)."""
    if not os.path.exists(PYTHON):
        return f"{PYTHON} not installed"
    real = os.path.realpath(PYTHON)
    extension = Path("/usr/share/gdb/auto-load") / f"{real.lstrip('/')}-gdb.py"
    if not extension.exists():
        return f"{extension} not installed (apt-get install {Path(real).name}-dbg)"
    found = subprocess.run(["gdb", "-nx", "-batch", "-ex", f"info functions ^{BREAK_IN_C}$", real],
                           capture_output=True, text=True, timeout=60)
    if "File " not in found.stdout:                              # a debug-info hit, not "Non-debugging symbols"
        return f"no debug info for {real} (apt-get install {Path(real).name}-dbg)"
    return None
