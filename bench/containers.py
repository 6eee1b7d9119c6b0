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
  runtime: what an engine's create + delete cost with runc and with km-runtime (km.wrap=off, and wrapping /hello:
          the whole rewrite), on one OCI bundle whose config.json is put back before each create (engines write a
          new one per container). The same overhead without podman's own second of noise around it.
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
from harness.oci import make_oci_bundle, runtime_env  # noqa: E402


def timed(argv: list[str], env: dict[str, str], stdout_too: bool = False) -> float:
    """Wall time of argv. stdout_too: stderr goes to /dev/null as well (after `create` the container's process
    keeps the runtime's stdio open, so a pipe would never reach its end)."""
    start = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL if stdout_too else subprocess.PIPE, env=env, timeout=120)
    if r.returncode != 0:
        err = "" if stdout_too else r.stderr.decode()[-500:]
        raise SystemExit(f"bench: {' '.join(argv[:3])}...: status {r.returncode}: {err}")
    return time.perf_counter() - start


def main() -> None:
    """Everything in a temporary directory (bundle, podman storage, OCI bundles), removed whatever happens."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    top = Path(tempfile.mkdtemp(prefix="km-bench-containers."))
    try:
        run(top, args.reps)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def run(top: Path, reps: int) -> None:
    """Every case interleaved `reps` times after one warm-up round, then the table and the ratios of the goals."""
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
    times.update(runtime_cycles(top, bundle, hello, reps * 2))
    med = {name: statistics.median(v) * 1000 for name, v in times.items()}
    print(f"{'case':40} {'median ms':>10} {'min ms':>8}   ({reps} interleaved runs; runtime: {reps * 2})")
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
    low = {name: min(v) * 1000 for name, v in times.items()}
    for case in ("km.wrap=off", "wrapping /hello"):
        name = f"runtime: km-runtime ({case})"
        print(f"km-runtime's own overhead, runtime create+delete ({case}): {med[name] - med['runtime: runc']:.0f} ms"
              f" (medians), {low[name] - low['runtime: runc']:.0f} ms (minima)   (goal <= 50)")


def runtime_cycles(top: Path, bundle: Path, hello: Path, reps: int) -> dict[str, list[float]]:
    """create + delete --force of one container, as an engine calls the runtime, interleaved."""
    env = runtime_env(bundle)
    root = str(top / "runc-root")
    km_runtime = str(bundle / "bin" / "km-runtime")
    cases = {"runtime: runc": (["runc"], make_oci_bundle(top, {"/hello": hello}, ["/hello"])),
             "runtime: km-runtime (km.wrap=off)": ([km_runtime], make_oci_bundle(top, {"/hello": hello}, ["/hello"],
                                                                                env=["KM_WRAP=off"])),
             "runtime: km-runtime (wrapping /hello)": ([km_runtime], make_oci_bundle(top, {"/hello": hello},
                                                                                     ["/hello"]))}
    configs = {name: (oci / "config.json").read_text() for name, (_, oci) in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(reps + 1):                   # the first round warms up
        for name, (runtime, oci) in cases.items():
            (oci / "config.json").write_text(configs[name])
            cid = f"bench-{i}-{len(times[name])}-{abs(hash(name))}"
            took = timed([*runtime, "--root", root, "create", "--bundle", str(oci), cid], env, stdout_too=True)
            took += timed([*runtime, "--root", root, "delete", "--force", cid], env)
            if i:
                times[name].append(took)
    return times


if __name__ == "__main__":
    main()
