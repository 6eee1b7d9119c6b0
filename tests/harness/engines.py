"""Real container engines for the container tier (tools/test-containers.sh), each with private storage, state
and configuration under one session directory, so nothing on the machine is changed or shared: podman (runc for
native runs, km-runtime from the test's bundle), containerd started by the test (ctr, the runc.v2 shim), dockerd
started by the test. The image is built locally from a rootfs tarball (`podman import`), never pulled."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .images import PYTHON_PROBE, PYTHON_PROBE_IMPORTS, python_image_files

IMAGE = "localhost/km-test:1"
# conmon runs runtimes with hard NPROC 32768 and this machine lacks CAP_SYS_RESOURCE: runc alone needs these;
# km-runtime clamps the rlimits itself, so its containers run without them
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
events_logger = "file"
cgroup_manager = "cgroupfs"
"""


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not within {timeout} s")


def build_rootfs(where: Path, payloads: dict[str, Path]) -> Path:
    """busybox (and its applet links, /usr/bin/env among them), the payloads, a user 1000, and Debian's python3
    (a dynamic program with its own glibc and the standard library the probe script needs; harness/images.py),
    at /usr/bin/python3 and behind a #!/usr/bin/env python3 script /app/probe.py."""
    rootfs = where / "rootfs"
    for d in ("bin", "etc", "tmp", "cores", "app", "usr/bin"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "cat", "echo", "sleep", "id", "ls", "true", "wc"):
        os.symlink("busybox", rootfs / "bin" / applet)
    os.symlink("/bin/busybox", rootfs / "usr" / "bin" / "env")
    files = {**python_image_files(PYTHON_PROBE_IMPORTS), **payloads}
    for inside, src in files.items():
        (rootfs / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, rootfs / inside.lstrip("/"))
    (rootfs / "app" / "probe.py").write_text(f"#!/usr/bin/env python3\n{PYTHON_PROBE}")
    (rootfs / "app" / "probe.py").chmod(0o755)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/tmp:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")
    (rootfs / "cores").chmod(0o777)
    (rootfs / "tmp").chmod(0o1777)
    return rootfs


class Podman:
    def __init__(self, top: Path, km_bundle: Path) -> None:
        self.top, self.km_bundle = top, km_bundle
        top.mkdir(parents=True, exist_ok=True)
        (top / "containers.conf").write_text(CONTAINERS_CONF)
        self.base = ["podman", "--root", str(top / "storage"), "--runroot", str(top / "run"),
                     "--tmpdir", str(top / "tmp")]
        self.env = dict(os.environ, CONTAINERS_CONF=str(top / "containers.conf"))
        self.runtime = str(km_bundle / "bin" / "km-runtime")

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None, check: bool = False,
                 **kw) -> subprocess.CompletedProcess:
        kw.setdefault("text", True)
        return subprocess.run([*self.base, *args], capture_output=True, timeout=timeout, env=self.env,
                              input=input, check=check, **kw)

    def run_km(self, *args: str, **kw) -> subprocess.CompletedProcess:
        """podman run --rm --runtime km-runtime ARGS (image and command included in ARGS)."""
        return self("run", "--rm", "--runtime", self.runtime, *args, **kw)

    def import_image(self, rootfs: Path) -> None:
        tar = self.top / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tar), "."], check=True)
        self("import", "-q", str(tar), IMAGE, check=True)

    def save_docker_archive(self) -> Path:
        out = self.top / "image.docker.tar"
        if not out.exists():
            self("save", "--format", "docker-archive", "-o", str(out), IMAGE, check=True)
        return out

    def cleanup(self) -> None:
        self("rm", "-af", "-t", "0")
        self("rmi", "-af")
        subprocess.run(["umount", "-R", str(self.top / "storage" / "overlay")], capture_output=True)


class Containerd:
    """containerd with its own root, state and socket, the CRI plugin off (no kubelet here)."""

    def __init__(self, top: Path, extra_config: str = "") -> None:
        self.top = top
        top.mkdir(parents=True, exist_ok=True)
        self.sock = str(top / "containerd.sock")
        config = top / "containerd.toml"
        config.write_text(f'version = 2\nroot = "{top}/root"\nstate = "{top}/state"\n'
                          f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{self.sock}"\n'
                          f'[ttrpc]\n  address = "{self.sock}.ttrpc"\n{extra_config}')
        self.config = config
        self.log = open(top / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_for(lambda: self.ctr("version").returncode == 0, 30, "containerd")

    def ctr(self, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ctr", "-a", self.sock, *args], capture_output=True, text=True, timeout=timeout,
                              input=input)

    def stop(self) -> None:
        for c in self.ctr("containers", "list", "-q").stdout.split():
            self.ctr("tasks", "kill", "-s", "KILL", c)
            self.ctr("containers", "delete", c)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Docker:
    """dockerd with a private data root, exec root, socket and daemon.json registering km-runtime as `km`; no
    bridge and no iptables (published ports are podman's tests), its own containerd."""

    def __init__(self, top: Path, km_bundle: Path) -> None:
        self.top = top
        top.mkdir(parents=True, exist_ok=True)
        self.sock = f"unix://{top}/docker.sock"
        daemon_json = top / "daemon.json"
        daemon_json.write_text(json.dumps({"runtimes": {"km": {"path": str(km_bundle / "bin" / "km-runtime")}},
                                           "bridge": "none", "iptables": False, "ip-forward": False,
                                           "ip-masq": False}))
        self.log = open(top / "dockerd.log", "w")
        self.proc = subprocess.Popen(["dockerd", "--config-file", str(daemon_json), "--data-root", str(top / "data"),
                                      "--exec-root", str(top / "exec"), "--pidfile", str(top / "dockerd.pid"),
                                      "--host", self.sock], stdout=self.log, stderr=self.log,
                                     start_new_session=True)
        wait_for(lambda: self.proc.poll() is not None or self("version").returncode == 0, 60, "dockerd")
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(top / 'dockerd.log').read_text()[-2000:]}")

    def __call__(self, *args: str, timeout: float = 120, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["/usr/bin/docker", "-H", self.sock, *args], capture_output=True, text=True,
                              timeout=timeout, input=input)

    def stop(self) -> None:
        ids = self("ps", "-aq").stdout.split()
        if ids:
            self("rm", "-f", *ids)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def http_get(port: int, path: str, timeout: float = 30) -> str:
    """GET from the host through the published port, retried while nothing listens yet (refused or reset by the
    engine's forwarder) until the deadline; an answer is waited for until the deadline too, never re-requested
    (/quit is not idempotent, and a loaded machine may take seconds to answer)."""
    import urllib.error
    import urllib.request
    deadline = time.monotonic() + timeout

    def attempt():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}",
                                        timeout=max(deadline - time.monotonic(), 0.1)) as r:
                return r.read().decode()
        except ConnectionError:
            return None
        except urllib.error.URLError as e:
            if isinstance(e.reason, ConnectionError):
                return None
            raise TimeoutError(f"http://127.0.0.1:{port}{path}: {e.reason}") from None
        except OSError as e:
            raise TimeoutError(f"http://127.0.0.1:{port}{path}: {e}") from None
    return wait_for(attempt, timeout, f"http://127.0.0.1:{port}{path}")
