"""The management socket: `km --mgtpipe=PATH` serves km-cli, which snapshots a payload blocked in read(0) (live
or ending it) and lists the kms it can reach; each resumed copy goes on counting from its snapshot, reading the new
km's stdin. km-cli's failures are one line."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_km_cli_errors_are_one_line(tmp_path):
    result = km_cli("snapshot", "--socket", tmp_path / "none.sock", "-o", tmp_path / "s")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "no such socket" in result.stderr, result
    result = km_cli("snapshot", "-o", tmp_path / "s")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
