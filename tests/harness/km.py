"""Runs km as a user would: `python -m monitor.cli` with the repo on the path, capturing output and status."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KM = [sys.executable, "-m", "monitor.cli"]


def km_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


def run_km(*args: str | Path, timeout: float = 60, env: dict[str, str] | None = None, cwd: str | Path | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """km ARGS... to completion; returns the CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([*KM, *map(str, args)], capture_output=True, timeout=timeout, env=km_env(env), cwd=cwd,
                          input=input)


def spawn_km(*args: str | Path, env: dict[str, str] | None = None, cwd: str | Path | None = None,
             **kw) -> subprocess.Popen:
    return subprocess.Popen([*KM, *map(str, args)], env=km_env(env), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)
