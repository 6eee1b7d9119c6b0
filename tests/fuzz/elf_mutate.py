"""The ELF fuzzer: mutated copies of a program, from a seed, and what km must do with each.

Mutations: byte flips in the ELF header and in the program headers, truncations, a PT_LOAD made huge, moved onto
another or given an offset past the end, and (for a dynamic program) a PT_INTERP naming nothing, unterminated or
out of the file. km must either run the payload or refuse the file in one line (`km: FILE: problem`) with a
status; never a traceback, never a hang (a 10 s bound, stretched by the machine's load: see bound_s).
"""
from __future__ import annotations

import os
import random
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness.km import KM, km_env

BOUND_S = 10.0          # on an idle machine; every mutant here ends within 0.7 s
MAX_BOUND_S = 60.0


def bound_s() -> float:
    """The hang bound for a run starting now: BOUND_S, times the load average per CPU when the machine is busier
    than that. At a load of 20 on 2 cores each km got a tenth of a CPU, and mutants whose kmcore takes 0.6 s on an
    idle machine went past a fixed 10 s (the suite failed so, with km's one-line verdict already printed)."""
    per_cpu = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(MAX_BOUND_S, BOUND_S * max(1.0, per_cpu))
PT_LOAD, PT_INTERP = 1, 3
PHDR = struct.Struct("<IIQQQQQQ")      # type, flags, offset, vaddr, paddr, filesz, memsz, align


def _phdrs(data: bytes) -> list[int]:
    """File offsets of the program headers (none if the header is already unreadable)."""
    if len(data) < 64:
        return []
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    if phentsize != PHDR.size or phoff + phnum * PHDR.size > len(data):
        return []
    return [phoff + i * PHDR.size for i in range(phnum)]


def mutate(original: bytes, r: random.Random) -> tuple[bytes, str]:
    """One mutated copy and a word for what was done."""
    data = bytearray(original)
    heads = _phdrs(original)
    kind = r.choice(["ehdr", "phdr", "truncate", "huge", "overlap", "offset", "interp", "many"])
    if kind == "ehdr":
        for _ in range(r.randrange(1, 4)):
            data[r.randrange(64)] ^= 1 << r.randrange(8)
    elif kind == "phdr" and heads:
        for _ in range(r.randrange(1, 4)):
            at = r.choice(heads) + r.randrange(PHDR.size)
            data[at] = r.getrandbits(8)
    elif kind == "truncate":
        del data[r.choice([r.randrange(64), r.randrange(len(data)), r.randrange(64, 64 + 56 * 4)]):]
    elif kind in ("huge", "overlap", "offset") and heads:
        loads = [h for h in heads if struct.unpack_from("<I", data, h)[0] == PT_LOAD]
        if loads:
            h = r.choice(loads)
            fields = list(PHDR.unpack_from(data, h))
            if kind == "huge":
                fields[6] = r.choice([1 << 40, 1 << 47, (1 << 64) - 4096, 1 << 63])
                if r.random() < 0.5:
                    fields[5] = fields[6]
            elif kind == "overlap":
                other = PHDR.unpack_from(data, r.choice(loads))
                fields[3] = other[3] + r.choice([0, 0x10, 0x1000])
            else:
                fields[2] = r.choice([len(data), len(data) + 4096, 1 << 62, (1 << 64) - 1])
            PHDR.pack_into(data, h, *fields)
    elif kind == "interp" and heads:
        interps = [h for h in heads if struct.unpack_from("<I", data, h)[0] == PT_INTERP]
        if interps:
            h = interps[0]
            fields = list(PHDR.unpack_from(data, h))
            choice = r.randrange(4)
            if choice == 0:                     # names nothing
                name = b"/nonexistent/ld.so\0"
                data[fields[2]:fields[2] + min(len(name), fields[5])] = name[:fields[5]]
            elif choice == 1:                   # no terminating NUL
                data[fields[2] + fields[5] - 1] = ord("x")
            elif choice == 2:                   # out of the file
                fields[2] = len(data) + r.randrange(1 << 20)
            else:                               # absurd length
                fields[5] = r.choice([0, 1 << 32, 1 << 63])
            PHDR.pack_into(data, h, *fields)
    else:                                        # several flips anywhere in the first pages
        for _ in range(r.randrange(4, 32)):
            data[r.randrange(min(len(data), 8192))] = r.getrandbits(8)
    return bytes(data), kind


@dataclass
class Verdict:
    index: int
    kind: str
    status: int | None      # None: killed at the bound (a hang)
    stderr: str
    loops_natively: bool = False    # killed at the bound, and natively (in the sandbox) too: the program loops
    bound_s: float = BOUND_S

    @property
    def problem(self) -> str:
        """'' when km behaved: ran the payload, or refused the file in one line."""
        if self.status is None and not self.loops_natively:
            return f"no end within {self.bound_s:.0f} s (natively it ends)"
        if "Traceback" in self.stderr or "internal error" in self.stderr:
            return "a traceback or internal error"
        km_lines = [line for line in self.stderr.splitlines() if line.startswith("km: ")]
        if len(km_lines) > 1:
            return f"{len(km_lines)} km lines"
        return ""


def run_one(path: Path, index: int, kind: str) -> Verdict:
    env = km_env()
    env.pop("KM_VERBOSE", None)
    bound = bound_s()
    try:
        done = subprocess.run([*KM, str(path)], capture_output=True, timeout=bound, env=env,
                              stdin=subprocess.DEVNULL, cwd=path.parent)
        return Verdict(index, kind, done.returncode, done.stderr.decode(errors="replace"))
    except subprocess.TimeoutExpired as e:
        return Verdict(index, kind, None, (e.stderr or b"").decode(errors="replace"), _loops_natively(path, bound),
                       bound)


def _loops_natively(path: Path, bound: float) -> bool:
    """Whether the mutant also runs past the bound natively (a mutation that made the program loop), run in the
    syscall fuzzer's sandbox (read-only file system but its directory, no network): it is corrupt code."""
    from . import sandbox
    if sandbox.unavailable():
        return False
    try:
        subprocess.run(sandbox.command(path.parent, [str(path)]), capture_output=True, timeout=bound,
                       stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return True
    return False


def fuzz(programs: list[Path], count: int, seed: int, workdir: Path, parallel: int = 3) -> list[Verdict]:
    """`count` mutants of the programs (round robin) run under km, `parallel` at a time."""
    r = random.Random(seed)
    originals = [p.read_bytes() for p in programs]
    jobs = []
    for i in range(count):
        data, kind = mutate(originals[i % len(originals)], r)
        path = workdir / f"mutant{i}.km"
        path.write_bytes(data)
        path.chmod(0o755)
        jobs.append((path, i, kind))
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(lambda job: run_one(*job), jobs))
