"""The target description: its regnums and `g` offsets match kdbg.arch.x86_64, and gdb itself agrees."""
from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from kdbg.arch.x86_64 import REGISTERS
from kdbg.rsp import tdesc
from kdbg.rsp.registers import decode_registers, encode_registers

BUILTIN_TYPES = {"int", "int32", "int64", "uint64", "uint128", "code_ptr", "data_ptr", "i387_ext", "bfloat16", "ieee_single",
                 "ieee_double", "int8", "int16"}


def g_offsets() -> dict[str, int]:
    offsets = itertools.accumulate((r.size for r in REGISTERS), initial=0)
    return {r.name: off for r, off in zip(REGISTERS, offsets)}


def test_every_register_once_with_table_regnum_and_size() -> None:
    root = ET.fromstring(tdesc.target_xml())
    regs = root.findall("./feature/reg")
    assert [r.get("name") for r in regs] == [r.name for r in REGISTERS]
    for elem, reg in zip(regs, REGISTERS):
        assert int(elem.get("regnum")) == reg.regnum
        assert int(elem.get("bitsize")) == reg.bits


def test_registers_sit_in_their_features() -> None:
    root = ET.fromstring(tdesc.target_xml())
    for feature in root.findall("feature"):
        for elem in feature.findall("reg"):
            assert next(r for r in REGISTERS if r.name == elem.get("name")).feature == feature.get("name")


def test_every_type_is_builtin_or_declared() -> None:
    root = ET.fromstring(tdesc.target_xml())
    declared = {e.get("id") for e in root.iter() if e.tag in ("flags", "union", "vector", "struct")}
    used = {e.get("type") for e in root.iter() if e.get("type")}
    assert used <= declared | BUILTIN_TYPES
    assert {"i386_eflags", "i386_mxcsr", "vec128"} <= declared


def test_g_layout_round_trip() -> None:
    values = {r.name: (0x0102030405060708090A0B0C0D0E0F10 * (r.regnum + 1)) & ((1 << r.bits) - 1) for r in REGISTERS}
    data = encode_registers(values)
    assert len(data) == 2 * sum(r.size for r in REGISTERS)
    offsets = g_offsets()
    rip = REGISTERS[16]
    assert data[2 * offsets["rip"]:2 * offsets["rip"] + 16] == values["rip"].to_bytes(rip.size, "little").hex().encode()
    assert decode_registers(data) == values


def test_missing_register_is_unavailable() -> None:
    data = encode_registers({"rax": 1})
    assert data[:16] == b"0100000000000000" and data[16:32] == b"x" * 16
    assert decode_registers(data) == {"rax": 1}


def test_document_is_read_by_annex() -> None:
    assert tdesc.read_annex("target.xml") == tdesc.target_xml()
    with pytest.raises(KeyError):
        tdesc.read_annex("i386-64bit.xml")


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb not installed")
def test_gdb_maps_remote_numbers_and_offsets_like_the_table(tmp_path) -> None:
    """Differential: gdb's own reading of the XML (maint print remote-registers) against the arch table."""
    path = tmp_path / "target.xml"
    path.write_bytes(tdesc.target_xml())
    out = subprocess.run(["gdb", "-nx", "-batch", "-ex", f"set tdesc filename {path}",
                          "-ex", "maint print remote-registers"], capture_output=True, text=True, timeout=60)
    rows = {}
    for line in out.stdout.splitlines():
        m = re.match(r"\s*(\w+)\s+\d+\s+\d+\s+\d+\s+\d+\s+\S+\s+(\d+)\s+(\d+)\s*$", line)
        if m:
            rows[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    offsets = g_offsets()
    assert rows == {r.name: (r.regnum, offsets[r.name]) for r in REGISTERS}, out.stdout + out.stderr


def test_xsave_images_in_either_layout_give_the_same_registers() -> None:
    """An AVX-512 register written into Intel's layout and into AMD Zen 4's reads back the same from each, from
    the offsets each layout gives (KVM_GET_XSAVE uses the CPU's; kmcore Intel's, which gdb 13 reads)."""
    from kdbg.arch import x86_64
    if not x86_64.HAS_AVX512:
        return
    values = {"k3": 0xA5A5, "zmm17h": (1 << 255) | 7, "xmm16": 0x42, "ymm31h": 9, "ymm2h": 5}
    for layout in (x86_64.INTEL_LAYOUT, x86_64.ZEN4_LAYOUT):
        image = bytearray(x86_64.XSAVE_AVX512_END)
        x86_64.registers_to_xsave(values, image, layout)
        got = x86_64.xsave_to_registers(bytes(image), layout)
        assert {k: got[k] for k in values} == values
        assert got["zmm0h"] == 0 and got["k0"] == 0
    assert x86_64.guess_xsave_layout(bytes(2432)) is x86_64.ZEN4_LAYOUT
