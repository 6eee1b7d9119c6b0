"""The node installer of deploy/km-installer.yaml, run as its DaemonSet would but by podman: its image
(tools/build-installer-image.sh) copies the bundle to the node's /opt/km and adds the containerd handler once."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from harness.build import build

ROOT = Path(__file__).resolve().parents[2]


def test_installer_copies_the_bundle_and_adds_the_handler(podman, tmp_path) -> None:
    env = dict(podman.env, PODMAN=" ".join(podman.base))
    r = subprocess.run(["bash", str(ROOT / "tools" / "build-installer-image.sh"), "localhost/km-installer:test"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    host = tmp_path / "node"
    (host / "etc" / "containerd").mkdir(parents=True)
    (host / "etc" / "containerd" / "config.toml").write_text("version = 2\n")
    for _ in range(2):                  # a second run (a restarted pod) changes nothing
        r = podman("run", "--rm", "-v", f"{host}:/host", "-e", "KM_INSTALL_ONCE=1", "localhost/km-installer:test")
        assert r.returncode == 0, r.stderr
    assert "bundle installed at /opt/km" in r.stdout
    assert (host / "etc" / "containerd" / "config.toml").read_text().count("runtimes.km]") == 1
    km = host / "opt" / "km" / "bin" / "km"
    out = subprocess.run([str(km), str(build("run_hello.c", "musl")), "installed"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "argv[1]=[installed]" in out.stdout, out.stderr
    assert os.access(host / "opt" / "km" / "bin" / "km-runtime", os.X_OK)
    podman("rmi", "-f", "localhost/km-installer:test")
