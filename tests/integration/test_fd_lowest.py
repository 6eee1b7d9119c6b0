"""open(2) returns the lowest free descriptor even while km, on another of the payload's threads, loads code late
(the rarer syscall families on their first call, what getrlimit needs), keeps a mapped file's descriptor or makes one
of its own: km's own passing descriptors are numbered in a table of their own (host_fds.aside), straight in km's
range, or made while the payload's descriptor calls wait at the gate (host_fds.GATE), never among the payload's
lowest."""
from __future__ import annotations

import pytest

from .test_run import differential


def test_opens_get_the_lowest_descriptor_while_km_loads_code_late(payload):
    """20 forked rounds (each child starts with nothing late loaded): one thread opens /dev/null in a tight loop
    while another makes the calls km serves by loading code; before the fix ~3 opens a round got a higher number."""
    native, km = differential(payload("fd_lowest.c", "musl"), "20")
    assert km.stdout == b"rounds 20 misnumbered 0\n"


def test_opens_get_the_lowest_descriptor_while_another_thread_maps_code(payload):
    """mmap of a program's code (private) keeps a descriptor of the file for km (memory/mapped_file.py): it is made
    in km's range at once, so a thread opening /dev/null meanwhile still gets the lowest number."""
    native, km = differential(payload("fd_lowest.c", "musl"), "20", "mmap")
    assert km.stdout == b"rounds 20 misnumbered 0\n"


def test_opens_get_the_lowest_descriptor_while_km_makes_one_of_its_own(payload):
    """Shared anonymous memory is a memfd km makes (as a vfork's pipe and a new thread's vCPU are descriptors, the
    payload's "vfork" and "threads" modes): it took the payload's lowest free number until moved to km's range, and
    a thread opening /dev/null meanwhile got the next (before the gate: ~45 opens a round)."""
    native, km = differential(payload("fd_lowest.c", "musl"), "4", "shared")
    assert km.stdout == b"rounds 4 misnumbered 0\n"


@pytest.mark.parametrize("mode,rounds", [("vfork", "4"), ("threads", "8"), ("accept", "6")])
def test_the_lowest_descriptor_survives_km_making_its_own_for_other_calls(payload, mode: str, rounds: str):
    """The payload's other such modes, which no test ran: a vfork (km's pipe to its child), new threads (a vCPU
    each, KVM_CREATE_VCPU) while the main thread opens /dev/null, and descriptors that accept() returns while another
    thread maps shared memory (a blocking call cannot wait at the gate: moved down afterwards). Each misnumbered
    some opens or accepts with its fix taken out (vfork's pipe made outside the gate, the vCPU ungated, the accept
    not moved down)."""
    native, km = differential(payload("fd_lowest.c", "musl"), rounds, mode)
    assert km.stdout == native.stdout == f"rounds {rounds} misnumbered 0\n".encode()
