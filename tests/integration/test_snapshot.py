"""Snapshots: a payload snapshots itself (include/km/snapshot.h), `km FILE` resumes it with its x87/SSE/AVX
registers intact (`km -g FILE` stopped, for gdb), readelf lists km's notes, gdb reads the file as a core stopped at
the snapshot point, a bad snapshot file is refused in one line; a Python program under `km /usr/bin/python3` does
the same through include/python/km/snapshots.py."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.build import ROOT
from harness.debuggee import start_server
from harness.km import run_km
from harness.markers import line_of

pytestmark = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")

SOURCE = "snapshot_fp.c"
PYTHON = "/usr/bin/python3"
TIMEOUT_S = 60
RESUMED = "resumed 42 ymm same xmm 3.25 x87 1.5\n"


@pytest.fixture(scope="module")
def fp_payload(payload) -> Path:
    return payload(SOURCE, "musl", ("-mavx", f"-I{ROOT / 'include'}"))


@pytest.fixture(scope="module")
def taken(fp_payload, tmp_path_factory) -> Path:
    """A snapshot the payload took of itself (not live: the payload ended once it was written)."""
    work = tmp_path_factory.mktemp("snapshot")
    result = run_km(fp_payload, cwd=work, timeout=TIMEOUT_S)
    assert (result.returncode, result.stdout) == (0, b"before 41\n"), result.stderr.decode()
    return work / "kmsnap"


def test_resume_continues_after_the_call_with_fp_sse_avx_registers(taken):
    for _ in range(2):                          # a snapshot resumes any number of times
        result = run_km(taken, timeout=TIMEOUT_S)
        assert (result.returncode, result.stdout.decode(), result.stderr) == (0, RESUMED, b"")


def test_live_snapshot_goes_on_and_resumes_too(fp_payload, tmp_path):
    result = run_km("--snapshot", tmp_path / "live.kmsnap", fp_payload, "live", timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode() == "before 41\ntaken 42 ymm same xmm 3.25 x87 1.5\n"
    assert [p.name for p in tmp_path.iterdir()] == ["live.kmsnap"]        # no temporary file left behind
    assert run_km(tmp_path / "live.kmsnap", timeout=TIMEOUT_S).stdout.decode() == RESUMED


@pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf is not installed")
def test_readelf_lists_the_core_notes_and_kms(taken):
    notes = subprocess.run(["readelf", "-n", taken], capture_output=True, text=True, check=True).stdout
    owners = {line.split()[0] for line in notes.splitlines() if line.startswith("  ") and len(line.split()) > 1}
    assert {"CORE", "LINUX", "KM_SNAPSHOT", "KM_PROCESS", "KM_THREAD", "KM_XSAVE", "KM_SIGACTIONS",
            "KM_VMA"} <= owners, notes[:2000]
    assert "NT_PRSTATUS" in notes and "NT_X86_XSTATE" in notes


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_gdb_reads_the_snapshot_as_a_core(fp_payload, taken):
    out = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", "bt", "-ex", "info threads", "-ex", "p counter",
                          "-ex", "p/x $ymm7.v4_int64[3]", str(fp_payload), str(taken)],
                         capture_output=True, text=True, timeout=TIMEOUT_S).stdout
    assert f"main (argc=1" in out and f"snapshot_fp.c:{line_of(SOURCE, 'snapshot-point')}" in out, out
    assert "$1 = 41" in out and "$2 = 0xccccddddeeeeffff" in out, out
    assert out.count("LWP") == 2, out           # one thread, listed once (by bt's header and info threads)


def test_bad_snapshots_are_refused_in_one_line(taken, tmp_path):
    data = taken.read_bytes()
    truncated, corrupt, other = tmp_path / "truncated", tmp_path / "corrupt", tmp_path / "other"
    truncated.write_bytes(data[:len(data) // 2])
    marker = data.index(b"KMSNAP")
    corrupt.write_bytes(data[:marker] + b"XXXXXX" + data[marker + 6:])
    other.write_bytes(data[:marker + 8] + (99).to_bytes(4, "little") + data[marker + 12:])
    cases = {truncated: "truncated", corrupt: "corrupt", other: "snapshot format 99"}
    for path, problem in cases.items():
        result = run_km(path, timeout=TIMEOUT_S)
        err = result.stderr.decode()
        assert result.returncode == 1 and err.count("\n") == 1 and problem in err, (path, err)
    result = run_km(taken, "extra", timeout=TIMEOUT_S)
    assert result.returncode == 2 and "none may follow it" in result.stderr.decode()


@pytest.mark.skipif(shutil.which("gdb") is None, reason="gdb is not installed")
def test_km_g_resumes_stopped_under_gdb(fp_payload, taken, free_port):
    km = start_server("km", taken, free_port)
    try:
        out = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", f"target remote :{free_port}", "-ex", "bt",
                              "-ex", "p $rax", "-ex", "p/x $ymm7.v4_int64[0]", "-ex", "continue", str(fp_payload)],
                             capture_output=True, text=True, timeout=TIMEOUT_S).stdout
        stdout, _ = km.communicate(timeout=TIMEOUT_S)
    finally:
        km.kill()
    assert f"snapshot_fp.c:{line_of(SOURCE, 'snapshot-point')}" in out and "$1 = 1" in out, out
    assert "$2 = 0x1111222233334444" in out and "exited normally" in out, out
    assert stdout.decode() == RESUMED


@pytest.mark.skipif(not os.access(PYTHON, os.X_OK), reason=f"no {PYTHON}")
def test_python_api_under_km_python3(tmp_path):
    """`from km import snapshots` in a program run by `km /usr/bin/python3` (include/python on its path)."""
    script = tmp_path / "app.py"
    script.write_text("import sys\nfrom km import snapshots\nstate = [41]\n"
                      "how = snapshots.take('py', 'a Python payload', live=True)\nstate[0] += 1\n"
                      "print('resumed' if how == snapshots.RESUMED else 'taken', state[0])\n")
    taken = run_km("--putenv", f"PYTHONPATH={ROOT / 'include' / 'python'}", PYTHON, script, cwd=tmp_path,
                   timeout=TIMEOUT_S)
    assert (taken.returncode, taken.stdout) == (0, b"taken 42\n"), taken.stderr.decode()
    resumed = run_km(tmp_path / "kmsnap", timeout=TIMEOUT_S)
    assert (resumed.returncode, resumed.stdout) == (0, b"resumed 42\n"), resumed.stderr.decode()


def test_descriptors_come_back_as_the_issue_says(payload, tmp_path):
    """A pipe holds its bytes again, an eventfd its counter, an epoll instance watches it, a disarmed timerfd
    works; a file removed since reads EBADF (with a trace
    line); both ends of a connection come back reset; the listener listens again."""
    exe = payload("snapshot_fds.c", "glibc", (f"-I{ROOT / 'include'}",))
    data = tmp_path / "gone.txt"
    data.write_text("hello\n")
    assert run_km(exe, data, cwd=tmp_path, timeout=TIMEOUT_S).returncode == 0
    data.unlink()
    result = run_km(tmp_path / "kmsnap", timeout=TIMEOUT_S, env={"KM_VERBOSE": "snapshot"})
    assert result.stdout.decode().splitlines() == [
        "pipe: pipe bytes", "epoll: 1 ready, data 77", "timerfd: fired", "eventfd: 5", "file: EBADF", "connection: ECONNRESET", "other end: ECONNRESET",
        "listener: EAGAIN"], result.stderr.decode()
    assert f"({data}): not restored (No such file or directory): EBADF" in result.stderr.decode()


def test_what_cannot_be_restored_is_refused_by_name(payload, tmp_path):
    exe = payload("snapshot_refused.c", "musl", (f"-I{ROOT / 'include'}",))
    result = run_km(exe, cwd=tmp_path, timeout=TIMEOUT_S, env={"KM_VERBOSE": "snapshot"})
    assert result.stdout.decode() == ("alarm: Invalid argument\ntimerfd: Invalid argument\n"
                                      "signalfd: Invalid argument\nneither: taken\n")
    err = result.stderr.decode()
    assert "an armed alarm/setitimer timer cannot be restored" in err and "fd 3: an armed timerfd" in err, err
    assert "fd 3: a signalfd cannot be restored" in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["kmsnap"]


def test_signal_mask_pending_signal_handler_and_altstack_come_back(payload, tmp_path):
    exe = payload("snapshot_signals.c", "musl", (f"-I{ROOT / 'include'}",))
    assert run_km(exe, cwd=tmp_path, timeout=TIMEOUT_S).returncode == 0
    result = run_km(tmp_path / "kmsnap", timeout=TIMEOUT_S)
    assert result.stdout.decode() == ("resumed, 0 handled while blocked\n"
                                      "1 handled once unblocked, on the alternate stack: yes\n"), result.stderr
