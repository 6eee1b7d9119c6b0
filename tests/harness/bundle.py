"""The relocatable km bundle built from this tree once per test session, and a throw-away root filesystem
("image") to run it in: a private mount namespace and chroot, so no engine is needed."""
from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BROKEN_LIBS = ("lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6", "lib/x86_64-linux-gnu/libm.so.6")


@functools.cache
def km_bundle() -> Path:
    """tools/build_bundle.py run by the interpreter running the tests, into a session temp directory."""
    top = Path(tempfile.mkdtemp(prefix="km-bundle-test."))
    atexit.register(shutil.rmtree, top, True)
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--dest", str(top / "km")], check=True,
                   capture_output=True, timeout=300)
    return top / "km"


def make_rootfs(where: Path, files: dict[str, Path], broken_libs: bool = True) -> Path:
    """A root filesystem holding only `files` (path in the image -> host file) and, with broken_libs, a glibc
    loader and libc that are garbage: anything that loads the image's libraries fails."""
    rootfs = where / "rootfs"
    for d in ("proc", "dev", "tmp", "opt/km"):
        (rootfs / d).mkdir(parents=True, exist_ok=True)
    for inside, src in files.items():
        dst = rootfs / inside.lstrip("/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    if broken_libs:
        for lib in BROKEN_LIBS:
            (rootfs / lib).parent.mkdir(parents=True, exist_ok=True)
            (rootfs / lib).write_bytes(b"not a library\n")
    (rootfs / "dev" / "kvm").touch()
    return rootfs


def in_rootfs(rootfs: Path, bundle: Path, argv: list[str]) -> list[str]:
    """The command running argv inside rootfs (chroot in a private mount namespace) with the bundle at /opt/km
    (bind-mounted as a container engine does: a symlink is resolved once, at the mount), /dev/kvm and /proc."""
    script = ('set -e; mount --bind "$1" "$2/opt/km"; mount --bind /dev/kvm "$2/dev/kvm"; '
              'mount -t proc proc "$2/proc"; r="$2"; shift 2; exec chroot "$r" "$@"')
    return ["unshare", "--mount", "--fork", "sh", "-c", script, "sh", str(bundle), str(rootfs), *argv]


def run_in_rootfs(rootfs: Path, bundle: Path, argv: list[str], timeout: float = 60,
                  input: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(in_rootfs(rootfs, bundle, argv), capture_output=True, timeout=timeout, input=input)


def install_bundle(built: Path, dest: Path) -> Path:
    """tools/build_bundle.py --from: `built` installed as a new version of `dest`; the version's path."""
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--dest", str(dest), "--from",
                        str(built)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return dest.resolve()
