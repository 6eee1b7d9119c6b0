"""Every bad input gets one line `km: <subject>: <problem>` on stderr and the right status; never a traceback.

Also the payload-side failures that must not become km failures: unknown syscalls (ENOSYS, traced) and bad guest
pointers (EFAULT, compared with native execution).
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from harness.km import run_km

from .test_run import TRACE_LINE, differential


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """km's stderr as the single message line it must be (no traceback, nothing else)."""
    text = result.stderr.decode(errors="replace")
    assert "Traceback" not in text, text
    lines = text.splitlines()
    assert len(lines) == 1, f"want one line, got:\n{text}"
    assert lines[0].startswith("km: ") and lines[0].count(": ") >= 2, lines[0]
    assert result.stdout == b"", result.stdout
    return lines[0]


def elf32_i386(path: Path) -> Path:
    """A minimal 32-bit x86 executable header with one PT_LOAD (what `gcc -m32 -static` would give km)."""
    header = b"\x7fELF" + bytes([1, 1, 1, 0]) + bytes(8)
    header += struct.pack("<HHIIIIIHHHHHH", 2, 3, 1, 0x8048054, 52, 0, 0, 52, 32, 1, 40, 0, 0)
    phdr = struct.pack("<IIIIIIII", 1, 0, 0x8048000, 0x8048000, 0x60, 0x60, 5, 0x1000)
    path.write_bytes(header + phdr + b"\xcc" * 12)
    return path


def patched_machine(source: Path, path: Path, machine: int) -> Path:
    data = bytearray(source.read_bytes())
    data[18:20] = struct.pack("<H", machine)          # e_machine
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def hello(payload) -> Path:
    return payload("run_hello.c", "musl")


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.km"
    assert one_line_error(run_km(missing)) == f"km: {missing}: no such file"
    assert run_km(missing).returncode == 1


def test_not_an_elf(tmp_path):
    text = tmp_path / "notes.km"
    text.write_text("just text\n")
    empty = tmp_path / "empty.km"
    empty.write_bytes(b"")
    for path in (text, empty):
        result = run_km(path)
        assert one_line_error(result) == f"km: {path}: not an ELF file"
        assert result.returncode == 1


def test_directory_and_fifo(tmp_path):
    result = run_km(tmp_path)
    assert one_line_error(result) == f"km: {tmp_path}: is a directory" and result.returncode == 1
    fifo = tmp_path / "fifo.km"
    import os
    os.mkfifo(fifo)
    result = run_km(fifo, timeout=20)
    assert one_line_error(result) == f"km: {fifo}: not a regular file" and result.returncode == 1


def test_aarch64_elf(hello, tmp_path):
    arm = patched_machine(hello, tmp_path / "arm.km", 183)           # EM_AARCH64
    result = run_km(arm)
    assert one_line_error(result) == f"km: {arm}: not an x86-64 executable (AArch64, 64-bit)"
    assert result.returncode == 1


def test_i386_elf(tmp_path):
    i386 = elf32_i386(tmp_path / "i386.km")
    result = run_km(i386)
    assert one_line_error(result) == f"km: {i386}: not an x86-64 executable (x86, 32-bit)"
    assert result.returncode == 1


def test_truncated_elf(hello, tmp_path):
    for size in (64, 300, 5000):
        cut = tmp_path / f"cut{size}.km"
        cut.write_bytes(hello.read_bytes()[:size])
        result = run_km(cut)
        assert one_line_error(result) == f"km: {cut}: truncated or corrupt ELF file", size
        assert result.returncode == 1


def test_object_file_is_not_an_executable(tmp_path):
    src = tmp_path / "o.c"
    src.write_text("int f(void) { return 1; }\n")
    obj = tmp_path / "o.km"
    subprocess.run(["gcc", "-c", "-o", obj, src], check=True)
    result = run_km(obj)
    assert one_line_error(result) == f"km: {obj}: not an executable (ET_REL)" and result.returncode == 1


def test_missing_interpreter(payload):
    """A dynamic program whose PT_INTERP does not exist: one line naming the interpreter (execve says ENOENT)."""
    dynamic = payload("run_hello.c", "dynamic", ("-Wl,--dynamic-linker=/nonexistent/ld-km-test.so.2",))
    result = run_km(dynamic)
    assert one_line_error(result) == f"km: {dynamic}: interpreter /nonexistent/ld-km-test.so.2: no such file"
    assert result.returncode == 1


def test_interpreter_not_a_loader(payload):
    """PT_INTERP naming something that is not a dynamic loader (here a text file)."""
    dynamic = payload("run_hello.c", "dynamic", ("-Wl,--dynamic-linker=/etc/passwd",))
    result = run_km(dynamic)
    assert one_line_error(result) == f"km: {dynamic}: interpreter /etc/passwd: not an ELF file"
    assert result.returncode == 1


def test_no_kvm_device(hello, tmp_path):
    device = tmp_path / "kvm"
    result = run_km(hello, env={"KM_KVM_DEVICE": str(device)})
    assert one_line_error(result) == f"km: {device}: no such device (is the kvm module loaded?)"
    assert result.returncode == 1


def test_kvm_device_permission_denied(hello, tmp_path):
    """Root passes every mode check, so the unopenable device is an immutable file (EPERM, as EACCES reads)."""
    device = tmp_path / "kvm"
    device.write_bytes(b"")
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", device], capture_output=True).returncode:
        pytest.skip("cannot make an immutable file here")
    try:
        result = run_km(hello, env={"KM_KVM_DEVICE": str(device)})
    finally:
        subprocess.run(["chattr", "-i", device])
    assert one_line_error(result) == f"km: {device}: permission denied (add yourself to the kvm group)"
    assert result.returncode == 1


def test_kvm_device_that_is_not_kvm(hello):
    result = run_km(hello, env={"KM_KVM_DEVICE": "/dev/null"})
    one_line_error(result)
    assert result.returncode == 1


@pytest.mark.parametrize("args, message", [
    (["--bogus", "x.km"], "km: --bogus: unknown option (see km --help)"),
    (["-gabc", "x.km"], "km: -gabc: bad gdb port (want -gPORT with PORT in 1..65535)"),
    (["-g70000", "x.km"], "km: -g70000: bad gdb port (want -gPORT with PORT in 1..65535)"),
    (["--putenv", "NOEQUALS", "x.km"], None),
    (["--putenv"], None),
    ([], None),
], ids=["unknown", "port-text", "port-range", "putenv-no-equals", "putenv-no-value", "no-payload"])
def test_bad_options_status_2(args, message):
    result = run_km(*args)
    line = one_line_error(result)
    if message:
        assert line == message
    assert result.returncode == 2, line


def test_unknown_syscall_is_enosys_and_traced(payload):
    program = payload("sys_enosys.c", "musl")
    quiet = run_km(program, "246", "1000")
    assert quiet.returncode == 0 and quiet.stderr == b"", quiet.stderr
    assert quiet.stdout == b"syscall 246 = -1 errno ENOSYS\nsyscall 1000 = -1 errno ENOSYS\nsurvived\n"
    traced = run_km(program, "246", "1000", env={"KM_VERBOSE": "syscall"})
    assert traced.stdout == quiet.stdout
    lines = [TRACE_LINE.match(line) for line in traced.stderr.decode().splitlines()]
    assert all(lines), traced.stderr
    unknown = [m["msg"] for m in lines if "unknown syscall" in m["msg"]]
    assert unknown == ["unknown syscall 246 (kexec_load): ENOSYS", "unknown syscall 1000 (?): ENOSYS"]
    assert all(m["tag"] == "syscall" for m in lines)


@pytest.mark.parametrize("toolchain", ["musl", "glibc"])
def test_bad_guest_pointers_are_efault(payload, toolchain):
    native, km = differential(payload("sys_badptr.c", toolchain))
    assert km.stdout.endswith(b"still alive\n")
    assert km.stdout.count(b"EFAULT") >= 40


# Calls whose hostile arguments would end or wedge the payload itself, not test km: leaving, TLS, the heap, sleeps.
FUZZ_SKIP = {"exit", "exit_group", "arch_prctl", "rt_sigreturn", "munmap", "mremap", "mmap", "brk", "sync", "syncfs"}
FUZZ_FAMILIES = {"monitor.syscalls.fs", "monitor.syscalls.mm", "monitor.syscalls.proc", "monitor.syscalls.time"}


def test_hostile_arguments_never_break_km(payload):
    """Every fs/mm/proc/time handler with bad pointers, huge sizes and -1 fds: an errno or a result, never a km
    exception (which dispatch() would answer EIO and trace as 'km failed serving the call')."""
    import importlib
    import monitor.syscalls.table  # noqa: F401
    from monitor.syscalls.numbers import NAMES
    table = importlib.import_module("monitor.syscalls.dispatch")._handlers
    numbers = [str(nr) for nr, entry in enumerate(table)
               if entry and entry[0].__module__ in FUZZ_FAMILIES and NAMES[nr] not in FUZZ_SKIP]
    assert len(numbers) > 100
    result = run_km(payload("sys_fuzz.c", "musl"), *numbers, env={"KM_VERBOSE": "syscall"}, timeout=120)
    trace = result.stderr.decode(errors="replace")
    assert result.returncode == 0, trace[-2000:]
    assert result.stdout.endswith(b"fuzz done\n")
    assert "failed serving" not in trace and "Traceback" not in trace, trace[-3000:]
    assert len(result.stdout.splitlines()) == 4 * len(numbers) + 1
