"""A Python program for gdb's CPython extension (tests/integration/test_gdb_python.py): `getpid` reaches the C
function os_getpid two Python frames deep (where the test breaks); `crash` reads address 8 through ctypes, a
segfault in C code under the same two frames, which leaves a core."""
import ctypes
import os
import sys


def inner(n):
    if sys.argv[1] == "crash":
        return ctypes.string_at(8, n)          # @py_crash
    return os.getpid() + n                     # @py_inner


def outer():
    return inner(1)                            # @py_outer


print(outer())
