"""End to end, data: registers, globals, locals, structs, memory, writes that change the payload's output;
and a differential check of one stop under km and under gdbserver.
"""
from __future__ import annotations


from harness.debuggee import Debuggee, km_only, run_to, run_to_exit
from harness.gdb import free_port
from harness.markers import line_of

BASIC = "gdb_basic.c"


def test_registers_values_structs_memory(debug) -> None:
    d = debug()
    run_to(d, "scale")
    gdb = d.gdb
    regs = gdb.console("info registers")
    assert "rip" in regs and "<scale+" in regs, d.diagnostics()
    assert gdb.console("p counter").strip().endswith("= 42")
    assert gdb.console("p k").strip().endswith("= 2")
    assert gdb.console("p *p").strip().endswith('{x = 3, y = 4, label = 0x' + gdb.console(
        "p/x origin.label").split("0x")[1].strip() + ' "origin"}')
    assert gdb.console("up").count("main") >= 1 and gdb.console("p local").strip().endswith("= 5")
    assert gdb.console("x/s message").strip().endswith('"hello from km"')
    assert gdb.console("x/2xw &origin").split(":")[1].split() == ["0x00000003", "0x00000004"]
    assert "mov" in gdb.console("x/3i $pc") or "call" in gdb.console("x/3i $pc")
    assert gdb.console("p $fs_base").strip() != "= 0"


def test_set_var_changes_output_and_exit_code(debug) -> None:
    d = debug()
    run_to(d, f"{BASIC}:{line_of(BASIC, 'write_watched')}")
    d.gdb.console("set var counter = 100")
    d.gdb.console('set var message[0] = 0x48')
    status, out, err = run_to_exit(d, 100 - 42 + 3)
    assert "counter=100" in out and "message=Hello from km" in out, out + err
    if d.backend == "km":
        assert status == 100 - 42 + 3, err


def test_register_writes_of_every_class_stick(debug) -> None:
    """P/G through the target for GPR, x87, SSE, AVX and segment-base registers: written, stepped over,
    read back."""
    d = debug()
    run_to(d, "scale")
    gdb = d.gdb
    writes = {"$r12": ("0x1122334455667788", "p/x $r12", "0x1122334455667788"),
              "$xmm5.v4_int32[1]": ("123", "p $xmm5.v4_int32[1]", "123"),
              "$ymm5.v8_int32[7]": ("77", "p $ymm5.v8_int32[7]", "77"),
              "$st7": ("2.5", "p $st7", "2.5"),
              "$mxcsr": ("0x1fa0", "p/x $mxcsr", "0x1fa0"),
              "$fs_base": ("$fs_base", "p $fs_base == $saved_fs", "1")}
    gdb.console("set $saved_fs = $fs_base")
    for target, (value, _, _) in writes.items():
        gdb.console(f"set var {target} = {value}")
    gdb.run("-exec-step-instruction")
    gdb.wait_for_stop("end-stepping-range")
    for target, (_, check, expected) in writes.items():
        assert gdb.console(check).strip().endswith(f"= {expected}"), f"{target}\n" + d.diagnostics()
    gdb.run("-exec-continue")
    assert gdb.wait_for_stop("exited")["exit-code"] == "03", d.diagnostics()


@km_only
def test_differential_against_gdbserver(payload) -> None:
    """The same stop under km and under gdbserver: same backtrace, code bytes and argument registers."""
    commands = ("bt", "x/16xb $pc", "info registers rip rdi rsi eflags cs ss", "p origin", "info frame")
    seen = {}
    for backend in ("gdbserver", "km"):
        d = Debuggee(backend, payload(BASIC, "musl"), free_port())
        try:
            d.connect()
            run_to(d, "scale")
            seen[backend] = [d.gdb.console(c) for c in commands]
        finally:
            d.close()
    # `info frame` names the caller's stack addresses, which depend on the environment size: compare lines
    # that do not mention the stack.
    keep = [lambda t: t] * 4 + [lambda t: [ln for ln in t.splitlines() if "0x7ff" not in ln]]
    for command, pick, ref, km in zip(commands, keep, seen["gdbserver"], seen["km"]):
        assert pick(km) == pick(ref), f"{command}\nkm:\n{km}\ngdbserver:\n{ref}"


def test_auxv_and_exec_file(debug) -> None:
    """qXfer:auxv:read and qXfer:exec-file:read as gdb shows them."""
    d = debug()
    auxv = d.gdb.console("info auxv")
    entry = next(line for line in auxv.splitlines() if "AT_ENTRY" in line)
    assert int(entry.split()[-1], 16) == int(d.gdb.console("p/x &_start").split("=")[1], 16), d.diagnostics()
    assert "AT_PHDR" in auxv and "AT_PAGESZ" in auxv and "AT_RANDOM" in auxv, d.diagnostics()
    assert str(d.exe) in d.gdb.console("info inferiors"), d.diagnostics()


def test_no_stale_value_after_a_write_or_a_step(debug) -> None:
    """What a stub keeps for a stop (km: the register file and its `g` reply) is never served stale: with gdb's
    own caches flushed before each read, a GPR, an SSE and a memory write read back new, and so does $pc after
    a step."""
    d = debug()
    run_to(d, "scale")
    gdb = d.gdb

    def fresh(expr: str) -> str:
        gdb.console("maintenance flush register-cache")
        gdb.console("maintenance flush dcache")
        return gdb.console(expr).split("=", 1)[1].strip()

    pc = fresh("p/x $pc")
    fresh("p $xmm3.v4_int32[2]")                    # the stub has now read everything once in this stop
    gdb.console("set var $rax = 0x5a5a5a")
    assert fresh("p/x $rax") == "0x5a5a5a", d.diagnostics()
    gdb.console("set var $xmm3.v4_int32[2] = 4242")
    assert fresh("p $xmm3.v4_int32[2]") == "4242", d.diagnostics()
    gdb.console("set var counter = 77")
    assert fresh("p counter") == "77", d.diagnostics()
    gdb.run("-exec-step-instruction")
    stop = gdb.wait_for_stop("end-stepping-range")
    assert int(fresh("p/x $pc"), 16) == int(stop["frame"]["addr"], 16) != int(pc, 16), d.diagnostics()


def test_a_large_read_is_the_programs_own_bytes(debug, tmp_path) -> None:
    """`dump binary memory` of the whole text, with breakpoints inserted in it: replies of many KiB (framed in C,
    run-length encoded where the text has runs) that gdb reads back byte for byte as the ELF file holds them,
    the int3s hidden."""
    from elftools.elf.elffile import ELFFile
    d = debug()
    d.gdb.console("set breakpoint always-inserted on")      # the int3s stay in memory while gdb reads
    run_to(d, "scale")
    d.gdb.run("-break-insert add")
    with open(d.exe, "rb") as f:
        text = ELFFile(f).get_section_by_name(".text")
        start, expected = text["sh_addr"], text.data()
    out = tmp_path / "text.bin"
    d.gdb.console(f"dump binary memory {out} {start:#x} {start + len(expected):#x}")
    assert len(expected) > 8192 and out.read_bytes() == expected, d.diagnostics()
    if d.backend == "km":                   # its replies were framed in C: the compiled module is mapped in km
        from kdbg.rsp.cframing import COMPILED
        with open(f"/proc/{d.proc.pid}/maps") as maps:
            assert COMPILED.prefix in maps.read(), "the stub framed in Python: kdbg.rsp.cframing did not load"
