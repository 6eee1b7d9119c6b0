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


def hooked_env(where: Path, hook: str, extra: dict[str, str]) -> dict[str, str]:
    """The additions to km's environment that load `hook` (Python source) into km's interpreter as its
    sitecustomize (written into `where`), with `extra`: a test's probe on km's internals."""
    (where / "sitecustomize.py").write_text(hook)
    return {**extra, "PYTHONPATH": os.pathsep.join([str(where), str(ROOT), os.environ.get("PYTHONPATH", "")])}


def run_km(*args: str | Path, timeout: float = 60, env: dict[str, str] | None = None, cwd: str | Path | None = None,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """km ARGS... to completion; returns the CompletedProcess with bytes stdout/stderr."""
    return subprocess.run([*KM, *map(str, args)], capture_output=True, timeout=timeout, env=km_env(env), cwd=cwd,
                          input=input)


def spawn_km(*args: str | Path, env: dict[str, str] | None = None, cwd: str | Path | None = None,
             **kw) -> subprocess.Popen:
    return subprocess.Popen([*KM, *map(str, args)], env=km_env(env), cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def run_both(exe: str | Path, *args: str, env: dict[str, str] | None = None, cwd: str | Path | None = None,
             timeout_s: float = 60) -> list[tuple[int, str, str]]:
    """[(status, stdout, stderr) under km, the same natively], both run at the same time (differential tests)."""
    procs = [subprocess.Popen([*KM, str(exe), *args], env=km_env(env), cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE),
             subprocess.Popen([str(exe), *args], env=dict(os.environ, **(env or {})), cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)]
    try:
        return [(p.returncode, out.decode(), err.decode())
                for p in procs for out, err in [p.communicate(timeout=timeout_s)]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
