"""Addresses in a built payload: its symbol table (.symtab) read with pyelftools, as gdb would find them."""
from __future__ import annotations

from pathlib import Path

from elftools.elf.elffile import ELFFile


def symbol_address(exe: str | Path, name: str) -> int:
    """st_value of the symbol `name` (a function or a global) in the payload `exe`."""
    with open(exe, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        found = symtab.get_symbol_by_name(name) if symtab is not None else None
    if not found:
        raise KeyError(f"no symbol {name} in {exe}")
    return found[0]["st_value"]
