"""`kdbg-dap` / `python -m kdbg.dap`: the Debug Adapter Protocol server for km, on stdio or a TCP port.

stdio is how VS Code starts a debug adapter executable; `--port` serves a `debugServer` (one session per
connection, each in its own thread), which is also how tests and the C/C++-style setups connect.
"""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

from .session import Session
from .transport import Transport


def serve_connection(conn: socket.socket, python_first: bool = False) -> None:
    """One session; the socket is shut down afterwards (a makefile() stream would otherwise keep it open)."""
    with conn, conn.makefile("rb") as reader, conn.makefile("wb") as writer:
        try:
            Session(Transport(reader, writer), python_first).run()
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve_port(port: int, host: str = "127.0.0.1", python_first: bool = False) -> None:
    with socket.create_server((host, port)) as server:
        print(f"kdbg-dap: listening on {host}:{server.getsockname()[1]}", file=sys.stderr, flush=True)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=serve_connection, args=(conn, python_first), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kdbg-dap", description="Debug Adapter Protocol server for km")
    parser.add_argument("--port", type=int, help="serve DAP on this TCP port (0: any) instead of stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--log", metavar="FILE", help="write a km.dap trace (requests, gdb/MI traffic) here")
    parser.add_argument("--python", action="store_true",
                        help="the client will launch a Python program: answer initialize with debugpy's capabilities "
                             "(VS Code's extension passes it; other clients get a capabilities event at launch)")
    options = parser.parse_args(argv)
    if options.log:
        logging.basicConfig(filename=options.log, level=logging.DEBUG,
                            format="%(asctime)s %(threadName)s %(name)s %(message)s")
    if options.port is not None:
        try:
            serve_port(options.port, options.host, options.python)
        except OSError as exc:
            print(f"kdbg-dap: port {options.port}: {exc.strerror}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        return 0
    Session(Transport(sys.stdin.buffer, sys.stdout.buffer), options.python).run()
    # The request reader thread may still sit in stdin.readline(); a normal interpreter exit would wait for
    # that buffer's lock. Everything is flushed and every child ended, so leave at once.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
