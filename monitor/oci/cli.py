"""km-runtime's command line, the OCI runtime CLI as podman (through conmon), Docker and containerd (its runc.v2
shim) call it: `km-runtime [global options] COMMAND [options] ID`. `create`/`run` rewrite the bundle's config and
`exec` its --process file (monitor/oci/rewrite.py); then every command, unchanged, becomes the delegate's (runc).
A problem is one line `km-runtime: <subject>: <problem>` on stderr and in the engine's --log file, status 1."""
from __future__ import annotations

import os
import sys

from .errors import RuntimeProblem

TYPE_CHECKING = False
if TYPE_CHECKING:                       # (typing itself is not imported: start-up time, see jsonio.py)
    from .settings import HostSettings

# runc's global options that take a value (as `--opt value` or `--opt=value`, one or two dashes)
GLOBAL_VALUE_OPTIONS = {"root", "log", "log-format", "log-level", "criu", "rootless", "cgroup-manager"}
# value options of `create`/`run` and `exec` (the rest of their options are flags)
COMMAND_VALUE_OPTIONS = {
    "create": {"bundle", "b", "console-socket", "pid-file", "preserve-fds"},
    "exec": {"console-socket", "cwd", "env", "e", "user", "u", "additional-gids", "g", "process", "p", "pid-file",
             "process-label", "apparmor", "cap", "c", "preserve-fds", "cgroup"},
}
COMMAND_VALUE_OPTIONS["run"] = COMMAND_VALUE_OPTIONS["create"]


def split_options(args: list[str], value_options: set[str]) -> tuple[dict[str, str], list[str], int]:
    """Leading options of `args` (name without dashes -> value, '' for a flag), the positionals after them, and
    the index where the first positional starts."""
    opts: dict[str, str] = {}
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        if args[i] == "--":
            i += 1
            break
        name, eq, value = args[i].lstrip("-").partition("=")
        if not eq and name in value_options and i + 1 < len(args):
            i += 1
            value = args[i]
        opts[name] = value
        i += 1
    return opts, args[i:], i


def main(argv: list[str] | None = None) -> None:
    """The km-runtime entry point: rewrite what create/run/exec start, then become the delegate (never returns)."""
    argv = sys.argv if argv is None else argv
    args = argv[1:]
    globals_, rest, _ = split_options(args, GLOBAL_VALUE_OPTIONS)
    command = rest[0] if rest else ""
    try:
        from .settings import find_delegate, host_settings
        host = host_settings()
        delegate = find_delegate(host.delegate)
        if command in ("create", "run", "exec"):
            notes = rewrite(command, rest[1:], globals_, host, delegate)
            if host.trace:
                trace(host.trace, args, notes)
    except RuntimeProblem as e:
        fail(str(e), globals_)
    except Exception as e:              # a bug in km-runtime: still one line where the engine shows it
        fail(f"internal error: {type(e).__name__}: {e}".splitlines()[0], globals_)
    try:
        os.execv(delegate, [delegate, *args])
    except OSError as e:
        fail(f"{delegate}: {e.strerror}", globals_)


def rewrite(command: str, args: list[str], globals_: dict[str, str], host: HostSettings,
            delegate: str) -> list[str]:
    """Put the process that `command` starts under km; what was done, for the trace."""
    from .rewrite import rewrite_bundle, rewrite_exec
    opts, positionals, _ = split_options(args, COMMAND_VALUE_OPTIONS[command])
    if command in ("create", "run"):
        bundle = opts.get("bundle") or opts.get("b") or os.getcwd()
        if not os.path.isdir(bundle):
            raise RuntimeProblem(bundle, "no such bundle directory")
        return rewrite_bundle(bundle, host)
    process_file = opts.get("process") or opts.get("p")
    if not process_file or not positionals:
        return ["exec without --process: unchanged"]
    return rewrite_exec(process_file, container_bundle(positionals[0], globals_, delegate), host)


def container_bundle(container_id: str, globals_: dict[str, str], delegate: str) -> str:
    """The bundle of a created container, from the delegate's `state`."""
    import subprocess
    from . import jsonio
    argv = [delegate] + [f"--{k}={v}" if v else f"--{k}" for k, v in globals_.items()
                         if k in ("root", "rootless", "systemd-cgroup")] + ["state", container_id]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeProblem(container_id, delegate_message(r.stderr))
    return jsonio.loads(r.stdout)["bundle"]


def delegate_message(stderr: str) -> str:
    """The delegate's last line, without logrus's time= and level= (runc: `time="..." level=error msg="..."`),
    so that km-runtime's one line does not carry a second one's header."""
    from . import jsonio
    line = (stderr.strip().splitlines() or ["no such container"])[-1]
    _, found, message = line.partition(" msg=")
    if found and message.startswith('"') and message.endswith('"'):
        try:
            return jsonio.loads(message)
        except ValueError:
            pass
    return line


def fail(message: str, globals_: dict[str, str]) -> None:
    """The one line, where the engine looks: stderr (podman, docker) and the --log file (containerd's shim)."""
    line = f"km-runtime: {message}"
    print(line, file=sys.stderr, flush=True)
    log = globals_.get("log")
    if log:
        import time
        from .jsonio import dumps
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        if globals_.get("log-format") == "json":
            entry = dumps({"level": "error", "msg": line, "time": stamp})
        else:
            entry = f'time="{stamp}" level=error msg={dumps(line)}'
        try:
            with open(log, "a") as f:
                f.write(entry + "\n")
        except OSError:
            pass
    sys.stdout.flush()
    os._exit(1)


def trace(path: str, args: list[str], notes: list[str]) -> None:
    """One entry per rewrite in the host's trace file (KM_RUNTIME_TRACE): the command line, then what changed."""
    try:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {args}\n" + "".join(f"    {n}\n" for n in notes))
    except OSError:
        pass


if __name__ == "__main__":
    main()
