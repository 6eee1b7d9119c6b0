"""ctypes layouts as gcc sees them, for the tests that hold a Python layout against its C header.

A C program is generated from the ctypes declarations themselves (so a field added to a layout is checked without
touching a test): it prints the size of each structure, the offset and size of each field (nested structures and
unions included) and any other C expression a test names, which the test compares with Python's values.
"""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

PRINT = '#define P(label, value) printf("%s=%ld\\n", label, (long)(value))'


def fields(layout: type, prefix: str = "", base: int = 0) -> Iterator[tuple[str, int, int]]:
    """(dotted path, offset, size) of every field, nested structures and unions included."""
    for name, ctype in layout._fields_:
        descriptor = getattr(layout, name)
        path = prefix + name
        yield path, base + descriptor.offset, descriptor.size
        if hasattr(ctype, "_fields_"):
            yield from fields(ctype, path + ".", base + descriptor.offset)


def python_values(layouts: dict[type, str]) -> dict[str, int]:
    """Each layout's size and its fields' offsets and sizes, keyed as c_values() prints them."""
    values = {}
    for layout, c_type in layouts.items():
        values[f"sizeof {c_type}"] = ctypes.sizeof(layout)
        for path, offset, size in fields(layout):
            values[f"offsetof {c_type} {path}"] = offset
            values[f"sizeof {c_type} {path}"] = size
    return values


def c_program(headers: list[str], layouts: dict[type, str], expressions: dict[str, str],
              preamble: list[str] | None = None) -> str:
    """The C side of python_values(), plus `label=value` for each of `expressions` (label -> C expression)."""
    lines = [f"#include <{header}>" for header in ["stddef.h", "stdio.h", *headers]] + [PRINT, *(preamble or []),
                                                                                        "int main(void) {"]
    for layout, c_type in layouts.items():
        lines.append(f'P("sizeof {c_type}", sizeof({c_type}));')
        for path, _, _ in fields(layout):
            lines.append(f'P("offsetof {c_type} {path}", offsetof({c_type}, {path}));')
            lines.append(f'P("sizeof {c_type} {path}", sizeof((({c_type} *)0)->{path}));')
    lines += [f'P("{label}", {expression});' for label, expression in expressions.items()]
    return "\n".join([*lines, "return 0; }"]) + "\n"


def c_values(work: Path, source: str, gcc_options: list[str] | None = None) -> dict[str, int]:
    """What the program c_program() wrote prints, compiled with gcc in `work` (the test is skipped without gcc)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is installed by tools/install.sh")
    (work / "layouts.c").write_text(source)
    subprocess.run(["gcc", *(gcc_options or []), "-o", str(work / "layouts"), str(work / "layouts.c")], check=True,
                   capture_output=True)
    output = subprocess.run([str(work / "layouts")], check=True, capture_output=True, text=True).stdout
    return {key: int(value) for key, value in (line.split("=", 1) for line in output.splitlines())}


def mismatches(python: dict[str, int], c: dict[str, int]) -> dict[str, tuple[int, int | None]]:
    """Every value Python and C disagree on (or C does not print), as (python, C)."""
    return {key: (value, c.get(key)) for key, value in python.items() if c.get(key) != value}
