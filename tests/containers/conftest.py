"""The container tier: real engines (podman, containerd's ctr, Docker) running payloads through km-runtime.
Slow (engines start in seconds), so it runs only from tools/test-containers.sh (KM_CONTAINER_TESTS=1); the main
suite drives km-runtime and runc directly (tests/integration/test_oci_runtime.py)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.build import build
from harness.bundle import km_bundle
from harness.engines import Containerd, Docker, Podman, build_rootfs, http_get

if not os.environ.get("KM_CONTAINER_TESTS"):
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def workdir():
    top = Path(tempfile.mkdtemp(prefix="km-containers."))
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="session")
def bundle(workdir):
    """The test's km bundle, with a trace of every rewrite (BUNDLE/etc/km-runtime.json)."""
    b = km_bundle()
    (b / "etc").mkdir(exist_ok=True)
    (b / "etc" / "km-runtime.json").write_text(json.dumps({"trace": str(workdir / "km-runtime.trace")}))
    (workdir / "km-runtime.trace").touch()
    (workdir / "km-runtime.trace").chmod(0o666)
    return b


@pytest.fixture
def runtime_settings(bundle, workdir):
    """Changes km-runtime's host settings for one test (then puts the tracing ones back)."""
    path = bundle / "etc" / "km-runtime.json"
    saved = path.read_text()

    def change(**settings):
        path.write_text(json.dumps({**json.loads(saved), **settings}))
    yield change
    path.write_text(saved)


@pytest.fixture(scope="session")
def image_payloads() -> dict[str, Path]:
    return {"/hello": build("run_hello.c", "musl"), "/threads": build("thr_sync.c", "glibc"),
            "/http": build("oci_http_server.go"), "/crash": build("core_crash.c", "glibc"),
            "/sleeper": build("gdb_sleep.c", "glibc"), "/dhello": build("run_hello.c", "dynamic")}


@pytest.fixture(scope="session")
def podman(workdir, bundle, image_payloads):
    if not shutil.which("podman"):
        pytest.fail("podman is not installed (bash tools/install-engines.sh)")
    p = Podman(workdir / "podman", bundle)
    p.import_image(build_rootfs(workdir / "image", image_payloads))
    yield p
    p.cleanup()


@pytest.fixture(scope="session")
def containerd(workdir, podman):
    c = Containerd(workdir / "containerd")
    r = c.ctr("images", "import", str(podman.save_docker_archive()))
    assert r.returncode == 0, r.stderr
    yield c
    c.stop()


@pytest.fixture(scope="session")
def docker(workdir, bundle, podman):
    d = Docker(workdir / "docker", bundle)
    r = d("load", "-i", str(podman.save_docker_archive()))
    assert r.returncode == 0, r.stderr
    yield d
    d.stop()


@pytest.fixture
def trace(workdir):
    """What km-runtime did since the test began."""
    path = workdir / "km-runtime.trace"
    start = path.stat().st_size
    return lambda: path.read_text()[start:]


@dataclass(frozen=True)
class BadInput:
    """A container start km-runtime must refuse, and the one line every engine shows for it."""

    case: str
    program: str
    expected: str

    def check(self, result: subprocess.CompletedProcess) -> None:
        """The start failed and km-runtime said so in exactly one line (an engine may add a line of its own)."""
        assert result.returncode != 0, result.stderr
        ours = [line for line in result.stderr.splitlines() if "km-runtime" in line or "Traceback" in line]
        assert len(ours) == 1 and self.expected in ours[0], result.stderr


@pytest.fixture(params=["not-elf", "no-kvm", "no-km-bundle"])
def bad_input(request, runtime_settings, tmp_path) -> BadInput:
    """Each engine's error test is run once per bad input: a program that is not ELF, no KVM device on the host,
    no km bundle where the host settings say (the last two set up through the runtime's settings file)."""
    if request.param == "no-kvm":
        runtime_settings(kvm_device=str(tmp_path / "kvm"))
        return BadInput(request.param, "/hello", f"km-runtime: {tmp_path}/kvm: no such device on this host")
    if request.param == "no-km-bundle":
        runtime_settings(km_bundle=str(tmp_path / "no-bundle"))
        return BadInput(request.param, "/hello", f"km-runtime: {tmp_path}/no-bundle: no km bundle there")
    return BadInput(request.param, "/etc/passwd", "km-runtime: /etc/passwd: not an ELF executable (km runs Linux "
                                                  "x86-64 ELF programs)")


def serves_two_requests(server: subprocess.Popen, port: int, listening: str) -> None:
    """The Go server (tests/payloads/oci_http_server.go) in a container answers two requests from the host on
    `port`, ends after the second and says so; on a timeout the assertion carries what it printed."""
    try:
        assert http_get(port, "/first") == "hello from km in a container, /first #1\n"
        assert http_get(port, "/quit").endswith("/quit #2\n")
        out, err = server.communicate(timeout=60)
        assert (server.returncode, out) == (0, f"listening on :{listening}\nserved 2\n"), err
    except TimeoutError as e:
        if server.poll() is None:
            server.kill()
        out, err = server.communicate()
        raise AssertionError(f"{e}; the server said: {out!r} {err!r}") from None
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()


@pytest.fixture
def http_server_check():
    """serves_two_requests, for the engines' tests (a conftest is not imported by name)."""
    return serves_two_requests
