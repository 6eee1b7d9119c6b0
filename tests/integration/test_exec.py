"""execve served inside the running km (monitor/process/exec_in_process.py), compared with native runs: a chain
static -> dynamic -> #! script -> static exec'ed from a second thread of a multi-threaded payload (the other
threads gone, the pid kept), close-on-exec, signal dispositions, mask, pending signals and alternate stack across
exec, a signalfd kept across it, the FPU's control state reset, argv and environment passed, comm, the exit status and every line of output."""
from __future__ import annotations

import subprocess

import pytest

from harness.km import run_both, run_km

from .test_run import differential


def test_exec_chain_keeps_and_drops_what_linux_does(payload, tmp_path) -> None:
    first, middle = payload("exec_chain.c", "musl"), payload("exec_chain.c", "dynamic")
    script = tmp_path / "chain.sh"
    script.write_text('#!/bin/sh\nexec "$3" final "$2"\n')
    script.chmod(0o755)
    km, native = run_both(first, "start", str(middle), str(script), str(first), cwd=tmp_path)
    assert km == native, f"km: {km}\nnative: {native}"
    status, out, _ = km
    assert status == 7
    assert out.splitlines() == [
        "start: SIGUSR1 caught, SIGUSR2 ignored, threads 2",
        "start: thread is not the leader, execs " + str(middle),
        "check: argv[0] check, same pid yes, tid is pid yes, threads 1",
        "check: SIGUSR1 default, SIGUSR2 ignored, SIGINT blocked and pending, altstack disabled",
        "check: plain fd open, close-on-exec fd closed",
        "check: mxcsr 0x1f80, x87 control word 0x37f",
        "check: CHAIN=passed through, HOME unset, comm " + middle.name[:15],
        "check: the signalfd kept reads signal 2, now not pending",
        "final: argc 3: [final] [from script]",
        "final: comm " + first.name[:15] + ", CHAIN=passed through, SIGUSR2 ignored"]


def test_a_shell_loop_of_execs_loses_no_output(tmp_path) -> None:
    loop = "for i in 1 2 3 4 5; do /bin/echo line $i; /usr/bin/busybox true; done; exec /bin/sh -c 'exit 3'"
    km, native = run_both("/usr/bin/busybox", "sh", "-c", loop, cwd=tmp_path)
    assert km == native == (3, "".join(f"line {i}\n" for i in range(1, 6)), ""), km


def test_signal_death_after_exec_is_seen_as_natively(tmp_path) -> None:
    """A program exec'ed in km that dies of a signal: km dies of it too (a waiting shell sees WTERMSIG), and
    says nothing (the kernel prints nothing either)."""
    command = ["/bin/sh", "-c", "exec /bin/sh -c 'kill -TERM $$'"]
    native = subprocess.run(command, capture_output=True, cwd=tmp_path, timeout=60)
    km = run_km(*command, cwd=tmp_path)
    assert (km.returncode, km.stdout, km.stderr) == (native.returncode, b"", b"") == (-15, b"", b""), km.stderr


def test_maps_after_exec_are_the_new_programs_as_on_linux() -> None:
    """Nothing of the old image is left, and the new program's files land where Linux puts them (no ASLR)."""
    command = ["/bin/sh", "-c", "exec /bin/cat /proc/self/maps"]
    native = subprocess.run(["setarch", "-R", *command], capture_output=True, timeout=60)
    if native.returncode != 0:
        pytest.skip(f"setarch -R is not allowed here: {native.stderr.decode().strip()}")
    km = run_km(*command)

    def files(out: bytes) -> list[str]:
        return [line for line in out.decode().splitlines() if line.split()[-1].startswith("/")]
    assert km.returncode == 0 and files(km.stdout) == files(native.stdout), km.stdout.decode()


def test_an_exec_racing_an_exit_group_ends_as_on_linux(payload) -> None:
    """One thread execs /bin/true while another calls exit_group(7) after a delay swept across km's execve (the
    exec's own work, then de_thread ending the others): Linux's answers are 7 (the exit_group came first) or 0 (the
    exec won), nothing printed. The spin that an exit_group served during de_thread caused (km went on to end, with
    7) is pinned by tests/unit/test_exec_threads.py; this checks the outcome at real timings."""
    exe = payload("exec_vs_exit.c")
    native = subprocess.run([str(exe), "0", "/bin/true"], capture_output=True, timeout=60)
    assert native.returncode in (0, 7) and native.stdout == native.stderr == b"", native
    for delay_us in (0, 500, 1500, 3000):
        km = run_km(exe, str(delay_us), "/bin/true", timeout=30)
        assert km.returncode in (0, 7) and km.stdout == km.stderr == b"", (delay_us, km)


@pytest.mark.parametrize("mode, n", [("many", "5000"), ("long", "131071"), ("long", "131072"), ("total", "9000")])
def test_execve_argument_limits_match_native(payload, mode, n) -> None:
    """execve takes any number of arguments within the byte limit (km once read only the first 4096, silently),
    and answers E2BIG for one string past MAX_ARG_STRLEN (was ENAMETOOLONG) and for a total past a quarter of the
    stack's rlimit (9000 x 1000 bytes against 8 MiB / 4)."""
    native, km = differential(payload("exec_args.c", "musl"), mode, n)
    assert km.stdout == native.stdout


def test_execve_with_no_argument_passes_an_empty_argv0_as_linux(payload) -> None:
    """execve(path, {NULL}, envp): Linux >= 5.18 gives the new program argc 1 and argv[0] "" (km passed the path)."""
    native, km = differential(payload("exec_args.c", "musl"), "none")
    assert km.stdout == native.stdout == b"argc 1 argv0 []\n"
