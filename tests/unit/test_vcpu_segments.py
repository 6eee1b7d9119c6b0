"""machine.user_segment_fix: the return to CPL3 rewrites user CS and SS in kvm_run's sync sregs as bytes (cffi's
attribute writes were ~7 us of every breakpoint and step stop); the fields KVM reads must be exactly what the
attribute writes gave, and the others untouched."""
from __future__ import annotations

from monitor.kvm import abi
from monitor.vcpu.machine import KERNEL_CS, KERNEL_DS, USER_CS, USER_DS, user_segment_fix

FIELDS = ("base", "limit", "selector", "type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable")


def test_user_segments_from_a_kernel_stub_context() -> None:
    run = abi.ffi.new("struct kvm_run *")
    sregs = run.s.regs.sregs
    for seg, selector, type_ in ((sregs.cs, KERNEL_CS, 11), (sregs.ss, KERNEL_DS, 3)):
        seg.base, seg.limit, seg.selector, seg.type, seg.present = 0x1234, 0xFFFFF, selector, type_, 1
        seg.dpl, seg.db, seg.s, seg.l, seg.g, seg.avl, seg.unusable = 0, 1, 1, 1, 1, 1, 0
    others = {name: getattr(sregs.ds, name) for name in FIELDS}
    before = {name: {f: getattr(getattr(sregs, name), f) for f in FIELDS} for name in ("cs", "ss")}
    user_segment_fix(memoryview(abi.ffi.buffer(run)))
    changed = {"cs": dict(selector=USER_CS, type=11, dpl=3, l=1, db=0),
               "ss": dict(selector=USER_DS, type=3, dpl=3, l=0, db=1)}
    for name in ("cs", "ss"):
        seg = getattr(sregs, name)
        assert {f: getattr(seg, f) for f in FIELDS} == {**before[name], **changed[name]}
    assert {name: getattr(sregs.ds, name) for name in FIELDS} == others
