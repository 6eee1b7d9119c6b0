"""monitor/kvm/crun.py's `layout` words: one order in three places (the C enum, crun.LAYOUT_FIELDS and
vcpu/loop.debug_run_layout()), which nothing but this checks: a word added to one and not the others has the C
code read its neighbour's value (an offset into kvm_run, a register index)."""
from __future__ import annotations

import re

from monitor.kvm import abi, crun
from monitor.vcpu.loop import RFLAGS, RIP, debug_run_layout


def test_layout_words_match_the_c_enum_and_the_python_list():
    enum = re.search(r"\benum \{([^}]*)\}", crun.SOURCE)
    assert enum is not None
    c_names = [name.strip().rstrip("_").lower() for name in enum.group(1).split(",")]
    assert c_names == list(crun.LAYOUT_FIELDS)
    layout = dict(zip(crun.LAYOUT_FIELDS, debug_run_layout(), strict=True))
    assert (layout["kvm_run_ioctl"], layout["rip"], layout["rflags"]) == (abi.KVM_RUN, RIP, RFLAGS)
    assert layout["sync_regs"] == abi.RUN_SYNC_REGS and layout["exit_reason"] == abi.RUN_EXIT_REASON
