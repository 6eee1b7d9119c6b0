"""Dynamically linked programs run as they do natively: the system's own /bin/ls, dash forking and executing
dynamic children, ld.so run as a program, a gcc-built dynamic payload, dlopen, the loader's own failures, and
Debian's python3 with one of its own test modules. Each is compared with a native run of the same command."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.km import ROOT, run_both, run_km

PYTHON = "/usr/bin/python3"
TESTSUITE = Path("/usr/lib/python3.11/test/test_bisect.py")
LDSO = "/lib64/ld-linux-x86-64.so.2"
needs_testsuite = pytest.mark.skipif(not TESTSUITE.exists(),
                                     reason="libpython3.11-testsuite not installed (tools/install.sh installs it)")


def same_as_native(exe: str | Path, *args: str, env: dict[str, str] | None = None, cwd=None,
                   normalize: re.Pattern | None = None) -> tuple[int, str, str]:
    """Run under km and natively; assert identical status, stdout and stderr (minus what `normalize` matches);
    return km's."""
    km, native = run_both(exe, *args, env=env, cwd=cwd)
    if normalize is not None:
        km, native = [(status, normalize.sub("", out), normalize.sub("", err)) for status, out, err in (km, native)]
    assert km == native, f"km: {km}\nnative: {native}"
    return km


def test_ls(tmp_path):
    (tmp_path / "a file").write_text("x")
    (tmp_path / "dir").mkdir()
    os.symlink("a file", tmp_path / "link")
    status, out, _ = same_as_native("/bin/ls", "-la", "--time-style=+", str(tmp_path), "/etc")
    assert status == 0 and "a file" in out and "link -> a file" in out


def test_ls_of_a_missing_file_fails_as_natively():
    status, _, err = same_as_native("/bin/ls", "/nonexistent-km-test")
    assert status == 2 and "No such file or directory" in err


def test_sh_pipeline_forks_and_execs_dynamic_children():
    status, out, _ = same_as_native("/bin/sh", "-c", "ls / | wc -l; echo $((6*7)); /bin/true && exit 3")
    assert status == 3 and out.split()[-1] == "42"


def test_interpreter_run_as_a_program():
    """`ld.so PROGRAM`: the interpreter is itself an ET_DYN without PT_INTERP; it loads the program."""
    km = run_km(LDSO, "/bin/ls", "/")
    native = subprocess.run(["/bin/ls", "/"], capture_output=True)
    assert (km.returncode, km.stdout, km.stderr) == (0, native.stdout, b"")


def test_gcc_built_dynamic_payload(payload, tmp_path):
    prog = payload("run_hello.c", "dynamic")
    status, out, _ = same_as_native(prog, "one", "two words", "--exit", "7")
    assert status == 7 and "argv[2]=[two words]" in out


def test_dlopen(payload):
    prog = payload("dyn_dlopen.c", "dynamic", ("-ldl",))
    status, out, _ = same_as_native(prog, "libm.so.6", "cbrt")
    assert status == 0 and "cbrt(2.0) = 1.259921" in out and "maps name libm.so.6: yes" in out
    assert "libkm-no-such-library.so.7: cannot open shared object file" in out


def test_missing_library_is_the_loaders_message_and_status(payload, tmp_path):
    lib = payload("dyn_lib.c", "dynamic", ("-shared", "-fPIC", "-Wl,-soname,libkmneeded.so"))
    prog = payload("dyn_needs.c", "dynamic", ("-Wl,--no-as-needed", str(lib)))
    status, _, err = same_as_native(prog)
    assert status == 127 and "libkmneeded.so: cannot open shared object file" in err
    shutil.copy(lib, tmp_path / "libkmneeded.so")
    status, out, _ = same_as_native(prog, env={"LD_LIBRARY_PATH": str(tmp_path)})
    assert (status, out) == (0, "answer 42\n")


def test_maps_match_linux_without_aslr():
    """The program, its interpreter and libc land where Linux puts them with randomization off, in VMAs merged
    as Linux merges them (RELRO apart from .rodata)."""
    km = run_km("/bin/cat", "/proc/self/maps")
    native = subprocess.run(["setarch", "-R", "/bin/cat", "/proc/self/maps"], capture_output=True)
    if native.returncode != 0:
        pytest.skip(f"setarch -R is not allowed here: {native.stderr.decode().strip()}")

    def files(out: bytes) -> list[str]:
        return [line for line in out.decode().splitlines() if line.split()[-1].startswith("/")]
    assert km.returncode == 0 and files(km.stdout) == files(native.stdout)


def test_python_imports(tmp_path):
    status, out, _ = same_as_native(PYTHON, "-c", "import json, hashlib, sqlite3, ssl, ctypes; print('ok')")
    assert (status, out) == (0, "ok\n")


@needs_testsuite
def test_python_unittest_bisect():
    km, native = run_both(PYTHON, "-m", "unittest", "test.test_bisect")
    timing = re.compile(r" in \d+\.\d+s")
    assert [km[0], timing.sub("", km[2])] == [native[0], timing.sub("", native[2])]
    assert km[0] == 0 and "Ran 42 tests" in km[2] and km[2].rstrip().endswith("OK")


def test_python_symlink_form(tmp_path):
    """ln -s $(which km) python3 && ln -s /usr/bin/python3.11 python3.km && ./python3 script.py

    `km` here is what pip installs: a Python script whose argv[0] is the name it was started by."""
    launcher = tmp_path / "km"
    launcher.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                        "from monitor.cli import main\nmain()\n")
    launcher.chmod(0o755)
    os.symlink(launcher, tmp_path / "python3")
    os.symlink("/usr/bin/python3.11", tmp_path / "python3.km")
    (tmp_path / "script.py").write_text("import sys; print(sys.argv[1:], sys.version_info[:2])\n")
    result = subprocess.run(["./python3", "script.py", "a b"], capture_output=True, cwd=tmp_path, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"['a b'] (3, 11)\n", b"")


@pytest.fixture
def scripts(tmp_path) -> Path:
    """A shell script, a python3 one, one naming a missing interpreter, one not executable."""
    for name, text, mode in [("s.sh", "#!/bin/sh -e\necho \"sh $0 $*\"\nexit 4\n", 0o755),
                             ("p.py", "#!/usr/bin/python3\nimport sys\nprint('py', sys.argv)\n", 0o755),
                             ("bad", "#!/nonexistent/km-interp\n", 0o755),
                             ("noexec", "#!/bin/sh\necho never\n", 0o644)]:
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(mode)
    return tmp_path


def test_script_as_the_payload(scripts):
    """km SCRIPT runs the interpreter its #! line names, with the kernel's argv."""
    assert same_as_native("./s.sh", "a", "b c", cwd=scripts) == (4, "sh ./s.sh a b c\n", "")
    assert same_as_native("./p.py", "x", cwd=scripts) == (0, "py ['./p.py', 'x']\n", "")


def test_execve_of_scripts(scripts):
    """dash executes scripts through execve (the kernel's rules: ENOENT for a missing interpreter, EACCES for a
    file without x), and its children see the environment it gives them, not km's."""
    status, out, _ = same_as_native("/bin/sh", "-c", "./s.sh q; ./p.py z; ./bad; ./noexec; echo $?; "
                                    "PYTHONHOME=/nonexistent-km exec /usr/bin/printenv PYTHONHOME", cwd=scripts)
    assert (status, out) == (0, "sh ./s.sh q\npy ['./p.py', 'z']\n126\n/nonexistent-km\n")


def test_missing_script_interpreter_is_one_line(scripts):
    result = run_km(scripts / "bad")
    assert (result.returncode, result.stderr.decode()) == (
        1, "km: /nonexistent/km-interp: no such file\n")


PROC_SELF = r"""
import os, signal, threading
signal.signal(signal.SIGUSR1, signal.SIG_IGN)
signal.signal(signal.SIGUSR2, lambda *a: None)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
started, done = threading.Event(), threading.Event()
t = threading.Thread(target=lambda: (started.set(), done.wait()))
t.start(); started.wait()
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
print({k: status[k].strip() for k in ('Name', 'State', 'Threads', 'SigBlk', 'SigIgn', 'SigCgt')})
print(status['Pid'].strip() == str(os.getpid()), status['PPid'].strip() == str(os.getppid()),
      int(status['VmSize'].split()[0]) > int(status['VmExe'].split()[0]) > 0)
stat = open('/proc/self/stat').read()
f = stat[stat.rindex(')') + 2:].split()
print(stat[:stat.rindex(')') + 1].split(' ', 1)[1], f[0], f[17], f[28:32], int(f[23]) < int(f[24]))
print(int(f[46]) - int(f[45]) == len(open('/proc/self/cmdline', 'rb').read()),
      int(f[48]) - int(f[47]) == len(open('/proc/self/environ', 'rb').read()))
print(sorted(os.listdir('/proc/self/fd'), key=int), sorted(os.listdir('/proc/self/fdinfo'), key=int))
done.set(); t.join()
"""


def test_proc_self_describes_the_payload():
    """status and stat give the payload's name, threads, signal sets and memory; fd/ lists its descriptors only."""
    status, out, _ = same_as_native(PYTHON, "-c", PROC_SELF)
    assert status == 0 and "'Name': 'python3'" in out and "'Threads': '2'" in out and "True True True" in out
