"""#! lines parsed as fs/binfmt_script.c does: one optional argument, whitespace rules, a name cut by the buffer."""
from __future__ import annotations

import errno

import pytest

from monitor.errors import PayloadError
from monitor.loader.script import BINPRM_BUF_SIZE, parse_shebang, resolve_exec


@pytest.mark.parametrize("head, want", [
    (b"\x7fELF", None),
    (b"#!/bin/sh\n", (b"/bin/sh", None)),
    (b"#! /bin/sh -e  \nrest", (b"/bin/sh", b"-e")),
    (b"#!/usr/bin/env python3 -u -B\n", (b"/usr/bin/env", b"python3 -u -B")),      # one argument: the rest
    (b"#!\t/bin/sh\t\t-x\n", (b"/bin/sh", b"-x")),
    (b"#!/bin/sh", (b"/bin/sh", None)),                                              # no newline, file ends
])
def test_parse(head, want):
    assert parse_shebang(head) == want


@pytest.mark.parametrize("head", [b"#!\n", b"#!   \n", b"#!/" + b"x" * BINPRM_BUF_SIZE])
def test_refused_as_enoexec(head):
    with pytest.raises(ValueError):
        parse_shebang(head)


def test_long_argument_is_cut_at_the_buffer():
    interp, arg = parse_shebang(b"#!/bin/sh " + b"a" * BINPRM_BUF_SIZE)
    assert interp == b"/bin/sh" and arg == b"a" * (BINPRM_BUF_SIZE - 1 - len(b"#!/bin/sh "))


def test_resolve_chains_interpreters(tmp_path):
    inner = tmp_path / "inner"
    inner.write_text("#!/bin/sh -e\n")
    outer = tmp_path / "outer"
    outer.write_text(f"#!{inner} opt\n")
    for f in (inner, outer):
        f.chmod(0o755)
    assert resolve_exec(str(outer), ["outer", "x"]) == ("/bin/sh", ["/bin/sh", "-e", str(inner), "opt", str(outer), "x"])


def test_resolve_errors(tmp_path):
    loop = tmp_path / "loop"
    loop.write_text(f"#!{loop}\n")
    loop.chmod(0o755)
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    cases = [(str(loop), errno.ELOOP), (str(plain), errno.EACCES), (str(tmp_path), errno.EACCES),
             (str(tmp_path / "missing"), errno.ENOENT)]
    for path, code in cases:
        with pytest.raises(PayloadError) as e:
            resolve_exec(path, [path])
        assert e.value.errno == code, path
    assert resolve_exec(str(plain), ["p"], check_exec=False) == ("/bin/sh", ["/bin/sh", str(plain)])
