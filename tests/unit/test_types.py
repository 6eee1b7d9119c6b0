"""The type-check gate: mypy over kdbg and monitor (configured in pyproject.toml) reports nothing.

A typed seam only stays typed if something checks it; mypy also finds what the tests miss (a name used but never
imported on a rarely taken branch)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_mypy_is_clean() -> None:
    pytest.importorskip("mypy", reason="mypy is installed by tools/install.sh (the test extra)")
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
