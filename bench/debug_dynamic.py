"""gdb on dynamic payloads (issue 9): the same gdb session against `km -g` and against gdbserver, side by side.

Run: python3 bench/debug_dynamic.py [--reps N]     (not part of the suite; about 1 minute with the default 3)

Scenarios, each a `gdb -batch` session started once the server listens (so km's own start-up is not counted):
  c-printf      a dynamic C program: break printf, continue, bt, continue to the end
  c-dlopen      a pending breakpoint in a library the program dlopens, bt, continue to the end
  python-crc32  Debian's python3 running a script: break crc32 (libz), continue, bt through the interpreter, end
For each: the median wall time of gdb, its ratio to gdbserver's, and the packets gdb sent (all, memory reads,
qXfer:libraries-svr4 reads, vFile reads) counted from `set debug remote 1`. Back ends alternate within each
repetition (the machine is shared).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from harness.build import build                 # noqa: E402 - the tests' payload builder (cached builds)
from harness.debuggee import start_server        # noqa: E402
from harness.gdb import free_port                # noqa: E402

BACKENDS = ("gdbserver", "km")
COUNTED = (("packets", "Sending packet"), ("m reads", "Sending packet: $m"),
           ("svr4 reads", "qXfer:libraries-svr4:read"), ("vFile reads", "vFile:pread"))


def session(backend: str, exe: str, args: list[str], commands: list[str]) -> tuple[float, dict[str, int]]:
    port = free_port()
    proc = start_server(backend, exe, port, *args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        argv = ["gdb", "-nx", "-q", "-batch", "-ex", "set debug remote 1", "-ex", f"target remote 127.0.0.1:{port}"]
        for command in commands:
            argv += ["-ex", command]
        start = time.monotonic()
        result = subprocess.run([*argv, exe], capture_output=True, text=True, errors="replace", timeout=300)
        elapsed = time.monotonic() - start
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = result.stdout + result.stderr
    return elapsed, {name: log.count(marker) for name, marker in COUNTED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="km-bench-dyn-"))
    script = work / "crc.py"
    script.write_text("import zlib\nprint(zlib.crc32(b'km'))\n")
    plugin = build("dyn_plugin.c", "dynamic", ("-shared", "-fPIC"))
    scenarios = {
        "c-printf": (str(build("gdb_basic.c", "dynamic")), [], ["break printf", "continue", "bt", "continue"]),
        "c-dlopen": (str(build("dyn_dlopen.c", "dynamic", ("-ldl",))), [str(plugin), "km_plugin_triple"],
                     ["set breakpoint pending on", "break km_plugin_triple", "continue", "bt", "continue"]),
        "python-crc32": ("/usr/bin/python3", [str(script)], ["break crc32", "continue", "bt", "continue"]),
    }
    print(f"{'scenario':14} {'backend':10} {'median s':>9} {'ratio':>6} " + " ".join(f"{n:>11}" for n, _ in COUNTED))
    for name, (exe, args, commands) in scenarios.items():
        samples: dict[str, list[tuple[float, dict[str, int]]]] = {b: [] for b in BACKENDS}
        for _ in range(options.reps):
            for backend in BACKENDS:
                samples[backend].append(session(backend, exe, args, commands))
        base = statistics.median(s[0] for s in samples["gdbserver"])
        for backend in BACKENDS:
            median = statistics.median(s[0] for s in samples[backend])
            counts = samples[backend][-1][1]
            print(f"{name:14} {backend:10} {median:9.2f} {median / base:6.2f} "
                  + " ".join(f"{counts[n]:>11}" for n, _ in COUNTED))


if __name__ == "__main__":
    main()
