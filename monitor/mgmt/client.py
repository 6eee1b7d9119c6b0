"""km-cli: talks to running kms through their management sockets (`km --mgtpipe=PATH`).

    km-cli snapshot --socket PATH -o FILE [--live] [--label TEXT] [--description TEXT]
    km-cli list

Every failure is one line on stderr, `km-cli: <subject>: <problem>`, status 1 (2 for a bad command line).
"""
from __future__ import annotations

import argparse
import os
import re
import socket
import stat
import sys
from typing import Any, NoReturn

from . import registry
from .protocol import ProtocolError, decode, encode, read_line

REPLY_TIMEOUT_S = 120.0          # a snapshot of a large payload takes a while to write


class CliError(Exception):
    """What km-cli reports, as `<subject>: <problem>` (main() prints it as one line, status 1)."""

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")


def ask(path: str, request: dict[str, Any], timeout_s: float = REPLY_TIMEOUT_S) -> dict[str, Any]:
    """One request to the km at socket `path`; its reply, or CliError naming the problem."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_s)
    try:
        try:
            sock.connect(path)
        except FileNotFoundError:
            raise CliError(path, "no such socket (is km running with --mgtpipe?)") from None
        except ConnectionRefusedError:
            raise CliError(path, "no km listens there any more" if _is_socket(path) else "not a socket") from None
        except OSError as e:
            raise CliError(path, e.strerror or str(e)) from None
        try:
            sock.sendall(encode(request))
            line = read_line(sock)
        except socket.timeout:
            raise CliError(path, f"no answer within {timeout_s:g} s") from None
        except OSError as e:
            raise CliError(path, e.strerror or str(e)) from None
        except ProtocolError as e:
            raise CliError(path, str(e)) from None
    finally:
        sock.close()
    if not line:
        raise CliError(path, "km closed the connection without answering (did the payload end?)")
    try:
        reply = decode(line)
    except ProtocolError as e:
        raise CliError(path, f"bad reply: {e}") from None
    if "error" in reply:
        raise CliError(str(reply.get("subject") or path), str(reply["error"]))
    return reply


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def snapshot(args: argparse.Namespace) -> int:
    """km-cli snapshot: the output path is made absolute here, since the km that writes it has its own cwd."""
    output = os.path.abspath(args.output)
    reply = ask(args.socket, {"request": "snapshot", "output": output, "live": args.live, "label": args.label,
                              "description": args.description})
    print(f"snapshot written to {reply.get('output', output)}" + ("" if args.live else "; the payload ended"))
    return 0


def list_kms(args: argparse.Namespace) -> int:
    """km-cli list: only the kms that answer (a registry entry outlives a km killed before it could clean up)."""
    rows = []
    for entry in registry.entries():
        try:
            info = ask(entry["socket"], {"request": "info"}, timeout_s=2.0)
        except CliError:
            continue                        # its socket is gone: ending, or killed before it could clean up
        rows.append((str(info.get("pid", entry["pid"])), entry["socket"], str(info.get("payload", ""))))
    if rows:
        widths = [max(len(r[i]) for r in rows + [("PID", "SOCKET", "")]) for i in range(2)]
        print(f"{'PID':<{widths[0]}}  {'SOCKET':<{widths[1]}}  PAYLOAD")
        for pid, path, payload in rows:
            print(f"{pid:<{widths[0]}}  {path:<{widths[1]}}  {payload}")
    return 0


class _Parser(argparse.ArgumentParser):
    """A bad command line is one line too, `km-cli: <subject>: <problem>` (argparse's usage block is for --help)."""

    def error(self, message: str) -> NoReturn:
        print(f"km-cli: {usage_problem(message)}", file=sys.stderr)
        sys.exit(2)


def usage_problem(message: str) -> str:
    """argparse's message turned subject first (the argument, the command or the words it is about), with the
    pointer to --help."""
    choice = re.fullmatch(r"argument command: invalid choice: '(.*)' \(choose from (.*)\)", message)
    if choice:
        return f"{choice[1]}: unknown command ({choice[2].replace(chr(39), '')}; see km-cli --help)"
    for pattern, problem in ((r"the following arguments are required: (.*)", "required"),
                             (r"unrecognized arguments: (.*)", "not an option of this command")):
        found = re.fullmatch(pattern, message)
        if found:
            return f"{found[1]}: {problem} (see km-cli --help)"
    argument = re.fullmatch(r"argument ([^:]+): (.*)", message)
    return f"{argument[1]}: {argument[2]} (see km-cli --help)" if argument else f"{message} (see km-cli --help)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The subcommand's namespace, its handler in `run`; a bad command line exits 2 with one line."""
    parser = _Parser(prog="km-cli", description="Talk to running kms through their management "
                                                                "sockets (km --mgtpipe=PATH).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    take = commands.add_parser("snapshot", help="write a snapshot of the payload (it ends, unless --live)")
    take.add_argument("--socket", required=True, help="the km's management socket (its --mgtpipe)")
    take.add_argument("-o", "--output", required=True, help="the snapshot file to write")
    take.add_argument("--live", action="store_true", help="the payload goes on running")
    take.add_argument("--label", default="", help="a name kept in the snapshot")
    take.add_argument("--description", default="", help="a description kept in the snapshot")
    take.set_defaults(run=snapshot)
    listing = commands.add_parser("list", help="the kms of this user that have a management socket")
    listing.set_defaults(run=list_kms)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The km-cli entry point: the only place that prints a CliError and exits."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        status = args.run(args)
    except CliError as e:
        print(f"km-cli: {e}", file=sys.stderr)
        status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
