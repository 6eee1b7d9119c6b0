"""monitor/signals/frame.py's rt_sigframe offsets against the C headers: the ucontext/sigcontext layout a signal
handler reads (glibc's <sys/ucontext.h> mirrors the kernel's up to uc_sigmask; the kernel's sigset is 8 bytes)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from monitor.signals import frame as sf

SOURCE = r"""
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <signal.h>
#include <sys/ucontext.h>
int main(void) {
    printf("uc_mcontext %zu\nuc_sigmask %zu\nfpregs %zu\nsigcontext %zu\n", offsetof(ucontext_t, uc_mcontext),
           offsetof(ucontext_t, uc_sigmask), offsetof(mcontext_t, fpregs), sizeof(struct sigcontext));
    printf("magic1 %u\nmagic2 %u\n", FP_XSTATE_MAGIC1, FP_XSTATE_MAGIC2);
    %REGS%
    return 0;
}
"""


def test_rt_sigframe_offsets_match_the_headers(tmp_path) -> None:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is installed by tools/install.sh")
    regs = "\n    ".join(f'printf("{name} %d\\n", REG_{"EFL" if name == "eflags" else name.upper()});'
                         for name in sf.SIGCONTEXT_REGS)
    (tmp_path / "frame.c").write_text(SOURCE.replace("%REGS%", regs))
    subprocess.run(["gcc", "-o", tmp_path / "frame", tmp_path / "frame.c"], check=True)
    c = {k: int(v) for k, v in (line.split() for line in subprocess.run(
        [tmp_path / "frame"], check=True, capture_output=True, text=True).stdout.splitlines())}
    assert sf.UC_MCONTEXT - sf.UC_OFFSET == c["uc_mcontext"]
    assert sf.UC_SIGMASK - sf.UC_OFFSET == c["uc_sigmask"]
    assert sf.INFO_OFFSET - sf.UC_OFFSET == c["uc_sigmask"] + 8          # the kernel's ucontext ends at its sigset
    assert sf.MCONTEXT_FPSTATE == c["fpregs"] and c["sigcontext"] == c["uc_sigmask"] - c["uc_mcontext"]
    assert (sf.FP_XSTATE_MAGIC1, sf.FP_XSTATE_MAGIC2) == (c["magic1"], c["magic2"])
    assert [c[name] for name in sf.SIGCONTEXT_REGS] == list(range(len(sf.SIGCONTEXT_REGS)))
