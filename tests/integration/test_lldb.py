"""lldb as km's client (`gdb-remote PORT`), compared with lldb against lldb-server on the same program: a
breakpoint, bt, registers (xmm/ymm included), memory, a variable, a step, the thread list and the exit status;
thread names (jThreadsInfo, the stop reply's hexname) and `kill`."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from harness.debuggee import start_server

BASIC = "gdb_basic.c"
pytestmark = pytest.mark.skipif(shutil.which("lldb") is None or shutil.which("lldb-server") is None,
                                reason="lldb and lldb-server are not installed")
COMMANDS = ["breakpoint set -n add", "continue", "bt", "register read rip rsp", "register read xmm0 ymm0",
            "memory read -s8 -fx -c2 $rsp", "p counter", "step", "thread list", "breakpoint delete 1", "continue"]


def _lldb(exe, port: int, commands: list[str]) -> subprocess.CompletedProcess:
    args = ["lldb", "-b", "-o", f"target create {exe}", "-o", f"gdb-remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-o", command]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("backend", ["km", "lldb-server"])
def test_lldb_shows_thread_names_and_kills(backend, payload, free_port) -> None:
    """`thread list` names each thread as Linux does (PR_SET_NAME, pthread_setname_np, else the program's name),
    and `kill` ends the process with SIGKILL's status."""
    exe = payload("thread_names.c")
    server = start_server(backend, exe, free_port)
    try:
        lldb = _lldb(exe, free_port, ["breakpoint set -n names_set", "continue", "thread list", "kill"])
    finally:
        server.communicate(timeout=30)
    text = lldb.stdout
    threads = re.findall(r"thread #\d+: tid = .*, name = '([^']*)'", text)
    assert sorted(threads) == sorted(["km-worker-one", "prctl-named", "set-by-main", exe.name[:15]]), \
        text + lldb.stderr
    assert re.search(r"\* thread #1: .*`names_set at thread_names\.c:\d+:\d+, name = '[^']*', "
                     r"stop reason = breakpoint 1\.1", text), text
    assert "exited with status = 9" in text, text


@pytest.mark.parametrize("backend", ["km", "lldb-server"])
def test_lldb_breaks_steps_reads_and_sees_the_exit(backend, payload, free_port) -> None:
    exe = payload(BASIC)
    server = start_server(backend, exe, free_port)
    try:
        lldb = _lldb(exe, free_port, COMMANDS)
    finally:
        out, err = server.communicate(timeout=30)
    text = lldb.stdout
    assert "stop reason = breakpoint 1.1" in text, text + lldb.stderr
    assert re.search(r"frame #0: .*`add\(a=41, b=1\) at gdb_basic\.c:18", text), text
    assert re.search(r"frame #1: .*`main at gdb_basic\.c:30", text), text
    assert re.search(r"rip = 0x0000000000401\w+ .*`add \+ \d+ at gdb_basic\.c:18", text), text
    assert re.search(r"xmm0 = \{(0x\w\w ?){16}\}", text) and re.search(r"ymm0 = \{(0x\w\w ?){32}\}", text), text
    assert re.search(r"0x7fff\w+: 0x00007fff\w+ 0x0000000000401\w+", text), text     # saved rbp, return address
    assert "(int) $0 = 41" in text or "(int) $1 = 41" in text, text
    assert re.search(r"stop reason = step in\n.*\n.*gdb_basic\.c:19", text) or "gdb_basic.c:19:12" in text, text
    assert re.search(r"\* thread #1: tid = \w+, .*`add\(a=41, b=1\) at gdb_basic\.c:19", text), text
    assert "exited with status = 3" in text, text
    assert "counter=42" in (text + out.decode()), text
