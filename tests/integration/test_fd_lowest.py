"""open(2) returns the lowest free descriptor even while km, on another of the payload's threads, loads code late
(the rarer syscall families on their first call, what getrlimit needs) or keeps a mapped file's descriptor: km's own
passing descriptors are numbered in a table of their own (host_fds.aside) or straight in km's range, never among the
payload's lowest."""
from __future__ import annotations

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
