"""#! scripts as the kernel runs them (fs/binfmt_script.c): the interpreter named on the first line, with at most
one argument (the rest of the line), then the script's path, then the script's own arguments."""
from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from ..errors import PayloadError
from ..host_fds import open_high

BINPRM_BUF_SIZE = 256       # the bytes of the file the kernel looks at
MAX_DEPTH = 5               # exec_binprm: an interpreter that is itself a script, at most this deep (ELOOP)


def parse_shebang(head: bytes) -> tuple[bytes, bytes | None] | None:
    """(interpreter, optional argument) of a file starting with `head`; None if it is not a script; ValueError
    when the line names no interpreter or cuts its name short, as load_script refuses (ENOEXEC)."""
    if not head.startswith(b"#!"):
        return None
    buf = head[:BINPRM_BUF_SIZE].ljust(BINPRM_BUF_SIZE, b"\0")     # the kernel's buffer is zeroed past the file
    newline = buf.find(b"\n")
    if newline >= 0:
        line = buf[2:newline]
    else:                                        # the line goes on past the buffer
        rest = buf[2:].lstrip(b" \t")
        if not rest or not any(c in rest for c in (b" ", b"\t", b"\0")):
            raise ValueError("#! line: interpreter name cut short")
        line = buf[2:BINPRM_BUF_SIZE - 1]        # the kernel ends the string at the buffer's last byte
    line = line.rstrip(b" \t")
    body = line.lstrip(b" \t")
    if not body:
        raise ValueError("#! line names no interpreter")
    end = min((i for i in (body.find(b" "), body.find(b"\t"), body.find(b"\0")) if i >= 0), default=len(body))
    name = body[:end]
    if end < len(body) and body[end:end + 1] != b"\0":
        arg = body[end:].lstrip(b" \t").split(b"\0", 1)[0]
        return name, arg or None
    return name, None


def resolve_exec(path: str, argv: list[str], *, check_exec: bool = True) -> tuple[str, list[str]]:
    """The program execve(path, argv) ends up running and its argv: scripts give way to their interpreters.
    PayloadError with execve's errno for what it would refuse (ENOENT, EACCES, ENOEXEC, ELOOP). With
    check_exec=False (km's own command line) the first file need not be executable, as km always allowed; a file
    km cannot read is left to the ELF loader's message."""
    program, argv, stream = open_exec(path, argv, check_exec=check_exec)
    if stream is not None:
        stream.close()
    return program, argv


def open_exec(path: str, argv: list[str], *, check_exec: bool = True) -> tuple[str, list[str], BinaryIO | None]:
    """resolve_exec, with the program's file left open for the ELF loader (loader/elf.open_elf), so that an execve
    opens and checks it once; the file is None where check_exec=False could not read it."""
    argv = list(argv) or [path]
    for depth in range(MAX_DEPTH):
        head, stream = _head(path, check_exec or depth > 0)
        try:
            shebang = parse_shebang(head)
        except ValueError as e:
            if stream is not None:
                stream.close()
            raise PayloadError(path, str(e), errno.ENOEXEC) from None
        if shebang is None:
            return path, argv, stream
        if stream is not None:
            stream.close()
        name, arg = os.fsdecode(shebang[0]), shebang[1]
        argv = [name, *([os.fsdecode(arg)] if arg else []), path, *argv[1:]]
        path = name
    raise PayloadError(path, "too many levels of #! interpreters", errno.ELOOP)


def _open(path: str) -> BinaryIO:
    """The file open for reading, in km's descriptor range (close-on-exec): the exec this may serve closes the
    payload's close-on-exec descriptors."""
    return os.fdopen(open_high(path), "rb")


def _head(path: str, check_exec: bool) -> tuple[bytes, BinaryIO | None]:
    """The first bytes of an executable file and the file, open, with execve's checks (exists, regular,
    executable)."""
    if not check_exec:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                return b"", None    # a FIFO would block: open_elf names the problem
            f = _open(path)
        except OSError:
            return b"", None        # not a script km can read: open_elf names the problem
        try:
            return f.read(BINPRM_BUF_SIZE), f
        except OSError:
            f.close()
            return b"", None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise PayloadError(path, "no such file", errno.ENOENT) from None
    except NotADirectoryError:
        raise PayloadError(path, "no such file", errno.ENOTDIR) from None
    except PermissionError:
        raise PayloadError(path, "permission denied", errno.EACCES) from None
    if stat.S_ISDIR(st.st_mode):
        raise PayloadError(path, "is a directory", errno.EACCES)
    if not stat.S_ISREG(st.st_mode):
        raise PayloadError(path, "not a regular file", errno.EACCES)
    if not os.access(path, os.X_OK):
        raise PayloadError(path, "permission denied", errno.EACCES)
    try:
        f = _open(path)
    except OSError as e:
        raise PayloadError(path, e.strerror or "cannot be read", e.errno or errno.EACCES) from None
    try:
        return f.read(BINPRM_BUF_SIZE), f
    except OSError as e:
        f.close()
        raise PayloadError(path, e.strerror or "cannot be read", e.errno or errno.EACCES) from None
