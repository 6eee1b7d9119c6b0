"""The one error type of kdbg.core: a core file that cannot be written or read.

Its message is one line naming the file and the OS or format problem, ready for the monitor's
`km: ./prog.km: killed by SIGSEGV (core not written: <message>)` (docs/HOUSE-STYLE.md 2.6).
"""
from __future__ import annotations


class CoreError(Exception):
    """A core file could not be written (no space, no permission...) or is not a readable x86-64 core."""

    def __init__(self, path: object, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = str(path), problem
