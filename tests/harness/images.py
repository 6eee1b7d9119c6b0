"""Files of container images built from this host's own packages (no registry): a dynamic program with the glibc
it was linked against, and Debian's python3 with the part of its standard library a given script imports.
Each is a {path in the image: host file} map that tests copy into a rootfs (an OCI bundle's, or one imported
with `podman import`)."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

DEBIAN_PYTHON = "/usr/bin/python3"


def with_libraries(programs: dict[str, str | Path]) -> dict[str, str | Path]:
    """`programs` plus every library they load (per ldd) and the loader, at the paths the image's ld.so looks in."""
    files: dict[str, str | Path] = dict(programs)
    for host in programs.values():
        out = subprocess.run(["ldd", str(host)], capture_output=True, text=True).stdout
        for line in out.splitlines():
            m = re.match(r"\s*\S+ => (/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
            if m:
                files[m.group(1)] = os.path.realpath(m.group(1))
    return files


def python_image_files(imports: tuple[str, ...]) -> dict[str, str | Path]:
    """Debian's python3 (a dynamic executable), its libraries and the standard-library modules `import
    *imports` loads (the interpreter's start-up ones included), at Debian's paths; `python3` is on the image's PATH."""
    real = os.path.realpath(DEBIAN_PYTHON)
    code = (f"import sys, {', '.join(imports)}\n"
            "import json; print(json.dumps(sorted({m.__file__ for m in list(sys.modules.values())\n"
            "                                      if getattr(m, '__file__', None)})))")
    listed = json.loads(subprocess.run([real, "-I", "-c", code], capture_output=True, text=True,
                                       check=True).stdout)
    stdlib = f"/usr/lib/python3.{sys_minor(real)}/"
    files = with_libraries({DEBIAN_PYTHON: real})
    for path in listed:
        if path.startswith(stdlib):
            files[path] = os.path.realpath(path)
    return files


def sys_minor(python: str) -> str:
    return subprocess.run([python, "-I", "-c", "import sys; print(sys.version_info.minor)"], capture_output=True,
                          text=True, check=True).stdout.strip()


# What a Python container's `python3 -c` does in the tests: a thread, a child process (fork and exec of the
# image's busybox), stdin, an exit status; and which libc it runs on (the image's: km's bundle libraries at
# /opt/km must never be mapped into the payload).
PYTHON_PROBE = """\
import subprocess, sys, threading
t = threading.Thread(target=print, args=("from a thread",)); t.start(); t.join()
print(subprocess.run(["/bin/busybox", "echo", "from a child"], capture_output=True, text=True).stdout.strip())
maps = [line.split()[-1] for line in open("/proc/self/maps") if "/" in line]
print("stdin:", sys.stdin.readline().strip(), "| libc:", *sorted({m for m in maps if "/libc.so" in m}),
      "| km bundle mapped:", any(m.startswith("/opt/km/") for m in maps))
sys.exit(5)
"""
PYTHON_PROBE_IMPORTS = ("subprocess", "threading")
PYTHON_PROBE_OUTPUT = ("from a thread\nfrom a child\nstdin: to-python | libc: /lib/x86_64-linux-gnu/libc.so.6 | "
                       "km bundle mapped: False\n")
