"""What the syscall fuzzer found, one test per defect, each compared with a native run (tests/payloads/
fuzz_regress.c): the fuzzer's stream is random, these stay pinned."""
from __future__ import annotations

from tests.integration.test_run import differential


def test_fallocate_length_and_fadvise_advice_reach_the_host(payload, tmp_path):
    """Both were served as three-argument calls: fallocate's length (the fourth) was 0, so every fallocate was
    EINVAL, and fadvise64's advice was dropped, so any advice was accepted."""
    native, km = differential(payload("fuzz_regress.c", "musl"), "fallocate", cwd=tmp_path)
    assert b"size after fallocate                     65536" in km.stdout


def test_rt_sigtimedwait_with_a_timeout_of_2_63_seconds_waits(payload):
    """km answered EIO (threading's OverflowError) and never checked the set's size or the timespec."""
    native, km = differential(payload("fuzz_regress.c", "musl"), "sigtimedwait")
    assert b"Interrupted system call" in km.stdout


def test_int_arguments_are_32_bits_and_getcwd_copies_only_the_path(payload, tmp_path):
    """getgroups(-1) wrote the groups, rt_sigpending ignored its size; close_range's flags, getpriority's which,
    getrlimit's resource and kill's signal were read as 64 bits (EINVAL); getcwd needed its whole buffer mapped
    (EFAULT where Linux copies the path)."""
    differential(payload("fuzz_regress.c", "musl"), "ids", cwd=tmp_path)
