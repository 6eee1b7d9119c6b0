"""Guest-chosen address ranges given to the memory syscalls (madvise, mprotect, munmap, mremap, msync, mlock*,
mincore, process_vm_readv/writev, brk, mmap) answer what Linux answers, compared with a native run: overflowing
and wrapping lengths, the kernel half, TASK_SIZE, holes, PROT_NONE and read-only pages; the arena's state after
each call is compared too."""
from __future__ import annotations

from .test_run import differential


def test_madvise_dontneed_of_a_range_wrapping_past_2_64_is_einval_not_a_crash(payload):
    """A fuzzer's madvise(0xdeadbeef000, -1, MADV_DONTNEED) zeroed every VMA above the address (the payload's
    stack among them) and the payload died of SIGSEGV; Linux answers EINVAL and changes nothing."""
    native, km = differential(payload("sys_ranges.c", "musl"), "madvise")
    lines = [line.split() for line in km.stdout.decode().splitlines()]
    assert "madvise DONTNEED deadbeef len -1 EINVAL dd.nrdd.".split() in lines
    assert lines[-1] == ["done"]
    # MADV_POPULATE_READ on a PROT_NONE page was km's NameError (answered EIO); a hole before a mapped page ENOMEM
    assert "madvise POPULATE_READ prot_none page EINVAL dd.nrdd.".split() in lines
    assert "madvise POPULATE_READ hole then mapped ENOMEM dd.nrdd.".split() in lines


def test_every_guest_range_answers_as_linux(payload):
    native, km = differential(payload("sys_ranges.c", "musl"), timeout=180)
    lines = [line.split() for line in km.stdout.decode().splitlines()]
    assert lines[-1] == ["done"] and len(lines) > 700
    assert "mmap RW 1 TiB (over commit) ENOMEM dd.nrdd.".split() in lines      # not a 16 s, 2 GiB memslot
    assert "mremap DONTUNMAP 0 zz.nrdd.".split() in lines
