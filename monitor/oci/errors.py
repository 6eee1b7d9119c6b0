"""RuntimeProblem: every failure km-runtime reports, as one line `km-runtime: <subject>: <problem>` that the
engine shows (on stderr and in the --log file the engine reads, in its format)."""
from __future__ import annotations


class RuntimeProblem(Exception):
    """`subject` names what is at fault (a path, an annotation, a container id), `problem` what is wrong with it."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject, self.problem = subject, problem
