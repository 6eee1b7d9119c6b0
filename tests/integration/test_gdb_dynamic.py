"""gdb on dynamically linked payloads (issue 9): the same gdb session run against `km -g` and against gdbserver on
the same program, and what gdb prints compared: `info sharedlibrary` (same libraries, same From/To), the
qXfer:libraries-svr4 document, `break printf` and `bt` from inside libc, a pending breakpoint in a library the
program dlopens later, a breakpoint in libz under Debian's python3 with `bt` through the interpreter, and a kmcore
of a dynamic payload that died in abort() read by `gdb prog kmcore` against gdbserver's live view of the same death.

Both servers run the program without address randomization (gdbserver's default, km's only layout), so addresses
compare as they are; only stack addresses and link_map addresses (ld.so's own heap, which depends on the CPU
features the loader sees) are masked.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from harness.build import build
from harness.debuggee import Debuggee, km_only
from harness.gdb import free_port, gdb_batch
from harness.km import run_km
from harness.markers import line_of
from kdbg.core.reader import CoreTarget
from kdbg.link_map import LibraryCache

pytestmark = [
    pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK), reason="no /dev/kvm"),
    pytest.mark.skipif(shutil.which("gdbserver") is None, reason="gdbserver is not installed"),
]

BACKENDS = ("km", "gdbserver")
PYTHON = "/usr/bin/python3"
CONTINUE = "continue"
_STACK = re.compile(r"0x7ffffff[d-f][0-9a-f]{4}\b")
_LM = re.compile(r'\blm="0x[0-9a-f]+"')




def gdb_session(backend: str, exe: str | Path, steps: list[str], *, args: tuple[str, ...] = ()) -> list[str]:
    """Run the steps (CLI commands) in one gdb connected to `backend`; each step's console text, or for one that
    resumes (continue, finish) the stop's reason, function, exit code or returned value; stack addresses masked."""
    d = Debuggee(backend, Path(exe), free_port(), args=args)
    try:
        d.connect()
        out = []
        for step in steps:
            result = d.gdb.run(step, timeout_s=60)
            text = result["console"]
            if result["class"] == "running":        # continue, finish: the stop it ends with
                stop = d.gdb.wait_for_stop()
                text = " ".join(filter(None, (stop.get("reason"), stop.get("frame", {}).get("func"),
                                              stop.get("exit-code"), stop.get("return-value"))))
            out.append(_STACK.sub("<stack>", text))
        return out
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{d.diagnostics()}") from None
    finally:
        d.close()


def both(exe: str | Path, steps: list[str], **kw) -> tuple[list[str], list[str]]:
    """(km's outputs, gdbserver's outputs) of the same session."""
    km, reference = (gdb_session(backend, exe, steps, **kw) for backend in BACKENDS)
    return km, reference


def frames(bt: str) -> list[str]:
    """`bt` lines reduced to the frame's function and where it lives (file or library)."""
    found = re.findall(r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+) \(.*?\)(?: (?:at|from) (\S+))?$", bt, re.M)
    return [f"{func} {Path(where).name.split(':')[0]}".strip() for func, where in found]


# The interpreter each libc's dynamic programs name, which is also where printf lives for musl.
LIBC = {"dynamic": ("/ld-linux-x86-64.so.2", "/libc.so.6"), "musl-dynamic": ("/ld-musl-x86_64.so.1",)}


@pytest.mark.parametrize("toolchain", LIBC)
def test_info_sharedlibrary_and_break_in_libc_as_gdbserver(toolchain):
    steps = ["break main", CONTINUE, "info sharedlibrary", "maint packet qXfer:libraries-svr4:read::0,fff",
             "break printf", CONTINUE, "bt -frame-arguments none", CONTINUE]
    km, reference = both(build("gdb_basic.c", toolchain), steps)
    libraries, document, bt = km[2], km[3], km[6]
    assert all(name in libraries and name in document for name in LIBC[toolchain]), (libraries, document)
    assert "main-lm=" in document, document
    assert re.match(r"breakpoint-hit _*printf", km[5]) and frames(bt)[-1].startswith("main gdb_basic.c"), bt
    assert km[7] == "exited 03"
    assert [_LM.sub('lm="<heap>"', step) for step in km] == [_LM.sub('lm="<heap>"', step) for step in reference]


@pytest.fixture(scope="module")
def plugin() -> Path:
    return build("dyn_plugin.c", "dynamic", ("-shared", "-fPIC"))


def test_pending_breakpoint_resolves_when_dlopen_loads_the_library(plugin):
    prog = build("dyn_dlopen.c", "dynamic", ("-ldl",))
    steps = ["set breakpoint pending on", "break km_plugin_triple", CONTINUE, "bt -frame-arguments none",
             "info sharedlibrary", "finish", "p km_plugin_calls", CONTINUE]
    km, reference = both(prog, steps, args=(str(plugin), "km_plugin_triple"))
    assert "pending" in km[1], km[1]
    assert km[2] == "breakpoint-hit km_plugin_triple"
    assert frames(km[3]) == ["km_plugin_triple dyn_plugin.c", "main dyn_dlopen.c"], km[3]
    assert f"dyn_plugin.c:{line_of('dyn_plugin.c', 'plugin_body')}" in km[3], km[3]
    assert str(plugin) in km[4] and km[5] == "function-finished main 6", km
    assert km[6] == "$2 = 1\n", km[6]             # the plugin's __thread counter, in its DTV slot
    assert km[7] == "exited-normally"
    assert km == reference


@km_only
def test_attaching_to_a_running_dynamic_payload_finds_its_libraries():
    """km --gdb_listen: gdb connects once main runs; the list comes from r_debug at once (no load event seen)."""
    d = Debuggee("km", build("gdb_spin.c", "dynamic"), free_port(), listen=True)
    try:
        assert d.proc.stdout.readline() == b"spinning\n"
        d.connect()
        libraries = d.gdb.console("info sharedlibrary")
        assert "/libc.so.6" in libraries and "/ld-linux-x86-64.so.2" in libraries, d.diagnostics()
        # main's frame, with its source line: "#N  main () at" when the pc is on a line's first instruction,
        # "#N  0x... in main () at" otherwise; not always frame 0 (the attach may land in libc's write of "spinning")
        assert re.search(r"^#\d+  (0x[0-9a-f]+ in )?main \(\) at ", d.gdb.console("bt"), re.M), d.diagnostics()
        d.gdb.console("set var keep_going = 0")
        d.gdb.console("detach")
        d.gdb.exit()
        status, out, err = d.finish()
        assert status == 7 and "stopped spinning" in out, err
    finally:
        d.close()


def test_thread_local_storage_of_the_program_and_of_libc():
    """qGetTLSAddr: `p tl_counter` (the program's __thread) and `p errno` (libc's) in each of two threads."""
    prog = build("dyn_tls.c", "dynamic")
    steps = [f"break dyn_tls.c:{line_of('dyn_tls.c', 'worker_return')}", CONTINUE, "p errno", "p tl_counter",
             "thread 1", "p errno", "p tl_counter", "info threads", CONTINUE]
    km, reference = both(prog, steps)
    assert km[2:4] == ["$1 = 11\n", "$2 = 99\n"] and km[5:7] == ["$3 = 5\n", "$4 = 42\n"], km
    assert km[8] == "exited-normally"
    # Thread 1 is wherever the scheduler left it (clone3, or already waiting in pthread_join): its frame is not
    # compared; `info threads` is compared by id and name.
    names = re.compile(r"^\*?\s*(\d+)\s+Thread \d+\.\d+ (\"[^\"]*\")", re.M)
    comm = '"dyn_tls.dynamic"'                      # Linux's comm: the file name's first 15 bytes
    assert names.findall(km[7]) == names.findall(reference[7]) == [("1", comm), ("2", comm)]
    assert km[:4] + km[5:7] + km[8:] == reference[:4] + reference[5:7] + reference[8:]


@pytest.mark.parametrize("mode,steps", [
    ("exec", ["catch exec", CONTINUE, "break after_exec", CONTINUE, "info sharedlibrary", "bt", CONTINUE]),
    ("fork", ["set follow-fork-mode child", "break in_child", CONTINUE, "info sharedlibrary", "bt", CONTINUE])])
def test_the_libraries_of_an_execed_program_and_of_a_followed_child(mode, steps):
    """After an exec the new program's list is read afresh (the stub of the new km); a followed child's is its own."""
    km, reference = both(build("gdb_fork.c", "dynamic"), steps, args=(mode,))
    libraries, bt = km[steps.index("info sharedlibrary")], km[steps.index("bt")]
    assert "/libc.so.6" in libraries and re.search(r"^#1 .* in main ", bt, re.M), km
    pids = re.compile(r"(process|Thread) \d+(\.\d+)?")
    assert [pids.sub(r"\1 <pid>", step) for step in km] == [pids.sub(r"\1 <pid>", step) for step in reference]


def test_python3_breakpoint_in_libz_and_bt_through_the_interpreter(tmp_path):
    """Debian's python3 links libpython statically: its frames are the executable's, libz's is a library's."""
    script = tmp_path / "crc.py"
    script.write_text("import zlib\nprint(zlib.crc32(b'km'))\n")
    steps = ["set breakpoint pending on", "break crc32", CONTINUE, "bt -frame-arguments none", CONTINUE]
    km, reference = both(PYTHON, steps, args=(str(script),))
    names = frames(km[3])
    assert names[0] == "crc32 libz.so.1", km[3]
    assert any(n.startswith("_PyEval_EvalFrameDefault ") for n in names) and names[-1].startswith("_start"), km[3]
    assert km[4] == "exited-normally"
    assert km == reference


@pytest.fixture(scope="module")
def abort_core(tmp_path_factory) -> tuple[Path, Path]:
    """(program, kmcore) of core_crash.c built dynamic and dead of abort() in km."""
    exe = build("core_crash.c", "dynamic", ("-pthread",))
    work = tmp_path_factory.mktemp("dynamic-core")
    result = run_km(exe, "abort", cwd=work, timeout=120)
    assert result.returncode == 128 + 6 and (work / "kmcore").exists(), result.stderr
    return exe, work / "kmcore"


def test_kmcore_of_a_dynamic_payload_shows_its_libraries_and_bt_through_libc(abort_core):
    """abort() in a dynamic program: kmcore's NT_FILE names libc, and `gdb prog kmcore` shows what gdb showed live
    at the same death under gdbserver."""

    exe, kmcore = abort_core
    core_target = CoreTarget(str(kmcore))
    files = {Path(r.path).name for r in core_target.mappings() if r.is_file()}
    assert {"libc.so.6", "ld-linux-x86-64.so.2", exe.name} <= files, files
    # The stub serving this core (read-only) finds the same list in the core's memory.
    assert b"/libc.so.6" in LibraryCache().document(core_target, live=False)
    core = gdb_batch(exe, kmcore, commands=["info sharedlibrary", "bt -frame-arguments none"])
    live = gdb_session("gdbserver", exe, [CONTINUE, "info sharedlibrary", "bt -frame-arguments none"],
                       args=("abort",))
    assert live[0].startswith("signal-received")
    # gdb lists libraries in the order it learnt of them: live, ld.so first; from a core, the link_map's order
    assert sorted(core[0].split()) == sorted(live[1].replace("target:", "").split()), (core, live)
    assert frames(core[1]) == frames(live[2]), (core[1], live[2])
    names = frames(core[1])
    assert any("abort" in n for n in names) and "main core_crash.c" in names, core[1]


def test_dap_stack_trace_shows_library_frames(dap, payload):
    """kdbg-dap on a dynamic payload: a function breakpoint in libc (pending until libc loads) stops there, and
    the stack trace runs from the libc frame into main's source line."""
    from harness.dap import marker_path

    program = str(payload("dap_basic.c", "dynamic"))
    client = dap()
    client.call("initialize", {"adapterID": "km", "linesStartAt1": True, "pathFormat": "path"})
    launched = client.send("launch", {"program": program, "kmPath": client.km_path})
    client.wait_event("initialized", timeout_s=90)
    placed = client.call("setFunctionBreakpoints", {"breakpoints": [{"name": "printf"}]})["breakpoints"]
    client.call("configurationDone")
    assert client.response(launched)["success"], client.dump()
    hit = client.wait_event("stopped", timeout_s=60)
    assert hit["hitBreakpointIds"] == [placed[0]["id"]], client.dump()
    frames = client.call("stackTrace", {"threadId": hit["threadId"]})["stackFrames"]
    assert re.fullmatch(r"_*printf", frames[0]["name"]), client.dump()
    assert (frames[1]["name"], frames[1]["line"], frames[1]["source"]["path"]) == \
        ("main", line_of("dap_basic.c", "print"), marker_path("dap_basic.c")), client.dump()
    modules = {m["name"] for m in client.call("modules")["modules"]}
    assert {"libc.so.6", Path(program).name} <= modules, modules


def test_dap_post_mortem_of_a_dynamic_kmcore_shows_libc_frames(dap, abort_core):
    exe, kmcore = abort_core
    client = dap()
    client.start("launch", {"program": str(exe), "coreFile": str(kmcore)})
    stop = client.wait_event("stopped")
    assert (stop["reason"], stop["text"]) == ("exception", "SIGABRT"), client.dump()
    frames = client.call("stackTrace", {"threadId": stop["threadId"]})["stackFrames"]
    names = [f["name"] for f in frames]
    assert any("abort" in name for name in names[:4]) and names[-3:] == ["leaf", "middle", "main"], client.dump()
    assert frames[-1]["line"] == line_of("core_crash.c", "main"), client.dump()
    modules = {m["name"] for m in client.call("modules")["modules"]}
    assert "libc.so.6" in modules, modules
