"""containerd, the layer kubelet drives: ctr runs containers through the runc.v2 shim with km-runtime as its
runc binary (--runc-binary = the BinaryName a RuntimeClass handler names); deploy/containerd-km.toml is a valid
containerd configuration. No kubelet exists on this machine, so the RuntimeClass itself is not run here."""
from __future__ import annotations

import subprocess
from pathlib import Path

from harness.engines import IMAGE
from harness.gdb import free_port
from harness.images import PYTHON_PROBE, PYTHON_PROBE_OUTPUT

ROOT = Path(__file__).resolve().parents[2]


def ctr_km(containerd, bundle, name: str, *command: str, **kw):
    return containerd.ctr("run", "--rm", "--runtime", "io.containerd.runc.v2", "--runc-binary",
                          str(bundle / "bin" / "km-runtime"), IMAGE, name, *command, **kw)


def test_static_payload(containerd, bundle, trace) -> None:
    r = ctr_km(containerd, bundle, "km-ctr-hello", "/hello", "from-ctr")
    assert r.returncode == 0 and "argv[1]=[from-ctr]" in r.stdout, r.stderr
    assert "-> ['/opt/km/bin/km', '--argv0=/hello', '/hello', 'from-ctr']" in trace()


def test_exit_status_fork_exec_and_threads(containerd, bundle) -> None:
    r = ctr_km(containerd, bundle, "km-ctr-status", "/bin/sh", "-c", "/threads barrier | wc -l; exit 5")
    assert r.returncode == 5, r.stderr
    assert int(r.stdout.strip()) > 0


def test_dynamic_python(containerd, bundle, trace) -> None:
    r = ctr_km(containerd, bundle, "km-ctr-python", "python3", "-c", PYTHON_PROBE, input="to-python\n")
    assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
    assert "-> ['/opt/km/bin/km', '--argv0=python3', '/usr/bin/python3', '-c'" in trace()


def test_go_http_server_answers_the_host(containerd, bundle, http_server_check) -> None:
    """ctr has no port publishing: the container shares the host's network (--net-host) and answers there."""
    port = free_port()
    proc = subprocess.Popen(["ctr", "-a", containerd.sock, "run", "--rm", "--net-host", "--runtime",
                             "io.containerd.runc.v2", "--runc-binary", str(bundle / "bin" / "km-runtime"), IMAGE,
                             "km-ctr-http", "/http", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    http_server_check(proc, port, str(port))


def test_bad_input_one_line(containerd, bundle, bad_input) -> None:
    bad_input.check(ctr_km(containerd, bundle, f"km-ctr-bad-{bad_input.case}", bad_input.program))


def test_runtime_handler_snippet_is_valid_containerd_config(containerd, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("version = 2\n" + (ROOT / "deploy" / "containerd-km.toml").read_text())
    r = subprocess.run(["containerd", "--config", str(config), "config", "dump"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.km]' in r.stdout
    assert 'BinaryName = "/opt/km/bin/km-runtime"' in r.stdout
