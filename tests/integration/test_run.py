"""km runs static programs as they run natively: same stdout, same exit status, argv/envp in, files out.

Differential: each payload runs natively and under km with the same argv, environment and working directory.
`differential()` is also used by the test_syscalls_*.py modules.
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from harness.km import KM, km_env, run_km

TOOLCHAINS = ["musl", "glibc", "glibc-pie"]
TRACE_LINE = re.compile(r"^\s*\d+\.\d{6} (?P<tag>\S+)\s+(?P<file>\w+\.py):(?P<line>\d+) (?P<payload>[^:]+): (?P<msg>.*)$")


def run_native(program: str | Path, *args: str, cwd=None, env=None, stdin=subprocess.DEVNULL, timeout: float = 60):
    return subprocess.run([str(program), *args], capture_output=True, timeout=timeout, cwd=cwd,
                          env=km_env(env), stdin=stdin)


def run_under_km(program: str | Path, *args: str, cwd=None, env=None, stdin=subprocess.DEVNULL, timeout: float = 60):
    return subprocess.run([*KM, str(program), *args], capture_output=True, timeout=timeout, cwd=cwd,
                          env=km_env(env), stdin=stdin)


def run_pair(program: str | Path, *args: str, cwds=(None, None), env=None, stdin_factory=None, timeout: float = 60):
    """(native, km) results of the same command; each may get its own working directory and a fresh stdin."""
    return tuple(runner(program, *args, cwd=cwd, env=env, timeout=timeout,
                        stdin=stdin_factory() if stdin_factory else subprocess.DEVNULL)
                 for runner, cwd in zip((run_native, run_under_km), cwds))


def lines_without(out: bytes, prefix: str | None) -> list[str]:
    """Output lines, less those starting with `prefix` (the payloads mark run-dependent lines with '~')."""
    return [line for line in out.decode(errors="replace").splitlines() if not (prefix and line.startswith(prefix))]


def differential(program: str | Path, *args: str, cwd=None, env=None, timeout: float = 60, drop: str | None = None):
    """Run natively then under km; assert same stdout and status, same stderr; return (native, km) results.

    `drop`: a line prefix whose lines vary between runs (pids, paths): removed before comparing."""
    native, km = run_pair(program, *args, cwds=(cwd, cwd), env=env, timeout=timeout)
    assert km.stderr == native.stderr, f"km stderr differs:\n{km.stderr.decode(errors='replace')}"
    assert lines_without(km.stdout, drop) == lines_without(native.stdout, drop), km.stderr.decode(errors="replace")
    assert km.stdout.endswith(b"\n") == native.stdout.endswith(b"\n")
    assert km.returncode == shell_status(native.returncode), km.stderr.decode(errors="replace")
    return native, km


def shell_status(returncode: int) -> int:
    """A native child killed by signal s (returncode -s) as a shell reports it, and as km exits: 128 + s."""
    return 128 - returncode if returncode < 0 else returncode


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_hello_matches_native(payload, toolchain, tmp_path):
    program = payload("run_hello.c", toolchain)
    native, km = differential(program, "one", "two words", "", "--exit", "3", cwd=tmp_path)
    assert b"argv[2]=[two words]" in km.stdout and km.returncode == 3


@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_libc_program_matches_native(payload, toolchain, tmp_path):
    """malloc (brk and mmap), stdio files, floats, qsort, strftime, readdir, atexit, exit status."""
    native, km = differential(payload("run_libc.c", toolchain), "5", cwd=tmp_path)
    assert km.returncode == 5 and km.stdout.endswith(b"atexit handler ran\n")
    assert list(tmp_path.iterdir()) == []              # the temporary file was made and removed


def test_argv_envp_and_files_cross_the_vm_boundary(payload, tmp_path):
    program = payload("run_hello.c", "musl")
    out_file = tmp_path / "made-inside.txt"
    km = run_km("--putenv", "PUT=by option", program, "--env", "FROM_HOST", "--env", "PUT", "--env", "KM_VERBOSE",
                "--write", out_file, env={"FROM_HOST": "host value é", "KM_VERBOSE": "0"})
    assert km.returncode == 0, km.stderr
    assert b"env FROM_HOST=host value \xc3\xa9\n" in km.stdout
    assert b"env PUT=by option\n" in km.stdout
    assert b"env KM_VERBOSE=(unset)\n" in km.stdout          # km's own variables stay km's
    assert out_file.read_text() == "written inside, 9 args\n"


@pytest.mark.parametrize("status", [0, 1, 42, 255, 256, 300])
def test_exit_status_passes_through(payload, status):
    km = run_km(payload("run_hello.c", "musl"), "--exit", str(status))
    assert km.returncode == status % 256, km.stderr
    assert km.stderr == b""


def test_compute_bound_payload_matches_native(payload):
    program = payload("run_compute.c", "glibc")
    differential(program, "3000000")


# ---- busybox (Debian's busybox-static): applets pick themselves from argv[0], so the copy is named busybox ----
@pytest.fixture(scope="module")
def busybox(tmp_path_factory) -> Path:
    source = Path("/bin/busybox")
    if not source.exists():
        pytest.skip("busybox-static is not installed")
    copy = tmp_path_factory.mktemp("bb") / "busybox"
    copy.write_bytes(source.read_bytes())
    copy.chmod(0o755)
    return copy


@pytest.mark.parametrize("args", [["echo", "hello", "  spaced  ", "-n?"], ["ls", "/"], ["cat", "/etc/hostname"],
                                  ["ls", "-l", "/nonexistent-dir"], ["false"], ["seq", "1", "30000"]],
                         ids=["echo", "ls", "cat", "ls-missing", "false", "seq-30000-lines"])
def test_busybox_applets_match_native(busybox, args):
    differential(busybox, *args)


def test_busybox_reads_stdin(busybox):
    text = "".join(f"line {i} of the input\n" for i in range(60)).encode()
    for args in (["wc", "-l"], ["sh", "-c", "n=0; while read a b rest; do n=$((n + b)); done; echo $n"]):
        native = subprocess.run([str(busybox), *args], input=text, capture_output=True, timeout=60)
        km = subprocess.run([*KM, str(busybox), *args], input=text, capture_output=True, timeout=60, env=km_env())
        assert (km.stdout, km.stderr, km.returncode) == (native.stdout, native.stderr, native.returncode), args


def test_busybox_sha256sum_of_10mb_file(busybox, tmp_path):
    data = tmp_path / "ten.bin"
    block = bytes(range(256)) * 4096
    data.write_bytes(b"".join(bytes([i]) + block[:-1] for i in range(10)))     # 10 MiB, not all the same
    native, km = differential(busybox, "sha256sum", str(data))
    import hashlib
    assert km.stdout.split()[0].decode() == hashlib.sha256(data.read_bytes()).hexdigest()


SH_SCRIPT = r'''
x=0; i=0
while [ $i -lt 200 ]; do x=$((x + i * i % 7)); i=$((i + 1)); done
echo "sum=$x"
for w in alpha "beta gamma" delta; do printf '[%s]' "$w"; done; echo
name=world; greeting="hello ${name}"; echo "${greeting} ${#greeting} ${greeting%world}"
case $x in *[0-9]) echo digits;; *) echo other;; esac
f() { echo "in f: $1 $#"; return 3; }; f a b; echo "f returned $?"
set -- p q r; shift; echo "$@ $#"
exit $((x % 50))
'''


FILE_TOOLS = [["mkdir", "-p", "a/b/c"], ["cp", "lines", "a/b/copy"], ["mv", "a/b/copy", "a/moved"],
              ["ln", "-s", "lines", "lnk"], ["readlink", "lnk"], ["touch", "-d", "2020-01-02 03:04:05", "lines"],
              ["chmod", "640", "lines"], ["stat", "-c", "%s %a %Y %F", "lines"], ["stat", "-c", "%s %a %F", "lnk", "a"], ["sort", "-r", "lines"],
              ["find", ".", "-name", "*m*"], ["tar", "cf", "t.tar", "a", "lines"], ["tar", "tf", "t.tar"],
              ["gzip", "-k", "lines"], ["zcat", "lines.gz"], ["rm", "-r", "a"], ["ls", "-a"], ["du", "-s", "."],
              ["dd", "if=lines", "of=dd.out", "bs=3", "count=2"], ["md5sum", "dd.out"]]


def test_busybox_file_tools_match_native(busybox, tmp_path):
    """A sequence of file tools, each run natively in one directory and under km in another: same output."""
    dirs = tmp_path / "native", tmp_path / "km"
    for d in dirs:
        d.mkdir()
        (d / "lines").write_text("b\na\nc\n")
    for args in FILE_TOOLS:
        native, km = run_pair(busybox, *args, cwds=dirs)
        assert (km.stdout, km.stderr, km.returncode) == (native.stdout, native.stderr, native.returncode), args
    assert sorted(p.name for p in dirs[1].iterdir()) == sorted(p.name for p in dirs[0].iterdir())


def test_busybox_sh_builtins_match_native(busybox):
    native, km = differential(busybox, "sh", "-c", SH_SCRIPT)
    assert b"sum=" in km.stdout and km.returncode != 0


# ---- how km is invoked -------------------------------------------------------------------------------------
def km_launcher(tmp_path: Path, kind: str) -> Path:
    """A `km` executable: the installed console script, or a wrapper that keeps argv[0] as km's main() sees it."""
    if kind == "console-script":            # the one pip installed beside this interpreter (not a pyenv shim,
        found = Path(KM[0]).parent / "km"     # which would look for a command named after the link)
        if not found.exists():
            pytest.skip("console script km not installed (pip install -e .)")
        return found
    wrapper = tmp_path / "km"
    wrapper.write_text('#!/bin/sh\nexec "%s" -c "import sys; from monitor.cli import main; main(sys.argv[1:])" '
                       '"$0" "$@"\n' % KM[0])
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize("kind", ["wrapper", "console-script"])
def test_symlink_form_runs_name_dot_km(payload, tmp_path, kind):
    launcher = km_launcher(tmp_path, kind)
    work = tmp_path / "bin"
    work.mkdir()
    (work / "tool").symlink_to(launcher)
    (work / "tool.km").write_bytes(payload("run_hello.c", "musl").read_bytes())
    result = subprocess.run(["./tool", "x", "--exit", "7"], cwd=work, capture_output=True, env=km_env(), timeout=60)
    assert result.returncode == 7, result.stderr
    assert result.stdout.startswith(b"hello from a path\nargc=4\nargv[1]=[x]\n"), result.stdout


def test_help_and_version():
    help_ = run_km("--help")
    assert help_.returncode == 0 and help_.stdout.startswith(b"usage: km "), help_
    assert b"KM_VERBOSE" in help_.stdout and help_.stderr == b""
    version = run_km("--version")
    assert version.returncode == 0 and re.fullmatch(rb"km \d+\.\d+\.\d+\n", version.stdout), version


def test_verbose_trace_lines_have_time_tag_place_and_payload(payload):
    program = payload("sys_enosys.c", "musl")
    km = run_km(program, "246", env={"KM_VERBOSE": "1"})
    assert km.returncode == 0, km.stderr
    lines = km.stderr.decode().splitlines()
    assert lines, "KM_VERBOSE=1 printed nothing"
    for line in lines:
        m = TRACE_LINE.match(line)
        assert m, f"not a trace line: {line!r}"
        assert m["payload"] == os.path.basename(program)
    tags = {TRACE_LINE.match(line)["tag"] for line in lines}
    assert "syscall" in tags
    only = run_km(program, "246", env={"KM_VERBOSE": "vcpu"})
    assert {TRACE_LINE.match(line)["tag"] for line in only.stderr.decode().splitlines()} <= {"vcpu"}


def test_uncaught_exceptions_become_one_line():
    """The safety net under every path: a km bug in the main thread is one line and status 1; one in a helper
    thread stays in the trace."""
    code = ("import threading; from monitor.trace import setup_trace; setup_trace('p.km'); "
            "t = threading.Thread(target=lambda: 1 / 0, name='helper'); t.start(); t.join(); "
            "raise ValueError('boom\\nsecond line')")
    quiet = subprocess.run([KM[0], "-c", code], capture_output=True, env=km_env({"KM_VERBOSE": "0"}), timeout=30)
    assert quiet.stderr == b"km: internal error: ValueError: boom\n" and quiet.returncode == 1, quiet.stderr
    traced = subprocess.run([KM[0], "-c", code], capture_output=True, env=km_env({"KM_VERBOSE": "1"}), timeout=30)
    text = traced.stderr.decode()
    assert "thread helper failed" in text and "ZeroDivisionError" in text and "Traceback" in text
    assert text.endswith("km: internal error: ValueError: boom\n")


def test_non_utf8_argv_and_environment_pass_through(payload):
    program = payload("run_hello.c", "musl")
    cmd = [os.fsencode(KM[0]), b"-m", b"monitor.cli", os.fsencode(str(program)), b"\xff\xfe", b"--env", b"RAW"]
    env = {os.fsencode(k): os.fsencode(v) for k, v in km_env().items()}
    env[b"RAW"] = b"caf\xe9"
    km = subprocess.run(cmd, capture_output=True, env=env, timeout=60)
    assert km.returncode == 0, km.stderr
    assert b"argv[1]=[\xff\xfe]\n" in km.stdout and b"env RAW=caf\xe9\n" in km.stdout
