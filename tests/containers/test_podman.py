"""podman run/exec with --runtime km-runtime: the container's process runs under km, and what a user sees (output,
exit status, stdin, a terminal, --user, exec, a published port, kmcore in a volume, gdb from the host, errors)
passes through as with runc."""
from __future__ import annotations

import subprocess

from harness.engines import IMAGE, wait_for
from harness.gdb import free_port
from harness.images import PYTHON_PROBE, PYTHON_PROBE_OUTPUT


def test_static_payload(podman, trace) -> None:
    r = podman.run_km(IMAGE, "/hello", "from-podman")
    assert r.returncode == 0, r.stderr
    assert "argv[1]=[from-podman]" in r.stdout
    assert "-> ['/opt/km/bin/km', '--argv0=/hello', '/hello', 'from-podman']" in trace()


def test_verbose_trace_by_annotation(podman) -> None:
    r = podman.run_km("--annotation", "km.verbose=strace", IMAGE, "/hello", "traced")
    assert r.returncode == 0 and "argv[1]=[traced]" in r.stdout, r.stderr
    assert "strace" in r.stderr and "exit_group(0" in r.stderr, r.stderr[-2000:]


def test_exit_status_and_stdin(podman) -> None:
    r = podman.run_km("-i", IMAGE, "/bin/sh", "-c", "read line; echo got $line; exit 7", input="piped\n")
    assert (r.returncode, r.stdout) == (7, "got piped\n"), r.stderr


def test_terminal(podman) -> None:
    r = podman.run_km("-t", IMAGE, "/hello", "tty", text=False)
    assert r.returncode == 0 and b"argv[1]=[tty]\r\n" in r.stdout, r.stderr


def test_user(podman) -> None:
    r = podman.run_km("--user", "1000:1000", IMAGE, "/bin/sh", "-c", "id -u; /hello as-user")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1000\n") and "argv[1]=[as-user]" in r.stdout


def test_threads(podman) -> None:
    for what in ("counter", "barrier", "join"):
        native = subprocess.run([podman.base[0], *podman.base[1:], "run", "--rm", IMAGE, "/threads", what],
                                capture_output=True, text=True, env=podman.env, timeout=120)
        r = podman.run_km(IMAGE, "/threads", what)
        assert (r.returncode, r.stdout) == (native.returncode, native.stdout), r.stderr


def test_init_stays_native(podman, trace) -> None:
    r = podman.run_km("--init", IMAGE, "/hello", "with-init")
    assert r.returncode == 0 and "argv[1]=[with-init]" in r.stdout, r.stderr
    assert "['/run/podman-init', '--', '/opt/km/bin/km'" in trace()


def test_exec_into_a_running_container(podman, trace) -> None:
    name = "km-exec-test"
    r = podman("run", "-d", "--name", name, "--runtime", podman.runtime, IMAGE, "/bin/sleep", "60")
    assert r.returncode == 0, r.stderr
    try:
        r = podman("exec", name, "/hello", "via-exec")
        assert r.returncode == 0 and "argv[1]=[via-exec]" in r.stdout, r.stderr
        assert "'via-exec'] -> ['/opt/km/bin/km'" in trace()
        r = podman("exec", "-i", name, "/bin/sh", "-c", "cat; exit 3", input="to-exec\n")
        assert (r.returncode, r.stdout) == (3, "to-exec\n"), r.stderr
        r = podman("exec", "-i", name, "python3", "-c", PYTHON_PROBE, input="to-python\n")
        assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
        assert "-> ['/opt/km/bin/km', '--argv0=python3', '/usr/bin/python3', '-c'" in trace()
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_go_http_server_through_a_published_port(podman, http_server_check) -> None:
    port = free_port()
    proc = subprocess.Popen([*podman.base, "run", "--rm", "--runtime", podman.runtime, "-p", f"{port}:8080", IMAGE,
                             "/http", "8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=podman.env)
    http_server_check(proc, port, "8080")


def test_kmcore_lands_in_a_volume(podman, tmp_path) -> None:
    tmp_path.chmod(0o777)
    r = podman.run_km("-v", f"{tmp_path}:/cores", "-e", "KM_COREDUMP=/cores/kmcore", IMAGE, "/crash", "segv")
    assert r.returncode == 139, r.stderr
    assert "killed by SIGSEGV (core dumped to /cores/kmcore)" in r.stderr
    core = tmp_path / "kmcore"
    assert core.read_bytes()[:4] == b"\x7fELF"
    gdb = subprocess.run(["gdb", "-q", "-batch", "-ex", "bt", str(podman.top.parent / "image" / "rootfs" / "crash"),
                          str(core)], capture_output=True, text=True, timeout=120)
    assert "SIGSEGV" in gdb.stdout and "leaf" in gdb.stdout, gdb.stdout + gdb.stderr


def test_gdb_attaches_from_the_host_through_a_published_port(podman) -> None:
    port = free_port()
    name = "km-gdb-test"
    r = podman("run", "-d", "--name", name, "--runtime", podman.runtime, "-p", f"{port}:2159",
               "--annotation", "km.gdb_listen=2159", IMAGE, "/sleeper")
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: "gdb may attach" in podman("logs", name).stderr, 60, "km's gdb stub")
        gdb = subprocess.run(["gdb", "-q", "-batch", "-ex", f"target remote 127.0.0.1:{port}", "-ex", "bt",
                              "-ex", "detach", str(podman.top.parent / "image" / "rootfs" / "sleeper")],
                             capture_output=True, text=True, timeout=120)
        assert "main" in gdb.stdout, gdb.stdout + gdb.stderr
        assert podman("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true", "still running"
    finally:
        podman("rm", "-f", "-t", "0", name)


def test_dynamic_payload(podman, trace) -> None:
    r = podman.run_km(IMAGE, "/dhello", "dyn")
    assert r.returncode == 0 and "argv[1]=[dyn]" in r.stdout, r.stderr
    assert "'/dhello', 'dyn'] -> ['/opt/km/bin/km', '--argv0=/dhello', '/dhello', 'dyn']" in trace()


def test_python_with_the_images_own_libraries(podman, trace) -> None:
    """Debian's python3 -c under km: the image's ld.so and libc (never the bundle's), a thread, a child, stdin,
    the exit status."""
    r = podman.run_km("-i", IMAGE, "python3", "-c", PYTHON_PROBE, input="to-python\n")
    assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
    assert "-> ['/opt/km/bin/km', '--argv0=python3', '/usr/bin/python3', '-c'" in trace()


def test_python_script_through_env(podman, trace) -> None:
    """A #!/usr/bin/env python3 entrypoint: km runs env (busybox), which execs python3 inside the same km."""
    r = podman.run_km("-i", IMAGE, "/app/probe.py", input="to-python\n")
    assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
    assert "-> ['/opt/km/bin/km', '--argv0=/usr/bin/env', '/bin/busybox', 'python3', '/app/probe.py']" in trace()


def test_bad_input_one_line(podman, bad_input) -> None:
    bad_input.check(podman.run_km(IMAGE, bad_input.program))
