"""Docker (dockerd started by the test with a private daemon.json registering km-runtime as runtime `km`):
`docker run --runtime km` runs the container's process under km."""
from __future__ import annotations

from harness.engines import IMAGE
from harness.images import PYTHON_PROBE, PYTHON_PROBE_OUTPUT


def test_static_payload(docker, trace) -> None:
    r = docker("run", "--rm", "--runtime", "km", IMAGE, "/hello", "from-docker")
    assert r.returncode == 0 and "argv[1]=[from-docker]" in r.stdout, r.stderr
    assert "'from-docker'] -> ['/opt/km/bin/km'" in trace()


def test_exit_status_stdin_and_init(docker, trace) -> None:
    r = docker("run", "--rm", "-i", "--init", "--runtime", "km", IMAGE, "/bin/sh", "-c", "read l; echo got $l; exit 9",
               input="docker-stdin\n")
    assert (r.returncode, r.stdout) == (9, "got docker-stdin\n"), r.stderr
    assert "['/sbin/docker-init', '--', '/opt/km/bin/km'" in trace()


def test_dynamic_python(docker, trace) -> None:
    r = docker("run", "--rm", "-i", "--runtime", "km", IMAGE, "python3", "-c", PYTHON_PROBE, input="to-python\n")
    assert (r.returncode, r.stdout) == (5, PYTHON_PROBE_OUTPUT), r.stderr
    assert "-> ['/opt/km/bin/km', '--argv0=python3', '/usr/bin/python3', '-c'" in trace()


def test_bad_input_one_line(docker, bad_input) -> None:
    bad_input.check(docker("run", "--rm", "--runtime", "km", IMAGE, bad_input.program))
