"""The target description XML (qXfer:features:read:target.xml), generated from kdbg.arch.x86_64.REGISTERS.

gdb validates the register names of each feature against its own amd64 expectations (amd64-tdep.c), so the
features are named as in gdb's features/i386/64bit-*.xml and the non-builtin types those files define
(i386_eflags, i386_mxcsr, vec128 and its vector types) are declared here once.
Spec: https://sourceware.org/gdb/current/onlinedocs/gdb.html/Target-Descriptions.html
"""
from __future__ import annotations

from functools import lru_cache

from kdbg.arch import x86_64 as arch

ARCHITECTURE = "i386:x86-64"
OSABI = "GNU/Linux"

# (name, start bit) of the documented flag bits; gdb prints `eflags` as "[ IF ZF ]" from these.
_EFLAGS_FIELDS = (("CF", 0), ("", 1), ("PF", 2), ("AF", 4), ("ZF", 6), ("SF", 7), ("TF", 8), ("IF", 9),
                  ("DF", 10), ("OF", 11), ("NT", 14), ("RF", 16), ("VM", 17), ("AC", 18), ("VIF", 19),
                  ("VIP", 20), ("ID", 21))
_MXCSR_FIELDS = (("IE", 0), ("DE", 1), ("ZE", 2), ("OE", 3), ("UE", 4), ("PE", 5), ("DAZ", 6), ("IM", 7),
                 ("DM", 8), ("ZM", 9), ("OM", 10), ("UM", 11), ("PM", 12), ("FZ", 15))
# vec128 as gdb 13 declares it in 64bit-sse.xml: (vector type id, element type, count) then union fields.
_VECTORS = (("v8bf16", "bfloat16", 8), ("v4f", "ieee_single", 4), ("v2d", "ieee_double", 2),
            ("v16i8", "int8", 16), ("v8i16", "int16", 8), ("v4i32", "int32", 4), ("v2i64", "int64", 2))
_VEC128_FIELDS = (("v8_bfloat16", "v8bf16"), ("v4_float", "v4f"), ("v2_double", "v2d"), ("v16_int8", "v16i8"),
                  ("v8_int16", "v8i16"), ("v4_int32", "v4i32"), ("v2_int64", "v2i64"), ("uint128", "uint128"))


_XML_ATTR_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                   "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def quoteattr(value: str) -> str:
    """An XML attribute value, quoted: xml.sax.saxutils.quoteattr's job without its import (xml.sax brings
    urllib.request, http.client, email and ssl: ~15 ms of every `km -g` start)."""
    return '"' + value.translate(_XML_ATTR_ESCAPES) + '"'


def _flags(type_id: str, fields: tuple[tuple[str, int], ...]) -> list[str]:
    lines = [f'  <flags id="{type_id}" size="4">']
    lines += [f'    <field name="{name}" start="{bit}" end="{bit}"/>' for name, bit in fields]
    return lines + ["  </flags>"]


def _vec128() -> list[str]:
    lines = [f'  <vector id="{vid}" type="{elem}" count="{count}"/>' for vid, elem, count in _VECTORS]
    lines.append('  <union id="vec128">')
    lines += [f'    <field name="{name}" type="{type_}"/>' for name, type_ in _VEC128_FIELDS]
    return lines + ["  </union>"]


# Types a feature needs declared before its registers, keyed by the type name the arch table uses.
_TYPE_DECLS = {"i386_eflags": lambda: _flags("i386_eflags", _EFLAGS_FIELDS),
               "i386_mxcsr": lambda: _flags("i386_mxcsr", _MXCSR_FIELDS),
               "vec128": _vec128,
               "v2ui128": lambda: ['  <vector id="v2ui128" type="uint128" count="2"/>']}


def _reg_line(reg: arch.Register) -> str:
    # No `group` attribute: gdb's own 64bit-*.xml leave groups to amd64(-linux)_register_reggroup_p, which
    # is what makes `info registers` list fs_base/gs_base and `info all-registers` the rest, as natively.
    attrs = [("name", reg.name), ("bitsize", str(reg.bits)), ("type", reg.type), ("regnum", str(reg.regnum))]
    return "  <reg " + " ".join(f"{key}={quoteattr(value)}" for key, value in attrs) + "/>"


@lru_cache(maxsize=1)
def target_xml() -> bytes:
    """The whole description in one document (no xi:include), features in table order."""
    lines = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', "<target>",
             f"<architecture>{ARCHITECTURE}</architecture>", f"<osabi>{OSABI}</osabi>"]
    for feature in arch.FEATURES:
        regs = [r for r in arch.REGISTERS if r.feature == feature]
        lines.append(f'<feature name="{feature}">')
        for type_name in dict.fromkeys(r.type for r in regs):
            if type_name in _TYPE_DECLS:
                lines += _TYPE_DECLS[type_name]()
        lines += [_reg_line(r) for r in regs]
        lines.append("</feature>")
    lines.append("</target>")
    return ("\n".join(lines) + "\n").encode()


def read_annex(annex: str) -> bytes:
    """The document gdb asks for by name; only target.xml exists. KeyError for anything else."""
    if annex != "target.xml":
        raise KeyError(annex)
    return target_xml()
