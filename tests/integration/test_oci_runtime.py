"""km-runtime driving runc directly as an engine would (run; create/start/delete; exec --process), from the
test's km bundle: the container's process runs under km, its status and output pass through, and bad input
gives one line on stderr and in the engine's --log file. The engines themselves: tools/test-containers.sh."""
from __future__ import annotations

import json
import shutil
import subprocess
import time

import pytest

from harness.bundle import km_bundle
from harness.images import PYTHON_PROBE, PYTHON_PROBE_IMPORTS, PYTHON_PROBE_OUTPUT, python_image_files
from harness.oci import km_runtime, make_oci_bundle, runtime_env

pytestmark = [pytest.mark.skipif(shutil.which("runc") is None, reason="runc is not installed (tools/install.sh)"),
              pytest.mark.skipif(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0",
                                 reason="runc needs root here")]


@pytest.fixture(scope="module")
def bundle():
    return km_bundle()


@pytest.fixture
def runc_root(tmp_path):
    return str(tmp_path / "runc-root")


def test_run_static_payload_under_km(bundle, payload, tmp_path, runc_root) -> None:
    oci = make_oci_bundle(tmp_path, {"/hello": payload("run_hello.c", "musl")}, ["/hello", "from-runc"])
    trace = tmp_path / "trace"
    r = km_runtime(bundle, "--root", runc_root, "run", "--bundle", str(oci), "t-run",
                   env=runtime_env(bundle, KM_RUNTIME_TRACE=str(trace)))
    assert r.returncode == 0, r.stderr
    assert "argv[1]=[from-runc]" in r.stdout
    assert "/opt/km/bin/km" in trace.read_text(), "the process ran under km"


def test_exit_status_stdin_and_fork_exec(bundle, payload, tmp_path, runc_root) -> None:
    oci = make_oci_bundle(tmp_path, {"/hello": payload("run_hello.c", "musl"), "/bin/busybox": "/bin/busybox"},
                          ["/bin/busybox", "sh", "-c", "read x; echo got $x; /hello child; exit 7"])
    r = km_runtime(bundle, "--root", runc_root, "run", "--bundle", str(oci), "t-status", input="line\n")
    assert r.returncode == 7, r.stderr
    assert "got line" in r.stdout and "argv[1]=[child]" in r.stdout


def test_create_start_exec_delete(bundle, payload, tmp_path, runc_root) -> None:
    """The engine's sequence: create, start, exec --process (wrapped like the container's process), delete."""
    oci = make_oci_bundle(tmp_path, {"/hello": payload("run_hello.c", "musl"), "/bin/busybox": "/bin/busybox"},
                          ["/bin/busybox", "sleep", "30"])
    trace = tmp_path / "trace"
    env = runtime_env(bundle, KM_RUNTIME_TRACE=str(trace))
    cid = "t-exec"
    out = tmp_path / "container-output"
    r = km_runtime(bundle, "--root", runc_root, "create", "--bundle", str(oci), cid, env=env, output=out)
    assert r.returncode == 0, out.read_text()
    try:
        assert km_runtime(bundle, "--root", runc_root, "start", cid, env=env).returncode == 0
        process = json.loads((oci / "config.json").read_text())["process"]
        process["args"] = ["/hello", "via-exec"]
        (tmp_path / "process.json").write_text(json.dumps(process))
        r = km_runtime(bundle, "--root", runc_root, "exec", "--process", str(tmp_path / "process.json"), cid,
                       env=env)
        assert r.returncode == 0, r.stderr
        assert "argv[1]=[via-exec]" in r.stdout
        assert "'/hello', 'via-exec'] -> ['/opt/km/bin/km'" in trace.read_text()
    finally:
        km_runtime(bundle, "--root", runc_root, "kill", cid, "KILL", env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if km_runtime(bundle, "--root", runc_root, "delete", cid, env=env).returncode == 0:
                break
            time.sleep(0.1)
        else:
            km_runtime(bundle, "--root", runc_root, "delete", "--force", cid, env=env)


@pytest.mark.parametrize("how", ["-c", "script"])
def test_dynamic_python_with_the_images_own_libraries(how, bundle, tmp_path, runc_root) -> None:
    """Debian's python3 (dynamic) runs under km with the image's ld.so and libc, never the bundle's; a thread, a
    forked and exec'd child, stdin and the exit status pass through. A #! script runs its interpreter under km."""
    script = tmp_path / "probe.py"
    script.write_text(f"#!/usr/bin/python3\n{PYTHON_PROBE}")
    script.chmod(0o755)
    files = {**python_image_files(PYTHON_PROBE_IMPORTS), "/bin/busybox": "/bin/busybox", "/app/probe.py": script}
    args, wrapped = (["python3", "-c", PYTHON_PROBE], "'--argv0=python3', '/usr/bin/python3', '-c'") \
        if how == "-c" else (["/app/probe.py"], "'--argv0=/usr/bin/python3', '/usr/bin/python3', '/app/probe.py']")
    oci = make_oci_bundle(tmp_path, files, args)
    trace = tmp_path / "trace"
    r = km_runtime(bundle, "--root", runc_root, "run", "--bundle", str(oci), "t-python", input="to-python\n",
                   env=runtime_env(bundle, KM_RUNTIME_TRACE=str(trace)))
    assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
    assert f"-> ['/opt/km/bin/km', {wrapped}" in trace.read_text(), "python3 ran under km"


def test_kmcore_lands_in_a_mounted_volume(bundle, payload, tmp_path, runc_root) -> None:
    cores = tmp_path / "cores"
    cores.mkdir()
    oci = make_oci_bundle(tmp_path, {"/crash": payload("core_crash.c", "glibc")}, ["/crash", "segv"],
                          env=["KM_COREDUMP=/cores/kmcore"],
                          mounts=[{"destination": "/cores", "type": "bind", "source": str(cores),
                                   "options": ["rbind", "rw"]}])
    r = km_runtime(bundle, "--root", runc_root, "run", "--bundle", str(oci), "t-core")
    assert r.returncode == 128 + 11, r.stderr
    assert "core dumped to /cores/kmcore" in r.stderr
    assert (cores / "kmcore").read_bytes()[:4] == b"\x7fELF"


@pytest.mark.parametrize("case", ["not-elf", "no-kvm", "no-km-bundle", "no-oci-bundle", "missing-entrypoint"])
def test_bad_input_is_one_line_on_stderr_and_in_the_log(case, bundle, tmp_path, runc_root) -> None:
    script = tmp_path / "notes.txt"
    script.write_text("just text\n")
    script.chmod(0o755)
    oci = make_oci_bundle(tmp_path, {"/notes": script}, ["/missing" if case == "missing-entrypoint" else "/notes"])
    env = runtime_env(bundle)
    expected = {"not-elf": "km-runtime: /notes: not an ELF executable",
                "no-kvm": "km-runtime: /dev/no-kvm: no such device on this host",
                "no-km-bundle": f"km-runtime: {tmp_path}/nowhere: no km bundle there",
                "no-oci-bundle": f"km-runtime: {tmp_path}/gone: no such bundle directory",
                "missing-entrypoint": "km-runtime: /missing: no such file in the container"}[case]
    if case == "no-kvm":
        env["KM_RUNTIME_KVM"] = "/dev/no-kvm"
    elif case == "no-km-bundle":
        env["KM_RUNTIME_BUNDLE"] = str(tmp_path / "nowhere")
    log = tmp_path / "log.json"
    where = str(tmp_path / "gone") if case == "no-oci-bundle" else str(oci)
    r = km_runtime(bundle, "--root", runc_root, "--log", str(log), "--log-format", "json", "create",
                   "--bundle", where, f"t-{case}", env=env)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), r.stderr
    entry = json.loads(log.read_text().strip().splitlines()[-1])
    assert entry["level"] == "error" and entry["msg"] == lines[0]


def test_pass_through_commands_reach_runc(bundle, runc_root) -> None:
    r = km_runtime(bundle, "--version")
    assert r.returncode == 0 and r.stdout.startswith("runc version")
    r = km_runtime(bundle, "--root", runc_root, "state", "no-such-container")
    assert r.returncode != 0 and "container does not exist" in r.stderr


def test_exec_into_an_unknown_container_is_one_line(bundle, tmp_path, runc_root) -> None:
    """exec reads the container's bundle from the delegate's `state`: its refusal is km-runtime's one line, without
    the delegate's own log header (time=... level=error msg=...)."""
    process = tmp_path / "process.json"
    process.write_text(json.dumps({"args": ["/hello"], "cwd": "/"}))
    r = km_runtime(bundle, "--root", runc_root, "exec", "--process", str(process), "no-such-container")
    assert (r.returncode, r.stderr) == (1, "km-runtime: no-such-container: container does not exist\n"), r.stderr


@pytest.mark.parametrize("how", ["config", "environment"])
def test_configured_delegate_gets_every_command(how, bundle, tmp_path) -> None:
    """Pass-through commands go from the launcher straight to the delegate (no Python), create through Python:
    both resolve the same delegate."""
    log = tmp_path / "delegate.log"
    delegate = tmp_path / "my-runc"
    delegate.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    delegate.chmod(0o755)
    oci = make_oci_bundle(tmp_path, {}, ["/bin/true"], env=["KM_WRAP=off"])
    env = runtime_env(bundle)
    if how == "config":
        (tmp_path / "runtime.json").write_text(json.dumps({"delegate": str(delegate)}))
        env["KM_RUNTIME_CONFIG"] = str(tmp_path / "runtime.json")
    else:
        env["KM_RUNTIME_DELEGATE"] = str(delegate)
    for args in (["--root", "/r", "state", "c1"], ["--log", "/l", "create", "--bundle", str(oci), "c1"],
                 ["delete", "--force", "c1"]):
        assert km_runtime(bundle, *args, env=env).returncode == 0
    assert log.read_text().splitlines() == ["--root /r state c1", f"--log /l create --bundle {oci} c1",
                                            "delete --force c1"]
