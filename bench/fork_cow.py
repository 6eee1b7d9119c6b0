"""Which of CPython's memory a forked km writes (issue 10, the exec loop's copy-on-write): each page a forked km
writes first is copied from its parent's (~2.7 us here); this attributes those copies to the object on the page.

Run (root: perf and its exceptions:page_fault_user tracepoint): python3 bench/fork_cow.py [--body '(:)']
[--iterations 12] [--km-root DIR]   (seconds; not part of the suite)
km runs `busybox sh -c 'for i in $(seq N); do BODY; done'` under `perf record` with a launcher that, at the parent's
first fork, writes a map of its memory: every Python object the collector knows (start-up's frozen ones included),
the code objects, constants and names of its functions, the keys of its dicts, the guest's memory and
/proc/self/maps; and forks a bare child that exits at once (the floor any Python fork pays: CPython's and libc's
after-fork work). Each write fault of a forked child is put on the object holding its address, else on a page
holding objects of that kind, else on the mapping (libpython's data: static objects and the interpreter's state;
[heap]: malloc; anonymous: pymalloc's arenas, thread stacks). Figures are per forked child, the first one (the
loop's `seq`) left out.
"""
from __future__ import annotations

import argparse
import bisect
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# km whose first fork writes the map (and forks the bare child) first
LAUNCHER = r'''
import gc, json, os, sys, types
sys.path.insert(0, sys.argv.pop(1))
out = sys.argv.pop(1)
real_fork = os.fork

def objects():
    frozen = gc.get_freeze_count()  # km froze start-up's objects (cli.run): listed once unfrozen, then frozen
    if frozen:                      # again with those made since (a km from before the freeze is left alone)
        gc.unfreeze()
    found = gc.get_objects()
    if frozen:
        gc.freeze()
    rows, seen = [], set()
    def add(o, kind):
        if id(o) not in seen:
            seen.add(id(o))
            start = id(o) - (16 if gc.is_tracked(o) else 0)          # the collector's header precedes the object
            rows.append((start, id(o) + sys.getsizeof(o), kind))
    chunks = []
    for o in found:
        if isinstance(o, types.FunctionType):
            add(o, "function")
            stack = [o.__code__]
            while stack:
                code = stack.pop()
                add(code, "code object")
                for const in code.co_consts:
                    (stack.append(const) if isinstance(const, types.CodeType) else add(const, "constant"))
                for name in code.co_names:
                    add(name, "name (str)")
        elif isinstance(o, dict):
            add(o, "dict")
            for key in list(o)[:4096]:
                if isinstance(key, str):
                    add(key, "name (str)")
        elif type(o).__name__ == "PhysicalMemory":
            chunks += [(c.host_addr, c.host_addr + c.size) for c in o.chunks]
        else:
            add(o, "type" if isinstance(o, type) else type(o).__name__)
    return rows, chunks

done = []

def fork():
    if not done:
        done.append(True)
        rows, chunks = objects()
        bare = real_fork()
        if bare == 0:
            os._exit(0)
        os.waitpid(bare, 0)
        with open(out, "w") as f:
            json.dump({"parent": os.getpid(), "bare": bare, "rows": rows, "guest": chunks,
                       "maps": open("/proc/self/maps").read()}, f)
    return real_fork()
os.fork = fork
sys.argv[0] = "km"
from monitor.cli import main
main()
'''
FAULT = re.compile(r"^\s*(\d+)\s+address=0x([0-9a-f]+) ip=0x[0-9a-f]+ error_code=0x([0-9a-f]+)")


def record(km_root: str, body: str, iterations: int, tmp: str) -> tuple[dict, str]:
    """The parent's map and perf's fault lines of one km run of the loop."""
    launcher, mapped, data = Path(tmp, "launcher.py"), Path(tmp, "map.json"), Path(tmp, "perf.data")
    launcher.write_text(LAUNCHER)
    busybox = shutil.which("busybox") or "/bin/busybox"
    env = {k: v for k, v in os.environ.items() if k != "KM_VERBOSE"}
    subprocess.run(["perf", "record", "-q", "-o", str(data), "-e", "exceptions:page_fault_user", "--",
                    sys.executable, str(launcher), km_root, str(mapped), busybox, "sh", "-c",
                    f"for i in $(seq {iterations}); do {body}; done"],
                   check=True, cwd="/", stdout=subprocess.DEVNULL, env=env, timeout=600)
    script = subprocess.run(["perf", "script", "-i", str(data), "-F", "pid,trace"], check=True,
                            capture_output=True, text=True, timeout=600).stdout
    return json.loads(mapped.read_text()), script


def mappings(maps: str) -> list[tuple[int, int, str]]:
    found = []
    for line in maps.splitlines():
        fields = line.split()
        start, end = (int(x, 16) for x in fields[0].split("-"))
        name = fields[5] if len(fields) > 5 else ""
        label = (f"{Path(name).name} data" if name.startswith("/") and "w" in fields[1] else
                 name or "anonymous (pymalloc arenas, thread stacks)")
        found.append((start, end, label))
    return sorted(found)


def attribute(mapped: dict, script: str) -> dict[str, collections.Counter]:
    """Write faults by child pid (the bare child and the first one left out), each under what its address holds."""
    rows = sorted(tuple(r) for r in mapped["rows"])
    starts = [r[0] for r in rows]
    pages: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for start, end, kind in rows:
        for page in range(start >> 12, ((end - 1) >> 12) + 1):
            pages[page][kind] += 1
    maps = mappings(mapped["maps"])
    map_starts = [m[0] for m in maps]
    guest = mapped["guest"]
    parent, bare = str(mapped["parent"]), str(mapped["bare"])
    by_child: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    order: list[str] = []
    for line in script.splitlines():
        m = FAULT.match(line)
        if not m or m.group(1) == parent or not int(m.group(3), 16) & 2:     # a child's write
            continue
        pid, address = m.group(1), int(m.group(2), 16)
        if pid not in by_child:
            order.append(pid)
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < rows[i][1]:
            kind = rows[i][2]
        elif any(start <= address < end for start, end in guest):
            kind = "guest memory"
        elif address >> 12 in pages:
            kind = f"a page of: {pages[address >> 12].most_common(1)[0][0]}"
        else:
            j = bisect.bisect_right(map_starts, address) - 1
            kind = maps[j][2] if j >= 0 and address < maps[j][1] else "(unmapped at the fork: new mappings)"
        by_child[pid][kind] += 1
    loop = {pid for pid in order if pid != bare}
    first = next((pid for pid in order if pid in loop), None)
    return {pid: c for pid, c in by_child.items() if pid in loop and pid != first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", default="(:)")
    parser.add_argument("--iterations", type=int, default=12)
    parser.add_argument("--km-root", default=str(ROOT), help="the checkout whose km runs")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if not shutil.which("perf"):
        raise SystemExit("fork_cow: needs perf")
    with tempfile.TemporaryDirectory(prefix="km-fork-cow-") as tmp:
        mapped, script = record(args.km_root, args.body, args.iterations, tmp)
    children = attribute(mapped, script)
    if not children:
        raise SystemExit("fork_cow: no forked child's fault recorded (perf's tracepoint readable?)")
    bare = sum(1 for line in script.splitlines() if (m := FAULT.match(line)) and m.group(1) == str(mapped["bare"])
               and int(m.group(3), 16) & 2)
    total: collections.Counter = collections.Counter()
    for counts in children.values():
        total.update(counts)
    n = len(children)
    print(f"{n} forked children of `for i in $(seq {args.iterations}); do {args.body}; done`: "
          f"{sum(total.values()) / n:.0f} page writes (copy-on-write faults) each; a bare child (fork, CPython's "
          f"after-fork, exit) {bare}")
    print("| written: the object (or the page's objects, or the mapping) | per child | share |\n| --- | --- | --- |")
    for kind, count in total.most_common(args.top):
        print(f"| {kind} | {count / n:.1f} | {count / sum(total.values()):.0%} |")


if __name__ == "__main__":
    main()
