"""MonitorError and its family: every failure km reports to the user as one line `km: <subject>: <problem>`."""
from __future__ import annotations


class MonitorError(Exception):
    """A failure of km itself (not of the payload). `subject` is what the message is about (a path, 'gdb port 2159')."""

    exit_status = 1

    def __init__(self, subject: str, problem: str) -> None:
        super().__init__(f"{subject}: {problem}")
        self.subject, self.problem = subject, problem


class UsageError(MonitorError):
    exit_status = 2


class PayloadError(MonitorError):
    """The payload file cannot be run: missing, not an ELF, not x86-64, a missing interpreter... `errno` is what
    execve(2) would fail with (a payload's execve answers it)."""

    def __init__(self, subject: str, problem: str, errno: int = 8) -> None:     # ENOEXEC
        super().__init__(subject, problem)
        self.errno = errno


class KvmError(MonitorError):
    """An ioctl on /dev/kvm failed; `call` names it (KVM_RUN, KVM_SET_SREGS...)."""

    def __init__(self, call: str, errno: int) -> None:
        import os
        super().__init__(call, os.strerror(errno))
        self.call, self.errno = call, errno


class GuestFault(Exception):
    """A guest virtual address range km was asked to read or write is not mapped with the needed rights.

    Syscall handlers let it propagate: the dispatcher turns it into -EFAULT for the payload."""

    def __init__(self, gva: int, size: int) -> None:
        super().__init__(f"guest address {gva:#x}+{size:#x} not accessible")
        self.gva, self.size = gva, size
