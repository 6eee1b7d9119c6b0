"""The relocatable bundle (tools/build_bundle.py): km runs from it in an image whose own glibc is garbage, and
a payload that forks and execs still runs there (km re-executes itself through the bundle's launcher)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.bundle import ROOT, in_rootfs, install_bundle, km_bundle, make_rootfs, run_in_rootfs

pytestmark = pytest.mark.skipif(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0",
                                reason="needs root for a private mount namespace and chroot")


@pytest.fixture(scope="module")
def bundle():
    return km_bundle()


def test_bundle_is_self_describing(bundle) -> None:
    manifest = json.loads((bundle / "km-bundle.json").read_text())
    assert "ld-linux-x86-64.so.2" in manifest["libraries"] and manifest["python"].startswith("3.")
    assert not list((bundle / "python" / "lib").rglob("dap/session.py")), "the DAP bridge is not part of the bundle"
    assert list((bundle / "python" / "lib").rglob("monitor/cli.py"))


def test_every_file_of_kms_packages_is_in_the_bundle(bundle) -> None:
    """One source of truth: the bundle holds this tree's packages as they are, generated modules included."""
    site = bundle / "python" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    for pkg in ("monitor", "kdbg"):
        for f in (ROOT / pkg).rglob("*"):
            rel = f.relative_to(ROOT)
            if f.is_file() and "__pycache__" not in rel.parts and f.suffix != ".pyc" and \
                    not str(rel).startswith("kdbg/dap/") and not f.name.endswith(".tmp"):
                assert (site / rel).read_bytes() == f.read_bytes(), rel


def test_every_km_module_imports_from_the_bundle(bundle) -> None:
    """Nothing km or kdbg (the stub, the core writer) loads is missing from the bundle's trimmed stdlib."""
    code = ("import pkgutil, importlib, monitor, kdbg\n"
            "for pkg in (monitor, kdbg):\n"
            "    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
            "        if not m.name.endswith('__main__'):\n"
            "            importlib.import_module(m.name)\n"
            "print('ok')")
    r = subprocess.run([str(bundle / "lib" / "ld-linux-x86-64.so.2"), "--library-path", str(bundle / "lib"),
                        str(bundle / "python" / "bin" / "python3"), "-I", "-S", "-c", code],
                       capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "ok", r.stderr[-2000:]


def test_static_payload_in_an_image_with_a_broken_glibc(bundle, payload, tmp_path) -> None:
    rootfs = make_rootfs(tmp_path, {"/hello": payload("run_hello.c", "musl")})
    r = run_in_rootfs(rootfs, bundle, ["/opt/km/bin/km", "/hello", "in-image"])
    assert r.returncode == 0, r.stderr.decode()
    assert b"in-image" in r.stdout


def test_fork_and_exec_in_an_image_with_a_broken_glibc(bundle, payload, tmp_path) -> None:
    """busybox sh forks, and the child execs another payload: both under km, through the bundle's launcher."""
    rootfs = make_rootfs(tmp_path, {"/hello": payload("run_hello.c", "musl"), "/bin/busybox": "/bin/busybox"})
    r = run_in_rootfs(rootfs, bundle, ["/opt/km/bin/km", "/bin/busybox", "sh", "-c",
                                       "/hello forked; echo child status $?; read line; echo got $line; exit 7"],
                      input=b"stdin-line\n")
    assert r.returncode == 7, r.stderr.decode()
    out = r.stdout.decode()
    assert "forked" in out and "child status 0" in out and "got stdin-line" in out, out


def test_kmcore_from_the_bundle(bundle, payload, tmp_path) -> None:
    rootfs = make_rootfs(tmp_path, {"/crash": payload("core_crash.c", "glibc")})
    r = run_in_rootfs(rootfs, bundle, ["/opt/km/bin/km", "--coredump=/tmp/kmcore", "/crash", "segv"])
    assert r.returncode == 128 + 11, r.stderr.decode()
    assert b"core dumped to /tmp/kmcore" in r.stderr
    assert (rootfs / "tmp" / "kmcore").read_bytes()[:4] == b"\x7fELF"


def test_an_update_leaves_running_containers_their_bundle(bundle, payload, tmp_path) -> None:
    """An update installs a new version and switches the /opt/km symlink; a container started before it keeps
    the version it mounted (its km re-executes itself from there after the update), which the next update
    removes once no container uses it."""
    dest = tmp_path / "opt" / "km"
    first = install_bundle(bundle, dest)
    rootfs = make_rootfs(tmp_path, {"/hello": payload("run_hello.c", "musl"), "/bin/busybox": "/bin/busybox"})
    container = subprocess.Popen(in_rootfs(rootfs, dest, [
        "/opt/km/bin/km", "/bin/busybox", "sh", "-c", "echo ready; read line; /hello $line; echo status $?"]),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert container.stdout.readline() == b"ready\n", container.stderr.read1().decode()
        second = install_bundle(bundle, dest)
        assert second != first and (first / "bin" / "km").exists(), "the running container's version was removed"
        out, err = container.communicate(b"after-update\n", timeout=60)
    finally:
        if container.poll() is None:
            container.kill()
            container.wait()
    assert container.returncode == 0 and b"argv[1]=[after-update]" in out and b"status 0" in out, err.decode()
    third = install_bundle(bundle, dest)
    assert sorted(p.name for p in third.parent.iterdir()) == [third.name], "unused versions are removed"


def test_an_update_from_something_else_is_refused_in_one_line(bundle, tmp_path) -> None:
    """Only a km bundle is installed: the current version stays, and the refusal is one line."""
    dest = tmp_path / "opt" / "km"
    first = install_bundle(bundle, dest)
    (tmp_path / "other").mkdir()
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--dest", str(dest), "--from",
                        str(tmp_path / "other")], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == \
        (1, f"build_bundle: {tmp_path / 'other'}: not a km bundle (no km-bundle.json)\n"), r
    assert dest.resolve() == first and sorted(p.name for p in first.parent.iterdir()) == [first.name]
