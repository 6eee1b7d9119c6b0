#!/usr/bin/env python3
"""A stand-in for `km -g<PORT> payload args...` and `km --gdb_listen`, built on gdbserver, for DAP tests.

Until km's own stub works, the DAP tests need something that speaks the same command-line contract: the three
lines on stderr (the last is `GdbServerStubStarted`), gdb's remote protocol on the port, the payload's output
passed through and its exit status as ours. gdbserver serves the same RSP; its own chatter is filtered out.
`--gdb_listen` is approximated: gdbserver waits at the entry point instead of running at once.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys

_CHATTER = re.compile(r"^(Process .* created; pid = |Listening on port |Remote debugging from host |"
                      r"Child exited with status |Child terminated with signal |Detaching from process |"
                      r"Killing process|Remote side has terminated connection|GDBserver exiting|\s*$)")


def parse_args(argv: list[str]) -> tuple[int, list[str]]:
    port, listen, rest = None, False, list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt == "--gdb_listen":
            listen = True
        elif opt.startswith("-g"):
            port = int(opt[2:]) if len(opt) > 2 else 2159
        elif opt.startswith("--coredump="):
            pass
        else:
            sys.stderr.write(f"km: {opt}: unsupported by the stand-in\n")
            sys.exit(2)
    if not rest or (port is None and not listen):
        sys.stderr.write("km: usage: km_standin.py -g[PORT]|--gdb_listen payload [args...]\n")
        sys.exit(2)
    return port or 2159, rest


def main() -> int:
    port, command = parse_args(sys.argv[1:])
    payload = command[0]
    server = subprocess.Popen(["gdbserver", "--once", f"127.0.0.1:{port}", *command], stderr=subprocess.PIPE,
                              text=True, bufsize=1)
    signal.signal(signal.SIGTERM, lambda *_: server.kill())
    status = 1
    for line in server.stderr:
        if line.startswith("Listening on port"):
            sys.stderr.write(f"{payload}: Waiting for a debugger. Connect to it like this:\n"
                             f'gdb -q --ex="target remote localhost:{port}" {payload}\nGdbServerStubStarted\n')
            sys.stderr.flush()
        elif m := re.match(r"Child exited with status (\d+)", line):
            status = int(m.group(1))
        elif m := re.match(r"Child terminated with signal = (0x[0-9a-f]+|\d+)", line):
            status = 128 + int(m.group(1), 0)
        elif "Can't bind address" in line or "Address already in use" in line:
            sys.stderr.write(f"km: gdb port {port}: address already in use\n")
        elif not _CHATTER.match(line):
            sys.stderr.write(line)
            sys.stderr.flush()
    server.wait()
    return status


if __name__ == "__main__":
    sys.exit(main())
