"""fork/vfork/posix_spawn/execve/wait4: a forking payload continues in a new km process (its own VM), and
KM_GDB_CHILD_FORK_WAIT makes a matching child wait for gdb on the next free port above the parent's."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from harness.km import run_km, spawn_km
from harness.markers import line_of

EXPECTED = ["child sees 2", "parent sees 1, child exit 5", "child killed by signal 11", "exec'd with execl",
            "exec child exit 7", "exec'd with posix_spawn", "posix_spawn 0, exit 7", "exec of a missing file fails: -1"]


def test_fork_exec_wait_match_native(payload, tmp_path) -> None:
    for toolchain in ("musl", "glibc"):
        program = payload("fork_proc.c", toolchain)
        native = subprocess.run([str(program)], capture_output=True, text=True, cwd=tmp_path, timeout=60)
        km = run_km(program, cwd=tmp_path, timeout=120)
        out = km.stdout.decode()
        assert out.splitlines() == native.stdout.splitlines() == EXPECTED, (toolchain, out, km.stderr.decode())
        assert km.returncode == native.returncode == 0, km.stderr.decode()


def test_go_os_exec(payload, tmp_path) -> None:
    km = run_km(payload("fork_exec.go"), cwd=tmp_path, timeout=120)
    assert km.stdout.decode() == 'parent got "child ok\\n" exit 3\n', km.stderr.decode()
    assert km.returncode == 0


def test_forked_child_waits_for_gdb(payload, tmp_path, free_port) -> None:
    program = payload("fork_proc.c", "musl")
    km = spawn_km(f"-g{free_port}", "--gdb_listen", program, "debugchild", cwd=tmp_path,
                  env={"KM_GDB_CHILD_FORK_WAIT": "fork_proc"})
    try:
        announce = b""
        while b"waits for a debugger on port" not in announce:
            line = km.stderr.readline()
            assert line, announce.decode()
            announce += line
        port = int(re.search(rb"on port (\d+)", announce).group(1))
        assert port > free_port
        line = line_of("fork_proc.c", "child_work")
        gdb = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", f"target remote 127.0.0.1:{port}",
                              "-ex", f"break fork_proc.c:{line}", "-ex", "continue", "-ex", "bt", "-ex", "continue",
                              str(program)], capture_output=True, text=True, timeout=120)
        assert f"fork_proc.c:{line}" in gdb.stdout and "child_work (x=21)" in gdb.stdout, gdb.stdout + gdb.stderr
        assert "exited with code 052" in gdb.stdout, gdb.stdout
        out, err = km.communicate(timeout=60)
        assert b"child returned 42" in out, err
        assert km.returncode == 0
    finally:
        km.kill()


def test_exec_of_proc_self_exe_runs_the_payload_again() -> None:
    """busybox runs an applet by executing /proc/self/exe: that is the payload's file, not km's interpreter."""
    r = run_km("/bin/busybox", "sh", "-c", "echo piped | cat; echo $?")
    assert (r.returncode, r.stdout.decode()) == (0, "piped\n0\n"), r.stderr


BUSYBOX = shutil.which("busybox") or "/bin/busybox"
SHELL_CHILDREN = ("for i in 1 2 3; do /bin/true; done; (exit 3); echo s=$?; x=$(echo hi); echo x=$x; echo abc | cat; "
                  f"(exit 5) & wait $!; echo bg=$?; /bin/false; echo f=$?; {BUSYBOX} sh -c 'kill -TERM $$'; echo k=$?")


def _holders(stderr: str) -> int:
    """The count tests/payloads/subreaper.c, the launcher, says last on stderr."""
    found = re.search(r"holders (\d+)\n\Z", stderr)
    assert found, stderr
    return int(found.group(1))


@pytest.mark.parametrize("teardown", ["holder", "inline"])
def test_shell_children_end_as_natively(payload, tmp_path, teardown) -> None:
    """busybox sh's forked children (subshells, command substitution, pipelines, a background job, exec'd programs)
    end with the statuses and output native runs give, whether a forked km hands its teardown to a holder
    (monitor/process/teardown.py) or tears down before it exits (its twin). A subreaper launcher sees the holders,
    orphans once their km has exited: at least one per run with holders, none without."""
    from harness.km import KM, km_env
    if teardown == "holder":
        from monitor.process.teardown import COMPILED
        assert COMPILED.load() is not None, "the teardown module cannot be built here (gcc, python3-dev?)"
    launcher = str(payload("subreaper.c", "glibc"))
    native = subprocess.run([BUSYBOX, "sh", "-c", SHELL_CHILDREN], capture_output=True, text=True, timeout=60)
    assert native.stdout.splitlines()[-1] == "k=143"
    km = subprocess.run([launcher, *KM, BUSYBOX, "sh", "-c", SHELL_CHILDREN], capture_output=True, text=True,
                        timeout=120, env=km_env({"KM_TEARDOWN": "inline"} if teardown == "inline" else None),
                        cwd=tmp_path)
    assert km.stdout == native.stdout, km.stderr
    assert km.returncode == native.returncode == 0
    assert (_holders(km.stderr) > 0) == (teardown == "holder"), km.stderr


@pytest.mark.parametrize("refused", ["clone-vm", "pidfd_open", "close_range"])
def test_a_refused_holder_ends_as_natively(payload, tmp_path, refused) -> None:
    """Where the kernel refuses what the teardown holder needs (a seccomp profile: its clone sharing memory; an
    older kernel: pidfd_open, close_range), a forked km exits plainly: the same statuses and output as native runs
    (the launcher makes the refusal, tests/payloads/seccomp_refuse.c)."""
    from harness.km import KM, km_env
    from monitor.process.teardown import COMPILED
    assert COMPILED.load() is not None, "the teardown module cannot be built here (gcc, python3-dev?)"
    launcher = [str(payload("subreaper.c", "glibc")), str(payload("seccomp_refuse.c", "glibc")), refused]
    native = subprocess.run([*launcher, BUSYBOX, "sh", "-c", SHELL_CHILDREN], capture_output=True,
                            text=True, timeout=60)
    assert native.stdout.splitlines()[-1] == "k=143", native.stderr
    km = subprocess.run([*launcher, *KM, BUSYBOX, "sh", "-c", SHELL_CHILDREN], capture_output=True,
                        text=True, timeout=120, env=km_env(), cwd=tmp_path)
    assert (km.stdout, km.stderr, km.returncode) == (native.stdout, native.stderr, native.returncode)
    assert km.returncode == 0 and _holders(km.stderr) == 0          # refused: no holder (test_shell_children: some)


def test_an_init_that_never_reaps_keeps_one_holder(payload, tmp_path) -> None:
    """A forked km's holder is an orphan reaped by the pid namespace's init; under an init that never reaps (an
    application as a container's pid 1) every holder stayed a zombie, one per fork where native runs leave none.
    The probe holder found unreaped KM_TEARDOWN_PROBE_S after it was made stops holders for the kms of that run:
    here the first fork's holder is the probe and the 11 forks after the pause end plainly."""
    from harness.km import KM, km_env
    from monitor.process.teardown import COMPILED
    assert COMPILED.load() is not None, "the teardown module cannot be built here (gcc, python3-dev?)"
    unshare = ["unshare", "--fork", "--pid", "--mount-proc"]
    if shutil.which("unshare") is None or subprocess.run([*unshare, "true"], capture_output=True).returncode:
        pytest.skip("no pid namespace can be made here (unshare, CAP_SYS_ADMIN)")
    init = payload("noreap_init.c", "glibc")
    script = "/bin/true; sleep 1; for i in 1 2 3 4 5 6 7 8 9 10; do /bin/true; done; (exit 3); echo s=$?"
    native = subprocess.run([*unshare, str(init), BUSYBOX, "sh", "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert (native.stdout, native.stderr, native.returncode) == ("s=3\n", "holders 0\n", 0)
    km = subprocess.run([*unshare, str(init), *KM, BUSYBOX, "sh", "-c", script], capture_output=True, text=True,
                        timeout=120, env=km_env({"KM_TEARDOWN_PROBE_S": "0.5"}), cwd=tmp_path)
    assert (km.stdout, km.stderr, km.returncode) == (native.stdout, "holders 1\n", 0)

