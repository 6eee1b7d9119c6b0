"""Line markers in payload sources: `/* @name */`, `// @name` or (Python) `# @name` names the line it stands on."""
from __future__ import annotations

import re
from pathlib import Path

from .build import PAYLOADS

_MARK = re.compile(r"(?:/\*|//|#)\s*@([\w.-]+)")


def line_of(source: str | Path, name: str) -> int:
    """1-based line number of the marker `@name` in the payload source."""
    path = Path(source) if Path(source).is_absolute() else PAYLOADS / source
    for number, text in enumerate(path.read_text().splitlines(), 1):
        if name in _MARK.findall(text):
            return number
    raise KeyError(f"no marker @{name} in {path}")
