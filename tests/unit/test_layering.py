"""The dependency direction of docs/HOUSE-STYLE.md 2.2, checked by walking every module's imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module `path` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


RULES = [
    # (package, forbidden prefixes)
    ("kdbg/target.py", ("monitor", "kdbg.rsp", "kdbg.core", "kdbg.dap", "kdbg.vcpu_control", "kdbg.breakpoints")),
    ("kdbg/stub_banner.py", ("monitor", "kdbg", "elftools", "capstone", "pygdbmi", "cffi")),
    ("kdbg/tracelog.py", ("monitor", "kdbg")),     # every km module's logger: the stdlib only
    ("kdbg/cmodule.py", ("monitor", "kdbg", "elftools", "capstone", "pygdbmi")),   # builds the C modules of the
    #                                                    stub and the monitor alike: the stdlib and cffi only
    ("kdbg/link_map.py", ("monitor", "kdbg.rsp", "kdbg.core", "kdbg.dap", "kdbg.vcpu_control", "elftools")),
    ("kdbg/tls.py", ("monitor", "kdbg.rsp", "kdbg.core", "kdbg.dap", "kdbg.vcpu_control", "elftools")),
    ("kdbg.arch", ("monitor", "kdbg.rsp", "kdbg.core", "kdbg.dap", "kdbg.vcpu_control")),
    ("kdbg.rsp", ("monitor", "kdbg.dap", "kdbg.core", "kdbg.vcpu_control", "elftools", "capstone", "pygdbmi")),
    ("kdbg.core", ("monitor", "kdbg.dap", "kdbg.rsp", "kdbg.vcpu_control", "capstone", "pygdbmi")),
    ("kdbg.vcpu_control", ("monitor", "kdbg.dap", "kdbg.rsp", "kdbg.core")),
    ("kdbg/breakpoints.py", ("monitor", "kdbg.dap", "kdbg.rsp", "kdbg.core", "kdbg.vcpu_control")),
    ("kdbg/target_link.py", ("monitor", "kdbg.dap", "kdbg.rsp", "kdbg.core", "kdbg.vcpu_control")),
    ("kdbg.dap", ("monitor", "kdbg.rsp", "kdbg.core", "kdbg.vcpu_control", "cffi")),
    ("monitor", ("kdbg.dap",)),
    ("monitor.oci", ("kdbg", "elftools", "cffi")),     # km-runtime starts 4 times per container: stdlib only
]


@pytest.mark.parametrize("package,forbidden", RULES, ids=[r[0] for r in RULES])
def test_no_forbidden_imports(package: str, forbidden: tuple[str, ...]) -> None:
    paths = [ROOT / package] if package.endswith(".py") else modules(package)
    bad = [f"{p.relative_to(ROOT)} imports {name}" for p in paths for name in imports_of(p)
           if any(name == f or name.startswith(f + ".") for f in forbidden)]
    assert not bad, "\n".join(bad)


def test_only_cli_composes_stub_and_core_writer() -> None:
    """monitor reaches kdbg.rsp.server and kdbg.core only from its composition root; and kdbg.core from the
    snapshot package, since a snapshot is a core file (written by kdbg.core.writer, read with its layouts)."""
    offenders = [f"{p.relative_to(ROOT)} imports {name}" for p in modules("monitor") if p.name != "cli.py"
                 for name in imports_of(p) if name.startswith("kdbg.rsp")
                 or name.startswith("kdbg.core") and "snapshot" not in p.relative_to(ROOT).parts]
    assert not offenders, "\n".join(offenders)


def test_third_party_homes() -> None:
    """pygdbmi only in kdbg/dap/gdb_backend.py, capstone only in kdbg/dap/disassembly.py, cffi only in monitor/kvm
    (the debugger's compiled run: monitor/kvm/crun.py), the builder of km's compiled modules (kdbg/cmodule.py) and the
    stub's compiled framing (kdbg/rsp/cframing.py), pyelftools only in the core reader (a run reads its ELF headers
    with monitor/loader/elf_headers.py: pyelftools' import costs start-up time)."""
    homes = {"pygdbmi": ("kdbg/dap/gdb_backend.py",), "capstone": ("kdbg/dap/disassembly.py",),
             "cffi": ("monitor/kvm/abi.py", "monitor/kvm/ffi_module.py", "monitor/kvm/crun.py", "kdbg/cmodule.py",
                      "kdbg/rsp/cframing.py"), "elftools": ("kdbg/core/reader.py",)}
    bad = []
    for lib, allowed in homes.items():
        for p in modules("monitor") + modules("kdbg"):
            rel = str(p.relative_to(ROOT))
            if rel not in allowed and any(n == lib or n.startswith(lib + ".") for n in imports_of(p)):
                bad.append(f"{rel} imports {lib}")
    assert not bad, "\n".join(bad)
