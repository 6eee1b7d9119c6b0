"""vFile host I/O: read-only access to km's files, gdb File-I/O errno numbers, binary replies."""
from __future__ import annotations

import os
import struct

import kdbg.rsp.server  # noqa: F401 - registers every handler module
from harness.fake_target import FakeControlTarget
from kdbg.rsp.commands import dispatch
from kdbg.rsp.hostio import close_all
from kdbg.rsp.packets import unescape
from kdbg.rsp.session import RunState, Session


def session() -> Session:
    return Session(FakeControlTarget(regs={1: {}}), RunState(running=False))


def hexname(path) -> bytes:
    return str(path).encode().hex().encode()


def test_open_pread_fstat_close(tmp_path) -> None:
    path = tmp_path / "payload.km"
    data = bytes(range(256)) * 40
    path.write_bytes(data)
    s = session()
    assert dispatch(s, b"vFile:setfs:0") == b"F0"
    fd = dispatch(s, b"vFile:open:" + hexname(path) + b",0,0")
    assert fd == b"F0"
    reply = dispatch(s, b"vFile:pread:0,100,ff0")
    head, _, body = reply.partition(b";")
    assert head == b"F100" and unescape(body) == data[0xFF0:0x10F0]
    head, _, body = dispatch(s, b"vFile:fstat:0").partition(b";")
    stat = unescape(body)
    assert head == b"F40" and struct.unpack_from(">Q", stat, 28)[0] == len(data)
    assert dispatch(s, b"vFile:pread:0,100,ffffff") == b"F0;"
    assert dispatch(s, b"vFile:close:0") == b"F0"
    assert dispatch(s, b"vFile:close:0") == b"F-1,9"          # EBADF
    assert dispatch(s, b"vFile:pread:0,10,0") == b"F-1,9"


def test_errors_use_fileio_numbers(tmp_path) -> None:
    s = session()
    assert dispatch(s, b"vFile:open:" + hexname(tmp_path / "missing") + b",0,0") == b"F-1,2"     # ENOENT
    assert dispatch(s, b"vFile:open:" + hexname(tmp_path / "new") + b",201,1a4") == b"F-1,1e"    # EROFS
    assert not (tmp_path / "new").exists()
    assert dispatch(s, b"vFile:open:" + hexname(tmp_path / ("x" * 300)) + b",0,0") == b"F-1,5b"  # ENAMETOOLONG


def test_readlink(tmp_path) -> None:
    link = tmp_path / "link"
    os.symlink("/some/where", link)
    head, _, body = dispatch(session(), b"vFile:readlink:" + hexname(link)).partition(b";")
    assert head == b"Fb" and unescape(body) == b"/some/where"


def test_close_all_releases_host_descriptors(tmp_path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    s = session()
    for _ in range(3):
        dispatch(s, b"vFile:open:" + hexname(tmp_path / "f") + b",0,0")
    host_fds = list(s.host_files.values())
    close_all(s)
    assert s.host_files == {}
    for fd in host_fds:
        try:
            os.fstat(fd)
        except OSError:
            continue
        raise AssertionError(f"host fd {fd} still open")


def test_payload_proc_files_come_from_the_target_not_from_km() -> None:
    s = session()
    s.target.memory[0x400000] = bytearray(0x2000)
    s.target.exe = "/payloads/hello.km"
    pid = s.target.pid()
    fd = dispatch(s, b"vFile:open:" + hexname(f"/proc/{pid}/maps") + b",0,0")
    assert fd.startswith(b"F")
    _, _, body = dispatch(s, b"vFile:pread:%s,1000,0" % fd[1:]).partition(b";")
    assert unescape(body).startswith(b"00400000-00402000 rwxp")
    _, _, link = dispatch(s, b"vFile:readlink:" + hexname(f"/proc/{pid}/exe")).partition(b";")
    assert unescape(link) == b"/payloads/hello.km"
    _, _, own = dispatch(s, b"vFile:readlink:" + hexname(f"/proc/{os.getpid()}/exe")).partition(b";")
    assert unescape(own) == os.fsencode(os.readlink("/proc/self/exe"))     # other pids stay the host's


def test_a_packet_sized_pread_is_answered_in_one_reply_that_fits_the_packet(tmp_path) -> None:
    """gdb reads libraries `PacketSize` bytes at a time: one reply carries half of that even when every byte
    needs escaping (gdbserver's reply carries up to PacketSize before escaping)."""
    from kdbg.rsp.packets import PACKET_SIZE
    path = tmp_path / "libworst.so"
    path.write_bytes(b"}#$*" * PACKET_SIZE)
    s = session()
    assert dispatch(s, b"vFile:open:" + hexname(path) + b",0,0") == b"F0"
    reply = dispatch(s, b"vFile:pread:0,%x,0" % PACKET_SIZE)
    head, _, body = reply.partition(b";")
    assert int(head[1:], 16) >= PACKET_SIZE // 2 - 64 and len(reply) <= PACKET_SIZE
    assert unescape(body) == path.read_bytes()[:int(head[1:], 16)]
    close_all(s)
