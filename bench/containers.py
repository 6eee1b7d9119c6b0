"""Containers and the km bundle: what km-runtime costs per container start, and what the bundle costs km's start-up.

Run: python3 bench/containers.py [--reps N]     (needs root and podman: bash tools/install-engines.sh; ~2-3 min)
Side by side, interleaved, medians (the machine is shared):
  host:   native /hello; km /hello from this tree's Python (`python3 -m monitor.cli`, what the venv runs); the
          bundle's bin/km /hello; the same three for Debian's python3 -c pass (a dynamic payload).
          Goal: bundle <= 1.2 x the venv's km.
  podman: `podman run --rm IMAGE /hello` with runc (native); with km-runtime and km.wrap=off (the runtime's four
          calls and its config rewrite, nothing of km); with km-runtime (under km).
          km-runtime's own overhead = wrap=off - runc.  Goal: <= 50 ms per container start. And python3 -c pass
          in the image (Debian's, dynamic) with runc and under km.
          Cross-check: (km-runtime - runc) - (bundle km - native) on the host, i.e. all but km's own start-up.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from harness.build import build  # noqa: E402
from harness.engines import IMAGE, Podman, build_rootfs  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, timeout=120)
    if r.returncode != 0:
        raise SystemExit(f"bench: {' '.join(argv[:3])}...: status {r.returncode}: {r.stderr.decode()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="km-bench-containers."))
    try:
        run(top, args.reps)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run(top: Path, reps: int) -> None:
    hello = build("run_hello.c", "musl")
    subprocess.run([sys.executable, str(ROOT / "tools" / "build_bundle.py"), "--dest", str(top / "km")], check=True,
                   stdout=subprocess.DEVNULL)
    bundle = top / "km"
    podman = Podman(top / "podman", bundle)
    podman.import_image(build_rootfs(top / "image", {"/hello": hello}))
    venv_env = dict(os.environ, PYTHONPATH=str(ROOT))
    host_env = dict(os.environ)
    python = ["/usr/bin/python3", "-c", "pass"]
    cases = {
        "host: native /hello": ([str(hello)], host_env),
        "host: km /hello (venv Python)": ([sys.executable, "-m", "monitor.cli", str(hello)], venv_env),
        "host: km /hello (bundle)": ([str(bundle / "bin" / "km"), str(hello)], host_env),
        "host: native python3 -c pass": (python, host_env),
        "host: km python3 -c pass (venv Python)": ([sys.executable, "-m", "monitor.cli", *python], venv_env),
        "host: km python3 -c pass (bundle)": ([str(bundle / "bin" / "km"), *python], host_env),
        "podman run, runc (native)": ([*podman.base, "run", "--rm", IMAGE, "/hello"], podman.env),
        "podman run, km-runtime, km.wrap=off": ([*podman.base, "run", "--rm", "--runtime", podman.runtime,
                                                 "--annotation", "km.wrap=off", IMAGE, "/hello"], podman.env),
        "podman run, km-runtime (under km)": ([*podman.base, "run", "--rm", "--runtime", podman.runtime, IMAGE,
                                               "/hello"], podman.env),
        "podman run python3 -c pass, runc": ([*podman.base, "run", "--rm", IMAGE, *python], podman.env),
        "podman run python3 -c pass, km-runtime": ([*podman.base, "run", "--rm", "--runtime", podman.runtime, IMAGE,
                                                    *python], podman.env),
    }
    for argv, env in cases.values():          # warm-up: page cache, podman's storage
        timed(argv, env)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, (argv, env) in cases.items():
            times[name].append(timed(argv, env))
    podman.cleanup()
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"{'case':40} {'median ms':>10} {'min ms':>8}   ({reps} interleaved runs)")
    for name, v in times.items():
        print(f"{name:40} {med[name]:10.0f} {min(v) * 1000:8.0f}")
    startup = med["host: km /hello (bundle)"] / med["host: km /hello (venv Python)"]
    own = med["podman run, km-runtime, km.wrap=off"] - med["podman run, runc (native)"]
    cross = (med["podman run, km-runtime (under km)"] - med["podman run, runc (native)"]) - \
        (med["host: km /hello (bundle)"] - med["host: native /hello"])
    py_startup = med["host: km python3 -c pass (bundle)"] / med["host: km python3 -c pass (venv Python)"]
    print(f"bundle km start-up / venv km start-up: {startup:.2f} (/hello), {py_startup:.2f} (python3 -c pass)"
          "   (goal <= 1.20)")
    print(f"km-runtime's own overhead per container start (wrap=off - runc): {own:.0f} ms   (goal <= 50)")
    print(f"  cross-check, (km-runtime - runc) - (bundle km - native): {cross:.0f} ms")


if __name__ == "__main__":
    main()
