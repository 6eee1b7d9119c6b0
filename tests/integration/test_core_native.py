"""kdbg.core on Linux's own material: a native core of a crashed program (gdb's gcore), read by CoreTarget and
written back by write_core, must tell gdb, lldb, readelf and eu-readelf what the native one tells them.

Needs no VM: the payload runs natively under gdb, which stops it at its SIGSEGV (two frames below main, a
second thread blocked on a mutex) and writes the native core; the live registers are kept as the reference.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import threading
from pathlib import Path

import pytest

from harness.gdb import gdb_batch
from harness.markers import line_of
from harness.symbols import symbol_address
from kdbg.arch.x86_64 import REGISTERS, SEGMENTS
from kdbg.core import layouts
from kdbg.core.reader import CoreTarget
from kdbg.core.writer import write_core

SOURCE = "core_crash.c"
FAULT_ADDR = 0xDEAD000          # core_bad_pointer in core_crash.c
GLOBAL_VALUE = 0x1234567        # core_global
TIMEOUT_S = 120

pytestmark = pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")


# Every register of kdbg's arch table gdb shows for a core (gdb 13 gives a core's target description no
# org.gnu.gdb.i386.segments: no fs_base/gs_base), xmm through ymm as gdb sees them whatever the host's AVX-512.
REGISTER_LIST = " ".join([r.name for r in REGISTERS if r.feature != SEGMENTS and not r.name.endswith("h")]
                         + [f"ymm{i}" for i in range(16)])
REGISTER_COMMANDS = ["thread 1", f"info registers {REGISTER_LIST}", "thread 2", f"info registers {REGISTER_LIST}"]


def register_lines(text: str) -> dict[str, str]:
    return {line.split(maxsplit=1)[0]: " ".join(line.split()) for line in text.splitlines()
            if line.strip() and not line.startswith("[")}     # not gdb's "[Inferior 1 ... detached]" at exit


class Crash:
    """The payload, its native core, the live gdb's view at the crash, and the core rewritten by kdbg.core."""

    def __init__(self, exe: Path, work: Path) -> None:
        self.exe, self.native, self.rewritten = exe, work / "native.core", work / "kmcore"
        outputs = gdb_batch(exe, commands=["run", *REGISTER_COMMANDS, f"gcore {self.native}"])
        assert "SIGSEGV" in outputs[0], outputs[0]
        self.live_registers = [register_lines(outputs[2]), register_lines(outputs[4])]
        assert self.native.exists(), outputs[-1]
        with CoreTarget(self.native, exe) as native:
            write_core(native, self.rewritten, signal=11)


@pytest.fixture(scope="module")
def crash(payload, tmp_path_factory) -> Crash:
    return Crash(payload(SOURCE, "glibc"), tmp_path_factory.mktemp("native-core"))


def test_gdb_shows_the_full_backtrace_with_source_lines(crash):
    (bt,) = gdb_batch(crash.exe, crash.rewritten, commands=["bt"])
    frames = re.findall(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at \S*core_crash\.c:(\d+)", bt, re.M)
    expected = [("0", "leaf", line_of(SOURCE, "segv")), ("1", "middle", line_of(SOURCE, "middle")),
                ("2", "main", line_of(SOURCE, "main"))]
    assert [(n, f, int(l)) for n, f, l in frames[:3]] == expected, bt


def test_gdb_lists_both_threads(crash):
    (threads,) = gdb_batch(crash.exe, crash.rewritten, commands=["info threads"])
    assert len(re.findall(r"^\*?\s+\d+\s+.*LWP \d+", threads, re.M)) == 2, threads
    assert re.search(r"^\*\s+1\s+.*leaf \(", threads, re.M), threads


def test_gdb_registers_match_the_live_process(crash):
    outputs = gdb_batch(crash.exe, crash.rewritten, commands=REGISTER_COMMANDS)
    for thread, live in enumerate(crash.live_registers):
        core = register_lines(outputs[2 * thread + 1])
        assert len(core) == len(REGISTER_LIST.split()), outputs[2 * thread + 1]
        assert live["rip"] == core["rip"] and ("<leaf+" in core["rip"]) == (thread == 0)
        differences = {name: (live.get(name), core[name]) for name in core if live.get(name) != core[name]}
        assert not differences, f"thread {thread + 1}: live vs core {differences}"


def test_gdb_prints_a_global_and_the_siginfo(crash):
    value, signo, addr = gdb_batch(crash.exe, crash.rewritten, commands=[
        "p/x core_global", "p $_siginfo.si_signo", "p $_siginfo._sifields._sigfault.si_addr"])
    assert value.endswith(f"= {GLOBAL_VALUE:#x}")
    assert signo.endswith("= 11")
    assert addr.endswith(f"(void *) {FAULT_ADDR:#x}")


def test_core_target_reads_the_native_core_like_its_rewrite(crash):
    with CoreTarget(crash.native, crash.exe) as native, CoreTarget(crash.rewritten) as rewritten:
        assert list(native.threads()) == list(rewritten.threads()) and len(native.threads()) == 2
        for tid in native.threads():
            assert native.registers(tid) == rewritten.registers(tid)
        assert native.siginfo(native.threads()[0]) == rewritten.siginfo(rewritten.threads()[0])
        assert rewritten.exe_path() == str(crash.exe)
        for region in native.mappings():
            if "r" in region.perms:
                assert rewritten.read_memory(region.start, 64) == native.read_memory(region.start, 64), region
        info = layouts.siginfo_t.from_buffer_copy(rewritten.siginfo(rewritten.threads()[0]))
        assert (info.si_signo, info._sifields._sigfault.si_addr) == (11, FAULT_ADDR)


def strip_segment_data(core: Path, addr: int, out: Path) -> None:
    """Copy `core` to `out` with no data for the PT_LOAD holding addr (p_filesz 0), as the kernel leaves out
    unmodified file-backed pages."""
    data = bytearray(core.read_bytes())
    header = layouts.Elf64_Ehdr.from_buffer_copy(data)
    size = layouts.ctypes.sizeof(layouts.Elf64_Phdr)
    for index in range(header.e_phnum):
        at = header.e_phoff + index * size
        phdr = layouts.Elf64_Phdr.from_buffer_copy(data, at)
        if phdr.p_type == layouts.PT_LOAD and phdr.p_vaddr <= addr < phdr.p_vaddr + phdr.p_memsz:
            struct.pack_into("<Q", data, at + layouts.Elf64_Phdr.p_filesz.offset, 0)
    out.write_bytes(data)


def test_memory_a_core_left_out_is_read_from_the_executable(crash, tmp_path):
    main = symbol_address(crash.exe, "main")
    strip_segment_data(crash.rewritten, main, tmp_path / "stripped.core")
    with CoreTarget(crash.rewritten) as full, CoreTarget(tmp_path / "stripped.core", crash.exe) as stripped:
        assert stripped.read_memory(main, 32) == full.read_memory(main, 32)
        message = symbol_address(crash.exe, "core_message")
        assert stripped.read_memory(message, 26) == b"core_crash read-only data\0"


def test_readelf_lists_every_note_without_warnings(crash):
    result = subprocess.run(["readelf", "-n", "-W", str(crash.rewritten)], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    assert result.stderr == "" and "warning" not in result.stdout.lower(), result.stdout + result.stderr
    notes = re.findall(r"^\s+(CORE|LINUX)\s+0x[0-9a-f]+\s+(NT_\w+)", result.stdout, re.M)
    assert notes == [("CORE", "NT_PRSTATUS"), ("CORE", "NT_PRPSINFO"), ("CORE", "NT_SIGINFO"),
                     ("CORE", "NT_AUXV"), ("CORE", "NT_FILE"), ("CORE", "NT_FPREGSET"),
                     ("LINUX", "NT_X86_XSTATE"), ("CORE", "NT_PRSTATUS"), ("CORE", "NT_FPREGSET"),
                     ("LINUX", "NT_X86_XSTATE")], result.stdout


@pytest.mark.skipif(shutil.which("eu-readelf") is None, reason="elfutils is not installed")
def test_eu_readelf_decodes_every_note(crash):
    result = subprocess.run(["eu-readelf", "-n", str(crash.rewritten)], capture_output=True, text=True,
                            timeout=TIMEOUT_S)
    out = result.stdout
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "warning" not in out.lower() and "invalid" not in out.lower(), out
    assert out.count("PRSTATUS") == 2 and out.count("FPREGSET") == 2 and out.count("X86_XSTATE") == 2, out
    assert "info.si_signo: 11" in out and f"fault address: {FAULT_ADDR:#x}" in out, out
    assert f"fname: {crash.exe.name[:15]}" in out and str(crash.exe) in out, out


@pytest.mark.skipif(shutil.which("lldb") is None, reason="lldb is not installed")
def test_lldb_shows_the_backtrace(crash):
    result = subprocess.run(["lldb", "-b", "-c", str(crash.rewritten), str(crash.exe), "-o", "bt"],
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    out = result.stdout
    assert "stop reason = signal SIGSEGV" in out, out + result.stderr
    for function, marker in (("leaf", "segv"), ("middle", "middle"), ("main", "main")):
        assert re.search(rf"`{function}\b.* at core_crash\.c:{line_of(SOURCE, marker)}\b", out), out


@pytest.fixture
def served_core(crash):
    """The rewritten core behind the GDB stub (what `km --core kmcore prog -g` serves), on a free port."""
    from kdbg.rsp.server import GdbServer
    core = CoreTarget(crash.rewritten, crash.exe)
    server = GdbServer(core, 0, initially_stopped=True)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server.port
    server.close()
    thread.join(timeout=10)
    core.close()


def test_the_core_served_over_rsp_gives_gdb_what_the_file_gives(crash, served_core):
    commands = ["bt", "info threads", "p $_siginfo.si_signo", "p $_siginfo._sifields._sigfault.si_addr",
                "p/x core_global", *REGISTER_COMMANDS]
    from_file = gdb_batch(crash.exe, crash.rewritten, commands=commands)
    over_rsp = gdb_batch(crash.exe, commands=[f"target remote 127.0.0.1:{served_core}", *commands])[1:]

    def frames(bt: str) -> list[str]:
        return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\w+ \(.*\) at \S+)$", bt, re.M)

    assert frames(over_rsp[0]) == frames(from_file[0]) and len(frames(from_file[0])) >= 3, over_rsp[0]
    assert len(re.findall(r"^\*?\s+\d+\s+Thread", over_rsp[1], re.M)) == 2, over_rsp[1]
    assert over_rsp[2:5] == from_file[2:5]
    def values(text: str) -> dict[str, str]:
        """Register values whatever the vector type's members (the stub's vec128 has no v8_half)."""
        return {name: re.sub(r".*(v2_int64 = \{[^}]*\}).*", r"\1", line)
                for name, line in register_lines(text).items()}

    for index in (6, 8):        # `info registers ...` of thread 1 and thread 2
        rsp, file = values(over_rsp[index]), values(from_file[index])
        assert rsp == file, {name: (rsp.get(name), file[name]) for name in file if rsp.get(name) != file[name]}


def _kernel_core(exe: Path, work: Path) -> Path:
    """Let Linux itself dump the crash (RLIMIT_CORE raised for the child only), when core_pattern writes a plain
    file into the working directory; skip where a handler (systemd-coredump, apport) takes cores instead."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if not pattern or pattern.startswith("|") or "/" in pattern:
        pytest.skip(f"core_pattern {pattern!r} does not write into the working directory")
    import resource

    def unlimited_core() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    result = subprocess.run([str(exe)], cwd=work, preexec_fn=unlimited_core, capture_output=True,
                            timeout=TIMEOUT_S)
    assert result.returncode == -11, result
    cores = [p for p in work.iterdir() if p.name.startswith(pattern.split("%")[0] or "core")]
    if not cores:
        pytest.skip(f"Linux wrote no core (core_pattern {pattern!r})")
    return cores[0]


@pytest.fixture(scope="module")
def kernel_crash(crash, tmp_path_factory):
    work = tmp_path_factory.mktemp("kernel-core")
    kernel = _kernel_core(crash.exe, work)
    with CoreTarget(kernel, crash.exe) as target:
        write_core(target, work / "kmcore", signal=11)
    return kernel, work / "kmcore"


def _without_xstate_warnings(text: str) -> str:
    """gdb 13 finds the XSTATE note of a newer kernel's cores smaller than the host's XSAVE size and warns on
    every thread (`Section .reg-xstate/N in core file too small`): the kernel's layout, not something km copies."""
    kept = [line for line in text.splitlines() if not line.startswith("warning: Section `.reg-xstate/")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


def test_a_kernel_core_reads_and_rewrites_like_gdbs(crash, kernel_crash):
    """The kernel leaves unmodified text out of its cores: CoreTarget serves it from the executable."""
    kernel, rewritten = kernel_crash
    with CoreTarget(kernel, crash.exe) as native, CoreTarget(rewritten) as copy:
        assert len(native.threads()) == 2 and list(native.threads()) == list(copy.threads())
        for tid in native.threads():
            assert native.registers(tid) == copy.registers(tid)
        rip = native.registers(native.threads()[0])["rip"]
        assert native.read_memory(rip, 16) == copy.read_memory(rip, 16)
        assert native.siginfo(native.threads()[0]) == copy.siginfo(copy.threads()[0])
    commands = ["bt", "thread apply all bt", "p $_siginfo._sifields._sigfault.si_addr", "p/x core_global"]
    from_kernel = [_without_xstate_warnings(out) for out in gdb_batch(crash.exe, kernel, commands=commands)]
    from_rewrite = gdb_batch(crash.exe, rewritten, commands=commands)
    assert from_rewrite == from_kernel
    assert "leaf (" in from_rewrite[0] and "sleeper (" in from_rewrite[1]
