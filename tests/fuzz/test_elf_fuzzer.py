"""The ELF fuzzer in the suite: 200 mutated copies of a static and a dynamic program (tests/fuzz/elf_mutate.py)
under km: each runs, or is refused in one line with a status; no traceback, no hang. bench/fuzz.py runs 1,000."""
from __future__ import annotations

from collections import Counter

from .elf_mutate import fuzz

SEED = 0x6B6D2D656C66      # "km-elf"
COUNT = 200


def test_mutated_programs_run_or_are_refused_in_one_line(payload, tmp_path):
    programs = [payload("run_hello.c", "musl"), payload("run_hello.c", "dynamic")]
    verdicts = fuzz(programs, COUNT, SEED, tmp_path)
    bad = [v for v in verdicts if v.problem]
    assert not bad, "\n".join(f"mutant {v.index} ({v.kind}): {v.problem}\n{v.stderr[-1500:]}" for v in bad[:5])
    outcomes = Counter("ran" if v.status == 0 else "refused or died" for v in verdicts)
    assert outcomes["ran"] and outcomes["refused or died"], outcomes


def _patched(program, tmp_path, name: str, edit) -> str:
    """A copy of program with edit(bytearray) applied; km's stderr and status on it."""
    import struct
    import subprocess
    import sys

    from harness.km import km_env
    data = bytearray(program.read_bytes())
    edit(data, struct)
    path = tmp_path / f"{name}.km"
    path.write_bytes(data)
    path.chmod(0o755)
    done = subprocess.run([sys.executable, "-m", "monitor.cli", str(path)], capture_output=True, timeout=30,
                          env=km_env())
    assert done.returncode != 0
    return done.stderr.decode()


def _phdr(data, struct, p_type: int) -> int:
    phoff, = struct.unpack_from("<Q", data, 32)
    phnum, = struct.unpack_from("<H", data, 56)
    return next(phoff + 56 * i for i in range(phnum) if struct.unpack_from("<I", data, phoff + 56 * i)[0] == p_type)


def test_program_headers_at_2_63_a_pt_interp_past_the_file_or_loads_out_of_order_are_one_line(payload, tmp_path):
    """Each was km's internal error (OSError from seek, OverflowError, an AssertionError in the loader,
    MemoryError) where execve refuses the file."""
    static, dynamic = payload("run_hello.c", "musl"), payload("run_hello.c", "dynamic")
    cases = {
        "phoff": (static, lambda d, s: s.pack_into("<Q", d, 32, 1 << 63)),
        "interp": (dynamic, lambda d, s: s.pack_into("<Q", d, _phdr(d, s, 3) + 8, 1 << 62)),
        "order": (static, lambda d, s: s.pack_into("<Q", d, _phdr(d, s, 1) + 56 + 16, 0x1000)),
        "huge": (static, lambda d, s: s.pack_into("<Q", d, _phdr(d, s, 1) + 40, 1 << 47)),
    }
    for name, (program, edit) in cases.items():
        err = _patched(program, tmp_path, name, edit)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"km: {tmp_path}/{name}.km: ") and "internal" not in err, \
            (name, err)
