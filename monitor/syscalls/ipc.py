"""System V message queues and semaphores, shmget/shmctl, and POSIX message queues: objects the host keeps for
the payload (km is the payload's process), with guest buffers handed over as for any forwarded call.

shmat/shmdt (a segment mapped into the guest) and mq_notify (a signal or thread on arrival) are not here:
see the README's known limits."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from ..kvm.abi import ffi
from .args import addr_of, buf_in, buf_out, fd_arg, new_fd, path_arg
from .dispatch import syscall
from .host import blocking_host_syscall, host_syscall
from .numbers import NUMBERS as NR

if TYPE_CHECKING:
    from ..vcpu.loop import VcpuThread

IPC_64 = 0x100
IPC_RMID, IPC_SET, IPC_STAT, IPC_INFO = 0, 1, 2, 3
GETALL, SETALL, SEM_STAT, SEM_INFO, SEM_STAT_ANY = 13, 17, 18, 19, 20
MSG_STAT, MSG_INFO, MSG_STAT_ANY = 11, 12, 13
SHM_STAT, SHM_INFO, SHM_STAT_ANY = 13, 14, 15
SEMID_DS, MSQID_DS, SHMID_DS = 104, 120, 112      # the 64-bit layouts; the *info structs are smaller
SEMBUF = 6
MQ_ATTR = 64


@syscall("msgget")
def sys_msgget(ctx: VcpuThread, key: int, flags: int) -> int:
    return host_syscall(NR["msgget"], key, flags)


@syscall("msgsnd")
def sys_msgsnd(ctx: VcpuThread, msqid: int, msgp: int, size: int, flags: int) -> int:
    return blocking_host_syscall(ctx, NR["msgsnd"], msqid, buf_in(ctx, msgp, 8 + (size & 0xFFFFFFFFFFFF)), size,
                                 flags)


@syscall("msgrcv")
def sys_msgrcv(ctx: VcpuThread, msqid: int, msgp: int, size: int, msgtyp: int, flags: int) -> int:
    return blocking_host_syscall(ctx, NR["msgrcv"], msqid, buf_out(ctx, msgp, 8 + (size & 0xFFFFFFFFFFFF)), size,
                                 msgtyp, flags)


def _ctl_buffer(ctx: VcpuThread, buf: int, cmd: int, size: int, sets: tuple[int, ...], gets: tuple[int, ...]) -> int:
    command = cmd & ~IPC_64
    if command in sets:
        return buf_in(ctx, buf, size)
    if command in gets:
        return buf_out(ctx, buf, size)
    return buf


@syscall("msgctl")
def sys_msgctl(ctx: VcpuThread, msqid: int, cmd: int, buf: int) -> int:
    return host_syscall(NR["msgctl"], msqid, cmd,
                        _ctl_buffer(ctx, buf, cmd, MSQID_DS, (IPC_SET,),
                                    (IPC_STAT, IPC_INFO, MSG_STAT, MSG_INFO, MSG_STAT_ANY)))


@syscall("semget")
def sys_semget(ctx: VcpuThread, key: int, nsems: int, flags: int) -> int:
    return host_syscall(NR["semget"], key, nsems, flags)


@syscall("semop")
def sys_semop(ctx: VcpuThread, semid: int, sops: int, nsops: int) -> int:
    return blocking_host_syscall(ctx, NR["semop"], semid, buf_in(ctx, sops, SEMBUF * min(nsops, 1 << 20)), nsops)


@syscall("semtimedop")
def sys_semtimedop(ctx: VcpuThread, semid: int, sops: int, nsops: int, timeout: int) -> int:
    return blocking_host_syscall(ctx, NR["semtimedop"], semid, buf_in(ctx, sops, SEMBUF * min(nsops, 1 << 20)),
                                 nsops, buf_in(ctx, timeout, 16) if timeout else 0)


def _nsems(semid: int) -> int:
    """How many semaphores the set has (for GETALL/SETALL's array), 0 if the host cannot say."""
    ds = ffi.new("char[]", SEMID_DS)
    if host_syscall(NR["semctl"], semid, 0, IPC_STAT | IPC_64, addr_of(ds)) < 0:
        return 0
    return struct.unpack_from("<Q", ffi.buffer(ds), 64)[0]          # sem_nsems after sem_perm, otime, ctime


@syscall("semctl")
def sys_semctl(ctx: VcpuThread, semid: int, semnum: int, cmd: int, arg: int) -> int:
    command = cmd & ~IPC_64
    if command in (GETALL, SETALL):
        size = 2 * _nsems(semid)
        host_arg = (buf_out if command == GETALL else buf_in)(ctx, arg, size) if size else arg
    else:
        host_arg = _ctl_buffer(ctx, arg, cmd, SEMID_DS, (IPC_SET,),
                               (IPC_STAT, IPC_INFO, SEM_STAT, SEM_INFO, SEM_STAT_ANY))
    return host_syscall(NR["semctl"], semid, semnum, cmd, host_arg)


@syscall("shmget")
def sys_shmget(ctx: VcpuThread, key: int, size: int, flags: int) -> int:
    return host_syscall(NR["shmget"], key, size, flags)


@syscall("shmctl")
def sys_shmctl(ctx: VcpuThread, shmid: int, cmd: int, buf: int) -> int:
    return host_syscall(NR["shmctl"], shmid, cmd,
                        _ctl_buffer(ctx, buf, cmd, SHMID_DS, (IPC_SET,),
                                    (IPC_STAT, IPC_INFO, SHM_STAT, SHM_INFO, SHM_STAT_ANY)))


@syscall("mq_open", descriptors=True)
def sys_mq_open(ctx: VcpuThread, name: int, oflag: int, mode: int, attr: int) -> int:
    return new_fd(host_syscall(NR["mq_open"], addr_of(path_arg(ctx, name)), oflag, mode,
                               buf_in(ctx, attr, MQ_ATTR) if attr else 0))


@syscall("mq_unlink")
def sys_mq_unlink(ctx: VcpuThread, name: int) -> int:
    return host_syscall(NR["mq_unlink"], addr_of(path_arg(ctx, name)))


@syscall("mq_timedsend")
def sys_mq_timedsend(ctx: VcpuThread, mqdes: int, msg: int, length: int, prio: int, timeout: int) -> int:
    return blocking_host_syscall(ctx, NR["mq_timedsend"], fd_arg(mqdes), buf_in(ctx, msg, length), length, prio,
                                 buf_in(ctx, timeout, 16) if timeout else 0)


@syscall("mq_timedreceive")
def sys_mq_timedreceive(ctx: VcpuThread, mqdes: int, msg: int, length: int, prio: int, timeout: int) -> int:
    return blocking_host_syscall(ctx, NR["mq_timedreceive"], fd_arg(mqdes), buf_out(ctx, msg, length), length,
                                 buf_out(ctx, prio, 4) if prio else 0, buf_in(ctx, timeout, 16) if timeout else 0)


@syscall("mq_getsetattr")
def sys_mq_getsetattr(ctx: VcpuThread, mqdes: int, newattr: int, oldattr: int) -> int:
    return host_syscall(NR["mq_getsetattr"], fd_arg(mqdes), buf_in(ctx, newattr, MQ_ATTR) if newattr else 0,
                        buf_out(ctx, oldattr, MQ_ATTR) if oldattr else 0)
