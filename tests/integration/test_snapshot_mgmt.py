"""The management socket: `km --mgtpipe=PATH` serves km-cli, which snapshots a payload blocked in read(0) (live
or ending it, or under gdb at a breakpoint) and lists the kms it can reach with what each runs now (an execve
changes it); each resumed copy goes on counting from its snapshot, reading the new km's stdin. A threaded server comes back serving. km-cli's failures are one line."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.debuggee import start_server
from harness.gdb import wait_listening
from harness.markers import line_of
from harness.km import km_env, run_km, spawn_km

pytestmark = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm")
TIMEOUT_S = 60


def km_cli(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monitor.mgmt.client", *map(str, args)], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=km_env())


def test_km_cli_snapshots_live_and_final_and_each_resumes(payload, tmp_path):
    sock = tmp_path / "app.sock"
    km = spawn_km(f"--mgtpipe={sock}", payload("snapshot_echo.c"), stdin=subprocess.PIPE)
    try:
        assert km.stdout.readline() == b"ready\n"
        km.stdin.write(b"a\n")
        km.stdin.flush()
        assert km.stdout.readline() == b"1 a\n"
        listed = km_cli("list")
        assert str(sock) in listed.stdout and str(km.pid) in listed.stdout, listed
        nowhere = tmp_path / "missing" / "s.kmsnap"      # one subject, the file: not the socket and the file
        refused = km_cli("snapshot", "--socket", sock, "-o", nowhere, "--live")
        assert (refused.returncode, refused.stderr) == (1, f"km-cli: {nowhere}: No such file or directory\n"), refused
        live = km_cli("snapshot", "--socket", sock, "-o", tmp_path / "live.kmsnap", "--live")
        assert (live.returncode, live.stdout) == (0, f"snapshot written to {tmp_path / 'live.kmsnap'}\n"), live
        km.stdin.write(b"b\n")
        km.stdin.flush()
        assert km.stdout.readline() == b"2 b\n"          # the payload went on
        final = km_cli("snapshot", "--socket", sock, "-o", tmp_path / "final.kmsnap")
        assert final.returncode == 0 and "the payload ended" in final.stdout, final
        assert km.wait(timeout=TIMEOUT_S) == 0
    finally:
        km.kill()
        km.communicate()
    assert not sock.exists()
    assert run_km(tmp_path / "final.kmsnap", input=b"c\n", timeout=TIMEOUT_S).stdout == b"3 c\n"
    assert run_km(tmp_path / "live.kmsnap", input=b"x\ny\n", timeout=TIMEOUT_S).stdout == b"2 x\n3 y\n"


def test_km_cli_list_names_the_program_an_execve_put_in_place(tmp_path):
    """km-cli list shows what each km runs now: the shell it started, then the program the shell exec'ed."""
    sock = tmp_path / "exec.sock"
    km = spawn_km(f"--mgtpipe={sock}", "/bin/sh", "-c", "echo ready; read go; exec /bin/cat", stdin=subprocess.PIPE)

    def listed_program() -> str:
        listing = km_cli("list")
        rows = [line.split() for line in listing.stdout.splitlines()]
        return next((row[2] for row in rows if row[:2] == [str(km.pid), str(sock)]), f"no row in {listing}")
    try:
        assert km.stdout.readline() == b"ready\n"
        assert listed_program() == "/bin/sh"
        km.stdin.write(b"go\nechoed by cat\n")
        km.stdin.flush()
        assert km.stdout.readline() == b"echoed by cat\n"
        assert listed_program() == "/bin/cat"
        assert km.communicate(timeout=TIMEOUT_S)[0] == b"" and km.returncode == 0
    finally:
        if km.poll() is None:
            km.kill()
            km.communicate()


def test_km_cli_errors_are_one_line(tmp_path):
    result = km_cli("snapshot", "--socket", tmp_path / "none.sock", "-o", tmp_path / "s")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such socket" in result.stderr, result
    result = km_cli("snapshot", "-o", tmp_path / "s")
    assert (result.returncode, result.stderr) == (2, "km-cli: --socket: required (see km-cli --help)\n"), result
    result = km_cli("snapshot", "--socket", tmp_path / "none.sock", "-o", tmp_path / "s", "--frob")
    assert result.stderr == "km-cli: --frob: not an option of this command (see km-cli --help)\n", result
    result = km_cli("snapshot", "--socket")
    assert result.stderr == "km-cli: --socket: expected one argument (see km-cli --help)\n", result
    (tmp_path / "file").write_text("not a socket\n")
    result = km_cli("snapshot", "--socket", tmp_path / "file", "-o", tmp_path / "s")
    assert (result.returncode, result.stderr) == (1, f"km-cli: {tmp_path / 'file'}: not a socket\n"), result
    result = km_cli("frob")
    assert (result.returncode, result.stderr) == \
        (2, "km-cli: frob: unknown command (snapshot, list; see km-cli --help)\n"), result


def ask(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
        return conn.makefile().readline()


def test_threaded_server_with_a_file_and_a_listener_serves_again_after_resume(payload, tmp_path):
    """Workers blocked in a condition variable and main in accept(): every thread comes back with its tid, the
    data file at its offset, the listening socket bound to its port again; gdb lists the three threads."""
    data = tmp_path / "data.txt"
    data.write_text("".join(f"line {i:02}\n" for i in range(1, 10)))
    exe, sock, snapshot = payload("snapshot_server.c"), tmp_path / "srv.sock", tmp_path / "srv.kmsnap"
    km = spawn_km(f"--mgtpipe={sock}", exe, data)
    try:
        _, port, *ids = km.stdout.readline().split()
        port, tids = int(port), {int(t) for t in ids[1:]}
        assert [ask(port).split()[:3] for _ in range(2)] == [["1", "line", "01"], ["2", "line", "02"]]
        assert km_cli("snapshot", "--socket", sock, "-o", snapshot).returncode == 0
        assert km.wait(timeout=TIMEOUT_S) == 0
    finally:
        km.kill()
        km.communicate()
    resumed = spawn_km(snapshot)
    try:
        wait_listening(port, resumed, TIMEOUT_S)
        replies = [ask(port).split() for _ in range(3)]
    finally:
        resumed.kill()
        resumed.communicate()
    assert [r[:3] for r in replies] == [["3", "line", "03"], ["4", "line", "04"], ["5", "line", "05"]], replies
    assert {int(r[4]) for r in replies} <= tids, (replies, tids)
    out = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", "info threads", str(exe), str(snapshot)],
                         capture_output=True, text=True, timeout=TIMEOUT_S).stdout
    assert all(f"LWP {tid}" in out for tid in tids) and out.count("LWP") >= 3, out


def test_snapshot_under_gdb_keeps_gdb_attached_and_records_no_breakpoint(payload, tmp_path, free_port):
    """Stopped at a breakpoint, gdb runs km-cli (`shell`) for a live snapshot, then continues; the resumed copy
    runs through the breakpoint's address without a trap."""
    sock, snapshot = tmp_path / "app.sock", tmp_path / "gdb.kmsnap"
    exe = payload("snapshot_echo.c")
    km = start_server("km", exe, free_port, km_options=[f"--mgtpipe={sock}"], stdin=subprocess.PIPE)
    try:
        take = f"{sys.executable} -m monitor.mgmt.client snapshot --socket {sock} -o {snapshot} --live"
        gdb = subprocess.Popen(["gdb", "-q", "-batch", "-nx", "-ex", f"target remote :{free_port}", "-ex",
                                f"break snapshot_echo.c:{line_of('snapshot_echo.c', 'echo')}", "-ex", "continue",
                                "-ex", f"shell {take}", "-ex", "continue", str(exe)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=km_env())
        assert km.stdout.readline() == b"ready\n"
        km.stdin.write(b"a\n")
        km.stdin.close()
        out, _ = gdb.communicate(timeout=TIMEOUT_S)
        assert km.stdout.read() == b"1 a\n" and km.wait(timeout=TIMEOUT_S) == 0, out
    finally:
        km.kill()
        km.wait()
    assert "Breakpoint 1, main" in out and f"snapshot written to {snapshot}" in out, out
    assert "exited normally" in out, out
    resumed = run_km(snapshot, input=b"z\n", timeout=TIMEOUT_S)
    assert (resumed.returncode, resumed.stdout) == (0, b"1 a\n2 z\n"), resumed.stderr.decode()


def test_snapshots_during_gdbs_quick_continues_hold_one_moment(payload, tmp_path, free_port):
    """gdb runs a loop through a breakpoint with an ignore count: each continue runs a while on the stub's thread
    (the quick continue), the thread counting as parked for gdb. A snapshot taken meanwhile must wait for the run's
    end: it recorded the registers of the stop before the run beside memory from after it, so a copy resumed (under
    km -g, gdb reading it) stood in hit(i) with `stage` not 2i+1."""
    sock, exe = tmp_path / "spin.sock", payload("snapshot_spin.c")
    km = start_server("km", exe, free_port, km_options=[f"--mgtpipe={sock}"])
    snapshots: list[Path] = []
    gdb = None
    try:
        gdb = subprocess.Popen(["gdb", "-q", "-batch", "-nx", "-ex", f"target remote :{free_port}", "-ex", "break hit",
                                "-ex", "ignore 1 1000000", "-ex", "continue", str(exe)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=km_env())
        deadline = time.monotonic() + TIMEOUT_S
        while gdb.poll() is None and len(snapshots) < 5 and time.monotonic() < deadline:
            path = tmp_path / f"spin{len(snapshots)}.kmsnap"
            if km_cli("snapshot", "--socket", sock, "-o", path, "--live").returncode == 0:
                snapshots.append(path)
        out, _ = gdb.communicate(timeout=TIMEOUT_S)
        assert km.stdout.read() == b"done\n" and km.wait(timeout=TIMEOUT_S) == 0, out
    finally:
        if gdb is not None:
            gdb.kill()
            gdb.wait()
        km.kill()
        km.wait()
    in_loop = 0
    for path in snapshots:
        resumed = start_server("km", path, free_port)
        try:
            seen = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", f"target remote :{free_port}", "-ex",
                                   "info symbol $pc", "-ex", "p stage", "-ex", "p $rdi", "-ex", "kill", str(exe)],
                                  capture_output=True, text=True, timeout=TIMEOUT_S, env=km_env()).stdout
        finally:
            resumed.kill()
            resumed.wait()
        stage, rdi = (int(re.search(rf"^\${n} = (-?\d+)", seen, re.M)[1]) for n in (1, 2))
        if re.search(r"^hit( \+ \d+)? in section", seen, re.M):
            in_loop += 1
            assert stage == 2 * rdi + 1, f"{path.name}: {seen}"
        elif re.search(r"^spin( \+ \d+)? in section", seen, re.M):
            in_loop += 1
            assert stage % 2 == 0, f"{path.name}: {seen}"
    assert in_loop, "no snapshot was taken inside the loop"
