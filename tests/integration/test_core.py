"""kmcore from km itself: a payload dies of a core-dumping signal in the VM; gdb, reading the kmcore km wrote, sees
the backtrace, the threads, the registers, a global and $_siginfo; km prints one line and keeps the status.

Registers are checked against the same static binary crashing natively under gdb: -O0 code stops at the same
instruction with the same fault address in rax whichever kernel (Linux or km) runs it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.debuggee import start_server
from harness.km import run_km
from harness.gdb import gdb_batch
from harness.markers import line_of
from kdbg.core import layouts
from kdbg.core.reader import CoreTarget

from .test_core_native import FAULT_ADDR, GLOBAL_VALUE, SOURCE, TIMEOUT_S, register_lines, strip_segment_data

pytestmark = [
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm"),
    pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed"),
]

SIGNALS = {"segv": (11, "SIGSEGV"), "abort": (6, "SIGABRT"), "fpe": (8, "SIGFPE"), "thread": (11, "SIGSEGV")}
FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\w+) \(.*\) at \S*core_crash\.c:(\d+)", re.M)


@dataclass
class KmCrash:
    exe: Path
    mode: str
    cwd: Path
    result: subprocess.CompletedProcess

    @property
    def core(self) -> Path:
        return self.cwd / "kmcore"

    @property
    def transcript(self) -> str:
        return f"status {self.result.returncode}\nstdout: {self.result.stdout!r}\nstderr: {self.result.stderr!r}"

    def gdb(self, *commands: str) -> list[str]:
        assert self.core.exists(), f"no kmcore\n{self.transcript}"
        return gdb_batch(self.exe, self.core, commands=list(commands))


def crash_in_km(exe: Path, mode: str, cwd: Path) -> KmCrash:
    cwd.mkdir(parents=True, exist_ok=True)
    return KmCrash(exe, mode, cwd, run_km(exe, mode, cwd=cwd, timeout=TIMEOUT_S))


@pytest.fixture(scope="module", params=["musl", "glibc", "glibc-pie"])
def toolchain(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def crashes(payload, toolchain, tmp_path_factory):
    """mode -> KmCrash, each km run once per toolchain and shared by the read-only tests below."""
    exe = payload(SOURCE, toolchain)
    work = tmp_path_factory.mktemp(f"km-core-{toolchain}")
    cache: dict[str, KmCrash] = {}

    def get(mode: str) -> KmCrash:
        if mode not in cache:
            cache[mode] = crash_in_km(exe, mode, work / mode)
        return cache[mode]
    return get


def frames(bt: str) -> list[tuple[str, int]]:
    return [(function, int(line)) for _, function, line in FRAME.findall(bt)]


def functions(bt: str) -> list[str]:
    return re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(", bt, re.M)


def thread_functions(all_bt: str) -> list[list[str]]:
    """`thread apply all bt` as each thread's function names, crashing thread excluded, in a stable order."""
    blocks = re.split(r"^Thread \d+ .*:$", all_bt, flags=re.M)[1:]
    return sorted(functions(block) for block in blocks)


REGISTER_NAMES = "rip rax rdx rsi eflags mxcsr fctrl fstat"     # not stack addresses: the stacks differ
_native: dict[tuple[Path, str], list[str]] = {}


def native(exe: Path, mode: str) -> list[str]:
    """The same crash under Linux, as gdb sees it live: [bt, thread apply all bt, info registers ...]."""
    if (exe, mode) not in _native:
        commands = ["run", "bt", "thread apply all bt", f"info registers {REGISTER_NAMES}"]
        _native[exe, mode] = gdb_batch("--args", exe, mode, commands=commands)[1:]
    return _native[exe, mode]


@pytest.mark.parametrize("mode", list(SIGNALS))
def test_km_reports_the_signal_and_where_the_core_went(crashes, mode):
    crash = crashes(mode)
    number, name = SIGNALS[mode]
    assert crash.result.returncode == 128 + number, crash.transcript
    assert crash.result.stderr.decode() == f"km: {crash.exe}: killed by {name} (core dumped to ./kmcore)\n", \
        crash.transcript
    assert crash.core.exists(), crash.transcript


def test_gdb_shows_the_backtrace_two_frames_below_main(crashes):
    crash = crashes("segv")
    (bt,) = crash.gdb("bt")
    assert frames(bt)[:3] == [("leaf", line_of(SOURCE, "segv")), ("middle", line_of(SOURCE, "middle")),
                              ("main", line_of(SOURCE, "main"))], f"{bt}\n{crash.transcript}"


def test_gdb_lists_both_threads_and_the_sleeper_blocked(crashes):
    crash = crashes("segv")
    threads, all_bt = crash.gdb("info threads", "thread apply all bt")
    assert len(re.findall(r"^\*?\s+\d+\s+.*LWP \d+", threads, re.M)) == 2, threads
    assert re.search(r"^\*\s+1\s+.*LWP \d+.*leaf \(", threads, re.M), threads
    # musl's libc has no CFI: gdb cannot unwind a blocked thread past __timedwait_cp even under Linux.
    assert thread_functions(all_bt) == thread_functions(native(crash.exe, "segv")[1]), all_bt
    if crash.exe.name.startswith("core_crash.glibc"):
        assert ("sleeper", line_of(SOURCE, "sleeper")) in frames(all_bt), all_bt


def test_registers_match_the_same_crash_under_linux(crashes):
    crash = crashes("segv")
    linux = native(crash.exe, "segv")[2]
    (core,) = crash.gdb(f"info registers {REGISTER_NAMES}")

    def comparable(text: str) -> dict[str, str]:
        lines = register_lines(text)
        if "pie" in crash.exe.name:     # Linux maps a static PIE near the stack, km at 0x555555554000
            lines["rip"] = re.search(r"<.*>", lines["rip"]).group(0)
            del lines["rsi"]            # an address in .rodata
        return lines
    assert comparable(core) == comparable(linux) and "<leaf+" in core, f"km:\n{core}\nlinux:\n{linux}"


def test_segment_selectors_are_linuxs_user_mode_ones(crashes):
    crash = crashes("segv")
    (core,) = crash.gdb("info registers cs ss")
    assert register_lines(core) == {"cs": "cs 0x33 51", "ss": "ss 0x2b 43"}, core


def test_thread_pointer_and_stack_are_in_the_core(crashes):
    crash = crashes("segv")
    with CoreTarget(crash.core, crash.exe) as core:
        regs = core.registers(core.threads()[0])
        # x86-64 TLS ABI (musl and glibc alike): the thread pointer's first word points to itself.
        assert regs["fs_base"] and core.read_memory(regs["fs_base"], 8) == regs["fs_base"].to_bytes(8, "little")
        assert len(core.read_memory(regs["rsp"], 64)) == 64
        assert core.exe_path() and core.stop_event(core.threads()[0]).signal == 11


def test_text_a_core_left_out_is_read_from_the_executable_at_its_load_address(crashes, tmp_path):
    """For a static PIE too: the executable's segments are placed with the bias AT_ENTRY gives."""
    crash = crashes("segv")
    with CoreTarget(crash.core) as full:
        rip = full.registers(full.threads()[0])["rip"]
        code = full.read_memory(rip, 32)
    strip_segment_data(crash.core, rip, tmp_path / "stripped.core")
    with CoreTarget(tmp_path / "stripped.core", crash.exe) as stripped:
        assert stripped.read_memory(rip, 32) == code


def test_nt_file_names_only_the_payload_file(crashes):
    crash = crashes("segv")
    with CoreTarget(crash.core) as core:
        files = {region.path for region in core.mappings() if region.path}
    assert files == {str(crash.exe)}, files


def test_gdb_prints_a_global_and_the_fault_siginfo(crashes):
    crash = crashes("segv")
    value, signo, code, addr = crash.gdb("p/x core_global", "p $_siginfo.si_signo", "p $_siginfo.si_code",
                                         "p $_siginfo._sifields._sigfault.si_addr")
    assert value.endswith(f"= {GLOBAL_VALUE:#x}"), value
    assert signo.endswith("= 11") and code.endswith("= 1"), (signo, code)          # SEGV_MAPERR
    assert addr.endswith(f"(void *) {FAULT_ADDR:#x}"), addr


def test_abort_gives_a_core_of_sigabrt_raised_from_leaf(crashes):
    crash = crashes("abort")
    bt, signo = crash.gdb("bt", "p $_siginfo.si_signo")
    assert signo.endswith("= 6"), signo
    linux = functions(native(crash.exe, "abort")[0])
    if "main" in linux:
        assert functions(bt)[:linux.index("main") + 1] == linux[:linux.index("main") + 1], bt
        assert [("leaf", line_of(SOURCE, "abort")), ("middle", line_of(SOURCE, "middle")),
                ("main", line_of(SOURCE, "main"))] == frames(bt)[:3], bt
    else:   # musl's raise() has no CFI: under Linux too gdb cannot unwind past it
        assert functions(bt)[:2] == linux[:2], f"km:\n{bt}\nlinux: {linux}"


def test_division_by_zero_gives_a_sigfpe_core(crashes):
    crash = crashes("fpe")
    bt, signo, code = crash.gdb("bt", "p $_siginfo.si_signo", "p $_siginfo.si_code")
    assert frames(bt)[:3] == [("leaf", line_of(SOURCE, "fpe")), ("middle", line_of(SOURCE, "middle")),
                              ("main", line_of(SOURCE, "main"))], bt
    assert signo.endswith("= 8") and code.endswith("= 1"), (signo, code)             # FPE_INTDIV


def test_a_fault_in_another_thread_makes_that_thread_current(crashes):
    crash = crashes("thread")
    bt, threads, all_bt = crash.gdb("bt", "info threads", "thread apply all bt")
    assert frames(bt)[:3] == [("leaf", line_of(SOURCE, "segv")), ("middle", line_of(SOURCE, "middle")),
                              ("crasher", line_of(SOURCE, "crasher"))], bt
    assert len(re.findall(r"^\*?\s+\d+\s+.*LWP \d+", threads, re.M)) == 3, threads
    # Where main is (still in pthread_create's clone, or already in pthread_join) is a race; that gdb unwinds
    # it to main, and the sleeper to its mutex, is not (with glibc: musl's libc has no CFI to unwind with).
    if crash.exe.name.startswith("core_crash.glibc"):
        assert "main" in functions(all_bt) and ("sleeper", line_of(SOURCE, "sleeper")) in frames(all_bt), all_bt
    with CoreTarget(crash.core) as core:
        assert core.threads()[0] != core.pid()
        info = layouts.siginfo_t.from_buffer_copy(core.siginfo(core.threads()[0]))
        assert (info.si_signo, info._sifields._sigfault.si_addr) == (11, FAULT_ADDR)


def test_readelf_reads_the_kmcore_without_warnings(crashes):
    crash = crashes("segv")
    for tool in ("readelf", "eu-readelf"):
        if shutil.which(tool) is None:
            continue
        result = subprocess.run([tool, "-n", str(crash.core)], capture_output=True, text=True, timeout=TIMEOUT_S)
        assert result.returncode == 0 and result.stderr == "", f"{tool}: {result.stderr}"
        assert "warning" not in result.stdout.lower(), result.stdout


def test_an_unwritable_coredump_path_gives_one_line_and_the_status(payload, tmp_path):
    exe = payload(SOURCE, "musl")
    target = tmp_path / "missing" / "kmcore"
    result = run_km(f"--coredump={target}", exe, cwd=tmp_path, timeout=TIMEOUT_S)
    assert result.returncode == 139, result
    assert result.stderr.decode() == \
        f"km: {exe}: killed by SIGSEGV (core not written: {target}: No such file or directory)\n", result
    assert not target.exists()


def test_coredump_names_the_core_file(payload, tmp_path):
    exe = payload(SOURCE, "musl")
    (tmp_path / "cores").mkdir()
    result = run_km("--coredump=cores/first.core", exe, cwd=tmp_path, timeout=TIMEOUT_S)
    assert result.returncode == 139
    assert result.stderr.decode() == f"km: {exe}: killed by SIGSEGV (core dumped to cores/first.core)\n", result
    with CoreTarget(tmp_path / "cores" / "first.core", exe) as core:
        assert core.stop_event(core.threads()[0]).signal == 11


def test_km_core_serves_the_same_backtrace_over_rsp(crashes, free_port):
    crash = crashes("segv")
    commands = ["bt", "info threads", "p $_siginfo.si_signo", "p/x core_global"]
    from_file = crash.gdb(*commands)
    process = start_server("km", crash.exe, free_port, km_options=["--core", crash.core], cwd=crash.cwd)
    try:
        over_rsp = gdb_batch(crash.exe, commands=[f"target remote 127.0.0.1:{free_port}", *commands])[1:]
    finally:
        process.kill()
        process.wait(timeout=10)
    assert frames(over_rsp[0]) == frames(from_file[0]), over_rsp[0]
    assert len(re.findall(r"^\*?\s+\d+\s+Thread", over_rsp[1], re.M)) == 2, over_rsp[1]
    over_rsp[-1] = re.sub(r"^\[Inferior 1 .* detached\]$", "", over_rsp[-1], flags=re.M).strip()
    assert over_rsp[2:] == from_file[2:]


@pytest.mark.parametrize("mode", ["segv", "abort"])
def test_orig_rax_of_each_thread_is_linuxs(crashes, mode):
    """pt_regs orig_ax as Linux's core keeps it: -1 for a fault's thread, the call's number for the thread that
    raised SIGABRT (tkill/tgkill) and for the sleeper blocked in futex."""
    crash = crashes(mode)
    commands = ["thread 1", "p $orig_rax", "thread 2", "p $orig_rax"]
    core = crash.gdb(*commands)
    linux = gdb_batch("--args", crash.exe, mode, commands=["run", *commands])[1:]
    values = [text.split("=")[-1].strip() for text in core[1::2]]
    assert values == [text.split("=")[-1].strip() for text in linux[1::2]], f"km: {core}\nlinux: {linux}"
