"""A small Python program for the DAP tests (tests/integration/test_dap_python.py): a breakpoint in a function,
a local and a global to read, an exception raised and caught, output on both streams, and exit status 3. It prints
the kernel version uname reports, which km answers with its own name: the test knows the program ran in km.
With the argument `uncaught`, an exception ends it instead."""
import os
import sys

COUNTER = 5                                    # a global the debugger reads


def add(a, b):
    total = a + b                              # @py_add
    return total                               # @py_return


def fail(n):
    if n > 1:
        raise ValueError(f"n is {n}")          # @py_raise
    return n


def main():
    global COUNTER
    answer = add(3, 4)                         # @py_call
    COUNTER += answer
    try:
        fail(2)
    except ValueError as exc:
        print(f"caught {exc}", file=sys.stderr, flush=True)
    print(f"answer={answer} counter={COUNTER} kernel={os.uname().version}", flush=True)
    return 3


if __name__ == "__main__":
    if sys.argv[1:] == ["uncaught"]:
        fail(5)                                # @py_uncaught
    sys.exit(main())
